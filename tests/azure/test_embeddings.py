"""The real ImageEmbeddingsClient against the fake Azure AI endpoint, and the request coalescer."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import numpy as np
import pytest

from myapp.processing import PermanentError
from myapp.vectorization.batching import EmbeddingBatcher
from myapp.vectorization.embeddings import AzureImageEmbedder, EmbeddingServiceError
from myapp.vectorization.images import LoadedImage
from tests.azure.conftest import API_KEY, MODEL
from tests.azure.fake_inference import FakeImageEmbeddingsServer, vector_for
from tests.azure.peers import make_image

IMAGES = [LoadedImage(make_image((i * 40, 10, 200)), "image/png") for i in range(5)]


async def test_embeds_several_images_in_one_request_as_float32(
    embedder: AzureImageEmbedder, fake_ai: FakeImageEmbeddingsServer
) -> None:
    vectors = await embedder.embed(IMAGES[:3])

    assert fake_ai.violations == []
    assert fake_ai.batch_sizes == [3]
    for image, vector in zip(IMAGES, vectors, strict=False):
        assert vector.dtype == np.float32 and vector.shape == (16,)
        np.testing.assert_array_equal(vector, vector_for(image.content))
    assert embedder.model == MODEL


async def test_a_400_is_permanent_with_the_service_message(
    embedder: AzureImageEmbedder, fake_ai: FakeImageEmbeddingsServer
) -> None:
    fake_ai.fail_next(400, message="Image format is not valid for this model.")

    with pytest.raises(PermanentError) as caught:
        await embedder.embed(IMAGES[:1])

    assert str(caught.value).startswith("Azure AI image embeddings: HTTP 400 Bad Request: ")
    assert "Image format is not valid for this model." in str(caught.value)


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_throttling_and_server_errors_are_transient_and_not_retried_by_the_sdk(
    embedder: AzureImageEmbedder, fake_ai: FakeImageEmbeddingsServer, status: int
) -> None:
    fake_ai.fail_next(status, retry_after=1)

    with pytest.raises(EmbeddingServiceError, match=f"HTTP {status}") as caught:
        await embedder.embed(IMAGES[:1])

    assert not isinstance(caught.value, PermanentError)
    assert fake_ai.request_count == 1  # retries belong to the claim protocol's backoff
    assert len(await embedder.embed(IMAGES[:1])) == 1  # the next call goes through


async def test_a_slow_service_is_a_transient_timeout(fake_ai: FakeImageEmbeddingsServer) -> None:
    fake_ai.latency = 0.6  # twice the timeout
    async with AzureImageEmbedder(
        endpoint=fake_ai.endpoint, api_key=API_KEY, model=MODEL, timeout=timedelta(milliseconds=300)
    ) as slow:
        with pytest.raises(EmbeddingServiceError) as caught:
            await slow.embed(IMAGES[:1])
    assert not isinstance(caught.value, PermanentError)


async def test_a_wrong_key_is_not_permanent(fake_ai: FakeImageEmbeddingsServer) -> None:
    async with AzureImageEmbedder(
        endpoint=fake_ai.endpoint, api_key="wrong-key", model=MODEL
    ) as misconfigured:
        with pytest.raises(EmbeddingServiceError, match="HTTP 401"):
            await misconfigured.embed(IMAGES[:1])


async def test_the_api_key_never_reaches_logs_or_errors(
    fake_ai: FakeImageEmbeddingsServer, captured_logs: list[str]
) -> None:
    azure_logger = logging.getLogger("azure")
    previous_level = azure_logger.level
    azure_logger.setLevel(logging.DEBUG)
    fake_ai.fail_next(400, message=f"Echoing your request: api-key={API_KEY}")
    fake_ai.fail_next(500, message=f"Bearer {API_KEY}")
    errors: list[str] = []
    client = AzureImageEmbedder(endpoint=fake_ai.endpoint, api_key=API_KEY, model=MODEL)
    async with client:
        for _ in range(2):
            try:
                await client.embed(IMAGES[:1])
            except Exception as error:
                errors.append(f"{error!r} {error}")
        await client.embed(IMAGES[:2])
    azure_logger.setLevel(previous_level)

    assert len(errors) == 2 and all("***" in text for text in errors)
    assert any("Request headers" in line for line in captured_logs)  # the SDK did log
    everything = "\n".join(captured_logs + errors)
    assert API_KEY not in everything


async def test_concurrent_single_embeds_are_sent_as_one_request(
    embedder: AzureImageEmbedder, fake_ai: FakeImageEmbeddingsServer
) -> None:
    batcher = EmbeddingBatcher(embedder, max_wait=timedelta(seconds=5))

    async def one(image: LoadedImage) -> np.ndarray:
        async with batcher.reserve() as reservation:
            await asyncio.sleep(0.01)  # the image download
            return await reservation.embed(image)

    vectors = await asyncio.gather(*(one(image) for image in IMAGES))

    assert fake_ai.batch_sizes == [5]
    for image, vector in zip(IMAGES, vectors, strict=True):
        np.testing.assert_array_equal(vector, vector_for(image.content))


async def test_a_lone_image_is_sent_at_once(
    embedder: AzureImageEmbedder, fake_ai: FakeImageEmbeddingsServer
) -> None:
    batcher = EmbeddingBatcher(embedder, max_wait=timedelta(hours=1))

    vector = await asyncio.wait_for(batcher.embed(IMAGES[0]), timeout=10)

    np.testing.assert_array_equal(vector, vector_for(IMAGES[0].content))


async def test_a_caller_that_gives_up_does_not_hold_the_batch(
    embedder: AzureImageEmbedder, fake_ai: FakeImageEmbeddingsServer
) -> None:
    batcher = EmbeddingBatcher(embedder, max_wait=timedelta(hours=1))

    async def fails_to_download() -> None:
        async with batcher.reserve():
            await asyncio.sleep(0.01)
            raise PermanentError("404")

    results = await asyncio.gather(
        batcher.embed(IMAGES[0]),
        batcher.embed(IMAGES[1]),
        fails_to_download(),
        return_exceptions=True,
    )

    assert isinstance(results[2], PermanentError)
    assert fake_ai.batch_sizes == [2]


async def test_batches_are_capped_and_a_slow_download_waits_at_most_max_wait(
    embedder: AzureImageEmbedder, fake_ai: FakeImageEmbeddingsServer
) -> None:
    batcher = EmbeddingBatcher(embedder, max_batch_size=2, max_wait=timedelta(milliseconds=50))

    async def one(image: LoadedImage, download_seconds: float) -> np.ndarray:
        async with batcher.reserve() as reservation:
            await asyncio.sleep(download_seconds)
            return await reservation.embed(image)

    await asyncio.gather(*(one(image, 0.0) for image in IMAGES[:4]), one(IMAGES[4], 0.3))

    assert sorted(fake_ai.batch_sizes) == [1, 2, 2]


async def test_one_refused_image_fails_alone_and_the_rest_of_its_batch_succeeds(
    embedder: AzureImageEmbedder, fake_ai: FakeImageEmbeddingsServer
) -> None:
    batcher = EmbeddingBatcher(embedder, max_wait=timedelta(seconds=5))
    fake_ai.refuse(IMAGES[1].content)

    results = await asyncio.gather(
        *(batcher.embed(image) for image in IMAGES[:3]), return_exceptions=True
    )

    assert isinstance(results[1], PermanentError)
    np.testing.assert_array_equal(results[0], vector_for(IMAGES[0].content))
    np.testing.assert_array_equal(results[2], vector_for(IMAGES[2].content))
    assert fake_ai.batch_sizes[0] == 3 and sorted(fake_ai.batch_sizes[1:]) == [1, 1, 1]


async def test_a_transient_batch_failure_reaches_every_caller(
    embedder: AzureImageEmbedder, fake_ai: FakeImageEmbeddingsServer
) -> None:
    batcher = EmbeddingBatcher(embedder, max_wait=timedelta(seconds=5))
    fake_ai.fail_next(429, retry_after=10)

    results = await asyncio.gather(
        *(batcher.embed(image) for image in IMAGES[:3]), return_exceptions=True
    )

    assert all(isinstance(result, EmbeddingServiceError) for result in results)
    assert len({id(result) for result in results}) == 3
    assert fake_ai.batch_sizes == [3]


@pytest.mark.parametrize(
    ("embeddings", "problem"),
    [
        ([[]], r"unusable vector \(input 0\): it has 0 dimensions"),
        ([[0.5, float("nan"), 0.1]], "1 NaN or infinite values"),
        ([[float("inf"), float("-inf")]], "2 NaN or infinite values"),
        ([[1e39, 0.5]], "1 NaN or infinite values"),  # finite JSON, but beyond float32
        ([[0.5, "x"]], "not a list of numbers"),
        ([[0.5] * 16, [0.5] * 8], r"differing dimensions \[8, 16\]"),
    ],
)
async def test_unusable_vectors_are_a_readable_transient_error(
    embedder: AzureImageEmbedder,
    fake_ai: FakeImageEmbeddingsServer,
    embeddings: list[object],
    problem: str,
) -> None:
    fake_ai.answer_next_with(embeddings)

    with pytest.raises(EmbeddingServiceError, match=problem) as caught:
        await embedder.embed(IMAGES[: len(embeddings)])

    assert not isinstance(caught.value, PermanentError)
    assert str(caught.value).startswith("Azure AI image embeddings returned ")
    assert len(await embedder.embed(IMAGES[:1])) == 1  # the next answer is used again
