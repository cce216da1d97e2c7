"""A local stand-in for the Azure AI Inference image embeddings route, on 127.0.0.1.

It checks what the real SDK sends (path, `api-version`, both key headers, JSON body shape with
data-URL images and the model name) and answers like the service: deterministic vectors computed
from the image bytes, or 429 (with Retry-After) / 500 / 400 when a test asks for it. Anything
off-protocol is answered with an error *and* recorded in `violations`, which tests assert empty.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from aiohttp import web

API_VERSION = "2024-05-01-preview"
ROUTE = "/models/images/embeddings"
ENDPOINT_PATH = "/models"
DEFAULT_DIMENSIONS = 16
_DATA_URL = re.compile(r"^data:(image/[a-z0-9.+-]+);base64,(?P<data>[A-Za-z0-9+/=]+)$")


def vector_for(image: bytes, dimensions: int = DEFAULT_DIMENSIONS) -> np.ndarray:
    """The vector the fake model gives these bytes: seeded by their SHA-256, unit length."""
    seed = int.from_bytes(hashlib.sha256(image).digest()[:8], "big")
    vector = np.random.default_rng(seed).standard_normal(dimensions).astype(np.float32)
    return vector / np.linalg.norm(vector)


@dataclass(frozen=True)
class PlannedFailure:
    status: int
    message: str
    retry_after: int | None = None


@dataclass
class FakeImageEmbeddingsServer:
    api_key: str
    model: str
    dimensions: int = DEFAULT_DIMENSIONS
    latency: float = 0.0
    latency_per_image: float = 0.0
    max_concurrent_requests: int | None = None
    batch_sizes: list[int] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    refused_images: set[bytes] = field(default_factory=set)
    _planned: deque[PlannedFailure] = field(default_factory=deque)
    _planned_embeddings: deque[list[object]] = field(default_factory=deque)
    _runner: web.AppRunner | None = None
    _slots: asyncio.Semaphore | None = None
    endpoint: str = ""

    @property
    def request_count(self) -> int:
        return len(self.batch_sizes)

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        message: str = "planned",
        retry_after: int | None = None,
    ) -> None:
        for _ in range(times):
            self._planned.append(PlannedFailure(status, message, retry_after))

    def answer_next_with(self, embeddings: list[object]) -> None:
        """Answer the next request with these `embedding` values (garbage included: NaN is
        written as the bare `NaN` token Python's json emits and reads)."""
        self._planned_embeddings.append(embeddings)

    def refuse(self, image: bytes) -> None:
        """Answer 400 to any request that contains this image (like a model refusing it)."""
        self.refused_images.add(image)

    async def start(self) -> str:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post(ROUTE, self._embed)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        if self.max_concurrent_requests:
            self._slots = asyncio.Semaphore(self.max_concurrent_requests)
        self.endpoint = f"http://127.0.0.1:{port}{ENDPOINT_PATH}"
        return self.endpoint

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _embed(self, request: web.Request) -> web.Response:
        if self._slots is None:
            return await self._answer(request)
        async with self._slots:
            return await self._answer(request)

    async def _answer(self, request: web.Request) -> web.Response:
        problem = self._check_headers(request)
        if problem:
            self.violations.append(problem)
            return _error(401 if "key" in problem else 400, problem)
        try:
            body = json.loads(await request.read())
            images = self._decode_body(body)
        except ValueError as error:
            self.violations.append(str(error))
            return _error(400, str(error))
        self.batch_sizes.append(len(images))
        await asyncio.sleep(self.latency + self.latency_per_image * len(images))
        if self._planned:
            planned = self._planned.popleft()
            headers = {"Retry-After": str(planned.retry_after)} if planned.retry_after else {}
            return _error(planned.status, planned.message, headers)
        if any(image in self.refused_images for image in images):
            return _error(400, "One of the images could not be processed by the model.")
        if self._planned_embeddings:
            embeddings = self._planned_embeddings.popleft()
        else:
            embeddings = [vector_for(image, self.dimensions).tolist() for image in images]
        data = [
            {"object": "embedding", "index": i, "embedding": embedding}
            for i, embedding in enumerate(embeddings)
        ]
        usage = {"prompt_tokens": len(images), "total_tokens": len(images)}
        return web.json_response(
            {"id": "fake-1", "object": "list", "model": self.model, "data": data, "usage": usage}
        )

    def _check_headers(self, request: web.Request) -> str | None:
        if request.query.get("api-version") != API_VERSION:
            return f"api-version is {request.query.get('api-version')!r}, expected {API_VERSION}"
        if request.headers.get("api-key") != self.api_key:
            return "api-key header missing or wrong"
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return "Authorization bearer key missing or wrong"
        if request.content_type != "application/json":
            return f"content type is {request.content_type!r}, expected application/json"
        return None

    def _decode_body(self, body: object) -> list[bytes]:
        if not isinstance(body, dict):
            raise ValueError("body is not a JSON object")
        if body.get("model") != self.model:
            raise ValueError(f"model is {body.get('model')!r}, expected {self.model!r}")
        inputs = body.get("input")
        if not isinstance(inputs, list) or not inputs:
            raise ValueError("input must be a non-empty list")
        images = []
        for entry in inputs:
            match = _DATA_URL.match(entry.get("image", "")) if isinstance(entry, dict) else None
            if match is None:
                raise ValueError("each input needs an image data URL (data:image/...;base64,...)")
            images.append(base64.b64decode(match.group("data"), validate=True))
        return images


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"error": {"code": f"Http{status}", "message": message, "status": status}}
    return web.json_response(body, status=status, headers=headers)
