"""Image embeddings: one request per photo vs photos coalesced into one request.

Against the fake Azure AI endpoint on 127.0.0.1, given a realistic cost per request: 50 ms of
latency plus 2 ms per image, and at most 4 requests served at once (a throttled deployment).
Callers go through the real SDK client; "batched" goes through `EmbeddingBatcher` exactly as
concurrent `process()` calls do (10 at a time, the handler's default items per cycle).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger

from myapp.vectorization.batching import EmbeddingBatcher
from myapp.vectorization.embeddings import AzureImageEmbedder
from myapp.vectorization.images import LoadedImage
from tests.azure.fake_inference import FakeImageEmbeddingsServer
from tests.azure.peers import make_image

PHOTOS = 40
CONCURRENCY = 10
LATENCY = 0.050
LATENCY_PER_IMAGE = 0.002
SERVER_CONCURRENCY = 4
REPEATS = 3
KEY = "bench-key"
MODEL = "bench-model"

Embed = Callable[[LoadedImage], Awaitable[Any]]


async def _run_all(embed: Embed, images: list[LoadedImage], concurrency: int) -> float:
    slots = asyncio.Semaphore(concurrency)

    async def one(image: LoadedImage) -> None:
        async with slots:
            await embed(image)

    started = time.perf_counter()
    await asyncio.gather(*(one(image) for image in images))
    return time.perf_counter() - started


async def _measure() -> dict[str, tuple[float, float]]:
    server = FakeImageEmbeddingsServer(
        api_key=KEY,
        model=MODEL,
        latency=LATENCY,
        latency_per_image=LATENCY_PER_IMAGE,
        max_concurrent_requests=SERVER_CONCURRENCY,
    )
    await server.start()
    images = [LoadedImage(make_image((i, 255 - i, 9)), "image/png") for i in range(PHOTOS)]
    results: dict[str, tuple[float, float]] = {}
    try:
        async with AzureImageEmbedder(endpoint=server.endpoint, api_key=KEY, model=MODEL) as client:

            async def single(image: LoadedImage) -> Any:
                return await client.embed([image])

            batcher = EmbeddingBatcher(client)
            modes: dict[str, tuple[Embed, int]] = {
                "one request per photo, sequential": (single, 1),
                f"one request per photo, {CONCURRENCY} concurrent": (single, CONCURRENCY),
                f"batched, {CONCURRENCY} concurrent": (batcher.embed, CONCURRENCY),
            }
            for name, (embed, concurrency) in modes.items():
                seconds, requests = [], []
                for _ in range(REPEATS):
                    before = server.request_count
                    seconds.append(await _run_all(embed, images, concurrency))
                    requests.append(server.request_count - before)
                results[name] = (statistics.median(seconds), statistics.median(requests))
    finally:
        await server.stop()
    return results


def run() -> list[dict[str, Any]]:
    logger.disable("myapp")
    try:
        results = asyncio.run(_measure())
    finally:
        logger.enable("myapp")
    anchor_name = f"one request per photo, {CONCURRENCY} concurrent"
    anchor = results[anchor_name][0]
    setting = (
        f"{PHOTOS} photos; server {LATENCY * 1000:.0f} ms"
        f" + {LATENCY_PER_IMAGE * 1000:.0f} ms/image, {SERVER_CONCURRENCY} requests at once"
    )
    rows = []
    for name, (seconds, requests) in results.items():
        rows.append(
            {
                "benchmark": f"embed {name}",
                "value": round(seconds, 3),
                "unit": "s",
                "ideal_or_anchor": round(anchor, 3),
                "ratio": round(seconds / anchor, 2),
                "notes": f"{requests:.0f} requests, {PHOTOS / seconds:.0f} photos/s; {setting}",
            }
        )
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
