"""Each built-in handler through the real `ApplicationContainer`, in process, as the design card
says tests should run: the container built as `myapp.bootstrap` builds it, then `database.*`,
`azure.*` and `core.clock` overridden by fakes (the embedder, the image loader, the blob store,
the clock; the test's own database engine and cookie cipher) and one `run_cycle()`. The Shein
pages are a real server on 127.0.0.1; everything Azure is a fake."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dependency_injector import providers
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from myapp.bootstrap import build_container, build_engine
from myapp.data.models import ProcessingStatus, ProductPhoto, StagingBatch
from myapp.processing import CycleReport, PermanentError
from myapp.scraping.batches import BATCH_PROCESSOR_NAME
from myapp.settings import load_settings
from myapp.storage.blobs import DeleteOutcome
from myapp.storage.listing import BlobInfo
from myapp.vectorization.batching import EmbeddingBatcher
from myapp.vectorization.embeddings import Vector
from myapp.vectorization.images import LoadedImage
from tests.fixtures.clock import FakeClock
from tests.scraping.conftest import TEST_CIPHER, TEST_COOKIE_KEY, cookie_file_text
from tests.scraping.pages import detail_page, list_page, sample_orders
from tests.scraping.server import FakeSite, running_site

BUILT_IN = ("Shein", "ImageVectorization", "BlobCleanup")
CLEANED_CONTAINER = "search-images"
MAX_AGE = timedelta(hours=24)
DIMENSIONS = 8


class FakeEmbedder:
    """The Azure AI image embedder: a vector derived from the image's bytes, batches recorded."""

    model = "fake-embed-v1"

    def __init__(self) -> None:
        self.batches: list[list[bytes]] = []

    async def embed(self, images: Sequence[LoadedImage]) -> list[Vector]:
        self.batches.append([image.content for image in images])
        return [vector_of(image.content) for image in images]


def vector_of(content: bytes) -> Vector:
    return np.frombuffer(hashlib.sha256(content).digest()[:DIMENSIONS], np.uint8).astype(np.float32)


@dataclass
class FakeImageLoader:
    """Downloads nothing: an image is its URL's bytes; `refused` URLs are not images."""

    refused: set[str] = field(default_factory=set)
    loaded: list[str] = field(default_factory=list)

    async def load(self, url: str, **limits: Any) -> LoadedImage:
        self.loaded.append(url)
        if url in self.refused:
            raise PermanentError(f"{url} is not an image")
        return LoadedImage(url.encode(), "image/png")


@dataclass
class FakeBlobStore:
    """A blob container in memory: listed by age, deleted when unchanged."""

    blobs: dict[tuple[str, str], BlobInfo] = field(default_factory=dict)

    def add(self, container: str, name: str, created_at: datetime) -> None:
        self.blobs[(container, name)] = BlobInfo(container, name, created_at, created_at, "etag")

    def names(self, container: str) -> set[str]:
        return {name for (where, name) in self.blobs if where == container}

    async def list_older_than(self, container: str, cutoff: datetime, limit: int) -> list[BlobInfo]:
        old = [
            blob
            for (where, _), blob in sorted(self.blobs.items())
            if where == container and blob.last_modified < cutoff
        ]
        return old[:limit]

    async def delete_if_unchanged(self, blob: BlobInfo, *, now: datetime) -> DeleteOutcome:
        if self.blobs.pop((blob.container, blob.name), None) is None:
            return DeleteOutcome.GONE
        return DeleteOutcome.DELETED


@dataclass
class Application:
    """The real application container with its fakes in place, and what they saw."""

    container: Any
    clock: FakeClock
    embedder: FakeEmbedder
    images: FakeImageLoader
    blobs: FakeBlobStore
    sessions: async_sessionmaker[AsyncSession]

    async def run_cycle(self) -> CycleReport:
        return await build_engine(self.container).run_cycle()


@pytest.fixture
async def site() -> AsyncIterator[FakeSite]:
    async with running_site() as fake:
        yield fake


@pytest.fixture
def application(
    config_dir: Path,
    db_url: str,
    db_engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    clock: FakeClock,
    site: FakeSite,
) -> Application:
    settings = {
        "ConnectionStrings": {"Database": db_url, "BlobStorage": "UseDevelopmentStorage=true"},
        "AzureAI": {"Endpoint": "https://ai.invalid/models", "ApiKey": "never-used"},
        "Secrets": {"CookieKey": TEST_COOKIE_KEY},
        "BackgroundProcessing": {"Shein": {"BaseUrl": site.url, "RequestDelay": "00:00:00"}},
    }
    (config_dir / "appsettings.json").write_text(json.dumps(settings))
    container = build_container(load_settings(config_dir=config_dir))  # as bootstrap does
    embedder, images, blobs = FakeEmbedder(), FakeImageLoader(), FakeBlobStore()
    container.core.clock.override(providers.Object(clock))
    container.database.engine.override(providers.Object(db_engine))
    container.database.cookie_cipher.override(providers.Object(TEST_CIPHER))
    container.azure.embedding_batcher.override(providers.Object(EmbeddingBatcher(embedder)))
    container.azure.image_loader.override(providers.Object(images))
    container.azure.blob_store.override(providers.Object(blobs))
    return Application(container, clock, embedder, images, blobs, session_factory)


