"""ImageVectorization on both databases, against the fake Azure AI endpoint and real image peers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import numpy as np
import pytest
from azure.storage.blob.aio import BlobServiceClient
from loguru import logger
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from myapp.data.models import ProcessingStatus, ProductPhoto
from myapp.handlers.image_vectorization import (
    ImageVectorizationHandler,
    ImageVectorizationOptions,
)
from myapp.processing import CycleReport, HandlerRegistration, WorkItemProcessingEngine, scoped
from myapp.processing.log_context import add_work_context
from myapp.storage.blobs import BlobStore
from myapp.vectorization.batching import EmbeddingBatcher
from myapp.vectorization.embeddings import AzureImageEmbedder
from myapp.vectorization.images import ImageLoader
from tests.azure.conftest import API_KEY, MODEL
from tests.azure.fake_inference import FakeImageEmbeddingsServer, vector_for
from tests.azure.peers import ImageServer, ServedFile, make_image
from tests.data.claim_helpers import database_now, pass_time
from tests.fixtures.clock import FakeClock
from tests.fixtures.logs import LogCapture

WORKER = "worker-test-1"


@dataclass
class Vectorization:
    """Everything a test needs to build handlers and run cycles."""

    sessions: async_sessionmaker[AsyncSession]
    clock: FakeClock
    batcher: EmbeddingBatcher
    loader: ImageLoader
    images: ImageServer
    ai: FakeImageEmbeddingsServer

    def handler(
        self, session: AsyncSession, photo_model: type[Any] = ProductPhoto, **options: Any
    ) -> ImageVectorizationHandler:
        return ImageVectorizationHandler(
            session=session,
            worker_id=WORKER,
            clock=self.clock,
            options=ImageVectorizationOptions(**options),
            embeddings=self.batcher,
            images=self.loader,
            photo_model=photo_model,
        )

    def engine(self, name: str = "ImageVectorization", **options: Any) -> WorkItemProcessingEngine:
        registration = HandlerRegistration(
            lambda: self.handler(scoped(self.sessions), **options),
            name=name,
            max_items_per_cycle=10,
        )
        return WorkItemProcessingEngine([registration], max_concurrency=10)

    async def add_photos(self, urls: Sequence[str], model: type[Any] = ProductPhoto) -> list[Any]:
        photos = [
            model(url=url, created_at=self.clock() - timedelta(minutes=len(urls) - i))
            for i, url in enumerate(urls)
        ]
        async with self.sessions() as session:
            session.add_all(photos)
            await session.commit()
        return photos

    async def serve(self, count: int, prefix: str = "photo") -> tuple[list[str], list[bytes]]:
        contents = [make_image((10 * i, 255 - i, 7)) for i in range(count)]
        urls = [
            self.images.add(f"/{prefix}-{i}.png", ServedFile(content))
            for i, content in enumerate(contents)
        ]
        return urls, contents

    async def pass_time(self, delta: timedelta, model: type[Any] = ProductPhoto) -> None:
        """`delta` goes by for the handlers (the fake clock) and for the claims (the
        database's clock, by moving the table's retry times and lease ends back)."""
        self.clock.advance(delta)
        await pass_time(self.sessions, model, delta)

    async def rows(self, model: type[Any] = ProductPhoto) -> list[Any]:
        async with self.sessions() as session:
            return list((await session.scalars(select(model).order_by(model.created_at))).all())


@pytest.fixture
async def vectorization(
    session_factory: async_sessionmaker[AsyncSession],
    clock: FakeClock,
    embedder: AzureImageEmbedder,
    fake_ai: FakeImageEmbeddingsServer,
    image_server: ImageServer,
    http_client: httpx.AsyncClient,
    blob_store: BlobStore,
) -> AsyncIterator[Vectorization]:
    batcher = EmbeddingBatcher(embedder)
    loader = ImageLoader(http=http_client, blob_store=blob_store)
    yield Vectorization(session_factory, clock, batcher, loader, image_server, fake_ai)


async def test_a_cycle_stores_float32_vectors_with_model_dimensions_and_time(
    vectorization: Vectorization,
    blob_service: BlobServiceClient,
    container_name: str,
) -> None:
    urls, contents = await vectorization.serve(2)
    blob_image = make_image((1, 2, 3), fmt="JPEG")
    container = await blob_service.create_container(container_name)
    await container.upload_blob("photo.jpg", blob_image)
    await vectorization.add_photos([*urls, f"blob://{container_name}/photo.jpg"])

    report = await vectorization.engine().run_cycle()

    assert (report.succeeded, report.failed) == (3, 0)
    assert vectorization.ai.violations == []
    assert vectorization.ai.request_count < 3  # photos processed together share requests
    rows = await vectorization.rows()
    for row, content in zip(rows, [*contents, blob_image], strict=True):
        assert row.status == ProcessingStatus.COMPLETED
        assert row.embedding.dtype == np.float32
        np.testing.assert_array_equal(row.embedding, vector_for(content))
        assert (row.embedding_model, row.embedding_dimensions) == (MODEL, 16)
        assert row.vectorized_at == vectorization.clock()
        assert row.locked_by is None and row.last_error is None

    again = await vectorization.engine().run_cycle()
    assert again.handlers["ImageVectorization"].fetched == 0


async def test_fetch_respects_max_items_oldest_first_and_skips_done_and_deleted(
    vectorization: Vectorization,
) -> None:
    urls, _ = await vectorization.serve(6)
    photos = await vectorization.add_photos(urls)
    async with vectorization.sessions() as session:
        done = await session.get(ProductPhoto, photos[0].id)
        deleted = await session.get(ProductPhoto, photos[1].id)
        assert done is not None and deleted is not None
        done.embedding, done.status = vector_for(b"x"), ProcessingStatus.COMPLETED
        deleted.deleted_at = vectorization.clock()
        await session.commit()

    async with vectorization.sessions() as session:
        claimed = await vectorization.handler(session).fetch_work_items(3)

    assert [p.id for p in claimed] == [p.id for p in photos[2:5]]
    assert all(p.status == ProcessingStatus.STARTED and p.locked_by == WORKER for p in claimed)


async def test_process_updates_the_database(vectorization: Vectorization) -> None:
    urls, contents = await vectorization.serve(1)
    await vectorization.add_photos(urls)
    async with vectorization.sessions() as session:
        [photo] = await vectorization.handler(session).fetch_work_items(10)

    async with vectorization.sessions() as session:
        await vectorization.handler(session).process(photo)
    async with vectorization.sessions() as session:
        await vectorization.handler(session).complete([photo])

    [row] = await vectorization.rows()
    np.testing.assert_array_equal(row.embedding, vector_for(contents[0]))
    assert (row.status, row.embedding_dimensions) == (ProcessingStatus.COMPLETED, 16)


async def test_photos_processed_together_are_embedded_in_one_request(
    vectorization: Vectorization,
) -> None:
    urls, contents = await vectorization.serve(4)
    await vectorization.add_photos(urls)
    async with vectorization.sessions() as session:
        photos = await vectorization.handler(session).fetch_work_items(10)

    async def process(photo: Any) -> None:
        async with vectorization.sessions() as session:
            await vectorization.handler(session).process(photo)

    await asyncio.gather(*(process(photo) for photo in photos))

    assert vectorization.ai.batch_sizes == [4]
    rows = await vectorization.rows()
    for row, content in zip(rows, contents, strict=True):
        np.testing.assert_array_equal(row.embedding, vector_for(content))


async def test_a_429_is_retried_through_the_claim_backoff(vectorization: Vectorization) -> None:
    urls, contents = await vectorization.serve(1)
    await vectorization.add_photos(urls)
    vectorization.ai.fail_next(429, retry_after=30, message="Rate limit exceeded")
    engine = vectorization.engine()

    first = await engine.run_cycle()
    [row] = await vectorization.rows()
    assert first.failed == 1
    assert (row.status, row.attempts, row.embedding) == (ProcessingStatus.QUEUED, 1, None)
    assert row.next_attempt_at > await database_now(vectorization.sessions)
    assert "HTTP 429" in row.last_error and "Rate limit exceeded" in row.last_error

    assert (await engine.run_cycle()).handlers["ImageVectorization"].fetched == 0  # backing off

    await vectorization.pass_time(timedelta(hours=2))
    last = await engine.run_cycle()
    [row] = await vectorization.rows()
    assert last.succeeded == 1
    assert (row.status, row.attempts) == (ProcessingStatus.COMPLETED, 2)
    np.testing.assert_array_equal(row.embedding, vector_for(contents[0]))


async def test_a_400_from_the_model_fails_the_row_with_a_readable_error(
    vectorization: Vectorization,
) -> None:
    urls, _ = await vectorization.serve(1)
    await vectorization.add_photos(urls)
    vectorization.ai.fail_next(400, message="The image could not be decoded by the model.")

    await vectorization.engine().run_cycle()

    [row] = await vectorization.rows()
    assert (row.status, row.attempts, row.embedding) == (ProcessingStatus.FAILED, 1, None)
    assert row.last_error.startswith("PermanentError: Azure AI image embeddings: HTTP 400")
    assert "The image could not be decoded by the model." in row.last_error


async def test_a_vector_with_nan_values_is_never_stored_and_the_row_is_retried(
    vectorization: Vectorization,
) -> None:
    urls, _ = await vectorization.serve(1)
    await vectorization.add_photos(urls)
    vectorization.ai.answer_next_with([[0.5, float("nan")] * 8])

    report = await vectorization.engine().run_cycle()

    [row] = await vectorization.rows()
    assert report.failed == 1
    assert (row.status, row.attempts, row.embedding) == (ProcessingStatus.QUEUED, 1, None)
    assert row.last_error.startswith("EmbeddingServiceError: Azure AI image embeddings returned")
    assert "8 NaN or infinite values" in row.last_error


async def test_images_over_max_image_bytes_are_refused_before_the_model(
    vectorization: Vectorization,
) -> None:
    big = make_image((3, 3, 3), size=(200, 200), fmt="BMP")
    await vectorization.add_photos([vectorization.images.add("/big.bmp", ServedFile(big))])

    await vectorization.engine(MaxImageBytes=10_000).run_cycle()

    [row] = await vectorization.rows()
    assert row.status == ProcessingStatus.FAILED
    assert f"image is {len(big)} bytes, over MaxImageBytes (10000 bytes)" in row.last_error
    assert vectorization.ai.request_count == 0


async def test_a_non_image_with_an_image_content_type_is_refused(
    vectorization: Vectorization,
) -> None:
    page = ServedFile(b"<!doctype html><p>Sorry, this photo was removed</p>", "image/jpeg")
    missing = f"{vectorization.images.base_url}/removed.png"
    await vectorization.add_photos([vectorization.images.add("/photo.jpg", page), missing])

    await vectorization.engine().run_cycle()

    fake_jpeg, gone = await vectorization.rows()
    assert fake_jpeg.status == gone.status == ProcessingStatus.FAILED
    assert "not a readable image" in fake_jpeg.last_error
    assert "HTTP 404" in gone.last_error
    assert vectorization.ai.request_count == 0


async def test_the_api_key_is_absent_from_logs_and_stored_errors(
    vectorization: Vectorization, captured_logs: list[str]
) -> None:
    urls, _ = await vectorization.serve(2)
    await vectorization.add_photos(urls[:1])
    vectorization.ai.fail_next(500, message=f"internal error; your key was {API_KEY}")
    await vectorization.engine().run_cycle()
    await vectorization.add_photos(urls[1:])
    await vectorization.pass_time(timedelta(hours=2))
    # Enough for a batch of both and for each photo alone: both fail, batched or not.
    vectorization.ai.fail_next(400, times=3, message=f"api-key {API_KEY} cannot embed this")
    await vectorization.engine().run_cycle()

    rows = await vectorization.rows()
    stored = [row.last_error or "" for row in rows]
    assert [row.status for row in rows] == [ProcessingStatus.FAILED] * 2
    assert all("HTTP 400" in text and "***" in text for text in stored)
    assert any("HTTP 500" in line for line in captured_logs)
    assert API_KEY not in "\n".join(stored + captured_logs)


async def test_transient_image_download_failures_are_retried(
    vectorization: Vectorization,
) -> None:
    content = make_image((50, 60, 70))
    url = vectorization.images.add("/flaky.png", ServedFile(content, status=503))
    await vectorization.add_photos([url])
    engine = vectorization.engine()

    await engine.run_cycle()
    [row] = await vectorization.rows()
    assert (row.status, row.attempts) == (ProcessingStatus.QUEUED, 1)

    vectorization.images.files["/flaky.png"] = ServedFile(content)
    await vectorization.pass_time(timedelta(hours=2))
    await engine.run_cycle()
    [row] = await vectorization.rows()
    assert row.status == ProcessingStatus.COMPLETED


async def run_until_idle(
    engine: WorkItemProcessingEngine, vectorization: Vectorization, model: type[Any]
) -> list[CycleReport]:
    reports = []
    for _ in range(10):
        reports.append(await engine.run_cycle())
        if reports[-1].handlers and not any(s.fetched for s in reports[-1].handlers.values()):
            return reports
        await vectorization.pass_time(timedelta(hours=2), model)
    return reports


async def test_a_second_registration_vectorizes_another_photo_table(
    vectorization: Vectorization,
) -> None:
    from tests.azure.delivery_photos import DeliveryPhoto, delivery_photo_table

    async with delivery_photo_table(vectorization.sessions):
        urls, contents = await vectorization.serve(2, prefix="delivery")
        await vectorization.add_photos(urls, model=DeliveryPhoto)
        product_urls, _ = await vectorization.serve(1, prefix="product")
        await vectorization.add_photos(product_urls)
        registration = HandlerRegistration(
            lambda: vectorization.handler(scoped(vectorization.sessions), DeliveryPhoto),
            name="DeliveryImageVectorization",
        )
        engine = WorkItemProcessingEngine([registration], max_concurrency=4)

        await run_until_idle(engine, vectorization, DeliveryPhoto)

        delivered = await vectorization.rows(DeliveryPhoto)
        for row, content in zip(delivered, contents, strict=True):
            assert row.status == ProcessingStatus.COMPLETED
            np.testing.assert_array_equal(row.embedding, vector_for(content))
        [product] = await vectorization.rows()
        assert product.embedding is None  # the other table was not touched


async def test_two_registrations_of_the_handler_log_under_their_own_names(
    vectorization: Vectorization, logs: LogCapture
) -> None:
    from tests.azure.delivery_photos import DeliveryPhoto, delivery_photo_table

    async with delivery_photo_table(vectorization.sessions):
        delivery_urls, _ = await vectorization.serve(2, prefix="delivery")
        delivered = await vectorization.add_photos(delivery_urls, model=DeliveryPhoto)
        product_urls, _ = await vectorization.serve(1, prefix="product")
        products = await vectorization.add_photos(product_urls)
        registrations = [
            HandlerRegistration(
                lambda model=model: vectorization.handler(scoped(vectorization.sessions), model),
                name=name,
            )
            for name, model in [("DeliveryPhotos", DeliveryPhoto), ("ProductPhotos", ProductPhoto)]
        ]
        logger.configure(patcher=add_work_context)  # as configure_logging installs it
        try:
            await WorkItemProcessingEngine(registrations, max_concurrency=4).run_cycle()
        finally:
            logger.configure(patcher=lambda record: None)

    vectorized = {
        record.extra["item_id"]: record.extra["handler"]
        for record in logs.starting_with("Vectorized photo")
    }
    assert vectorized == {
        **{str(photo.id): "DeliveryPhotos" for photo in delivered},
        **{str(photo.id): "ProductPhotos" for photo in products},
    }


async def test_the_engine_hands_queued_photos_over_as_one_batch_and_a_bad_one_fails_alone(
    vectorization: Vectorization, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def not_per_item(self: Any, item: Any) -> None:
        raise AssertionError("the engine must use process_batch")

    monkeypatch.setattr(ImageVectorizationHandler, "process", not_per_item)
    urls, contents = await vectorization.serve(5)
    big = make_image((3, 3, 3), size=(200, 200), fmt="BMP")
    bad_url = vectorization.images.add("/big.bmp", ServedFile(big))
    await vectorization.add_photos([*urls, bad_url])

    report = await vectorization.engine(MaxImageBytes=10_000).run_cycle()

    assert (report.succeeded, report.failed) == (5, 1)
    assert vectorization.ai.batch_sizes == [5]  # one call, one request for the five good ones
    rows = await vectorization.rows()
    for row, content in zip(rows[:5], contents, strict=True):
        assert row.status == ProcessingStatus.COMPLETED
        np.testing.assert_array_equal(row.embedding, vector_for(content))
    assert rows[5].status == ProcessingStatus.FAILED
    assert "over MaxImageBytes" in rows[5].last_error