def assert_only(report: CycleReport, name: str) -> None:
    """Every built-in handler ran its fetch; the others found nothing to do."""
    assert sorted(report.handlers) == sorted(BUILT_IN)
    for other in set(BUILT_IN) - {name}:
        stats = report.handlers[other]
        assert (stats.fetched, stats.failed, stats.fetch_error) == (0, 0, None), other


async def test_shein_scrapes_a_queued_batch_into_staging_orders(
    application: Application, site: FakeSite
) -> None:
    orders = sample_orders(3)
    site.serve("/user/orders/list", list_page(orders))
    for order in orders:
        site.serve(f"/user/orders/detail/{order.billno}", detail_page(order))
    async with application.sessions() as session:
        batch = StagingBatch(
            batch_processor_name=BATCH_PROCESSOR_NAME,
            file_hash="hash-1",
            started_at=application.clock(),
            file_contents=TEST_CIPHER.seal(cookie_file_text().encode()),
        )
        session.add(batch)
        await session.commit()

    report = await application.run_cycle()

    assert_only(report, "Shein")
    assert (report.handlers["Shein"].succeeded, report.handlers["Shein"].failed) == (1, 0)
    async with application.sessions() as session:
        stored = await session.get_one(
            StagingBatch, batch.id, options=[selectinload(StagingBatch.orders)]
        )
        cookies_kept = await session.scalar(
            select(StagingBatch.file_contents).where(StagingBatch.id == batch.id)
        )
    assert stored.status == ProcessingStatus.COMPLETED
    assert stored.completed_at == application.clock()  # the overridden clock, not the wall's
    assert cookies_kept is None  # a finished batch keeps no cookies
    assert sorted(o.supplier_reference for o in stored.orders) == sorted(o.billno for o in orders)


async def test_image_vectorization_stores_each_photos_vector_and_fails_a_refused_image_alone(
    application: Application,
) -> None:
    urls = [f"https://images.invalid/{n}.png" for n in range(3)]
    refused = "https://images.invalid/not-an-image.txt"
    application.images.refused.add(refused)
    now = application.clock()
    async with application.sessions() as session:
        session.add_all(
            ProductPhoto(url=url, created_at=now - timedelta(minutes=10 - n))
            for n, url in enumerate([*urls, refused])
        )
        await session.commit()

    report = await application.run_cycle()

    assert_only(report, "ImageVectorization")
    stats = report.handlers["ImageVectorization"]
    assert (stats.fetched, stats.succeeded, stats.failed) == (4, 3, 1)
    assert sorted(application.images.loaded) == sorted([*urls, refused])
    assert sorted(c for batch in application.embedder.batches for c in batch) == sorted(
        url.encode() for url in urls
    )
    async with application.sessions() as session:
        photos = {p.url: p for p in await session.scalars(select(ProductPhoto))}
    for url in urls:
        photo = photos[url]
        assert photo.status == ProcessingStatus.COMPLETED
        assert photo.embedding is not None
        assert np.array_equal(photo.embedding, vector_of(url.encode()))
        assert (photo.embedding_model, photo.embedding_dimensions) == ("fake-embed-v1", DIMENSIONS)
        assert photo.vectorized_at == now
    assert photos[refused].status == ProcessingStatus.FAILED  # permanent: no retry
    assert photos[refused].embedding is None
    assert "not an image" in (photos[refused].last_error or "")


async def test_blob_cleanup_deletes_the_blobs_older_than_max_age_by_the_clock(
    application: Application,
) -> None:
    now = application.clock()
    for name in ("old-1.png", "old-2.png"):
        application.blobs.add(CLEANED_CONTAINER, name, now - MAX_AGE - timedelta(minutes=1))
    application.blobs.add(CLEANED_CONTAINER, "recent.png", now - MAX_AGE + timedelta(minutes=1))
    application.blobs.add("other-container", "old-elsewhere.png", now - 2 * MAX_AGE)

    report = await application.run_cycle()

    assert_only(report, "BlobCleanup")
    assert (report.handlers["BlobCleanup"].succeeded, report.handlers["BlobCleanup"].failed) == (
        2,
        0,
    )
    assert application.blobs.names(CLEANED_CONTAINER) == {"recent.png"}
    assert application.blobs.names("other-container") == {"old-elsewhere.png"}
