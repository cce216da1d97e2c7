"""Engines, URLs and column types behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from myapp.data.database import create_engine, normalize_url, redact_url
from myapp.data.models import (
    CandidateStatus,
    ProcessingStatus,
    Product,
    ProductPhoto,
    StagingBatch,
    StagingPurchaseOrder,
    StagingPurchaseOrderItem,
    Supplier,
)

Factory = async_sessionmaker[AsyncSession]
SECRET = "s3cr%40t-pw"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db:5432/app", "postgresql+asyncpg://u:p@db:5432/app"),
        ("postgresql://u@db/app", "postgresql+asyncpg://u@db/app"),
        ("postgresql+asyncpg://u@db/app", "postgresql+asyncpg://u@db/app"),
        ("sqlite:///./data/x.db", "sqlite+aiosqlite:///./data/x.db"),
        ("sqlite+aiosqlite:///./data/x.db", "sqlite+aiosqlite:///./data/x.db"),
    ],
)
def test_urls_get_the_async_driver(given: str, expected: str) -> None:
    assert normalize_url(given).render_as_string(hide_password=False) == expected


def test_unsupported_urls_are_refused_without_their_password() -> None:
    with pytest.raises(ValueError) as raised:
        normalize_url(f"mysql://user:{SECRET}@db/app")
    assert SECRET not in str(raised.value)
    assert "mysql://user:***@db/app" in str(raised.value)


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://user:{SECRET}@db:5432/app",
        f"weird url user:{SECRET}@host",
        f"postgresql://db/app?user=app&password={SECRET}&sslmode=require",
    ],
)
def test_redact_url_masks_the_password(url: str) -> None:
    redacted = redact_url(url)
    assert SECRET not in redacted
    assert "***" in redacted


async def test_sqlite_engine_creates_its_directory_and_sets_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "app.db"
    engine = create_engine(f"sqlite:///{path}")
    try:
        async with engine.connect() as connection:
            pragmas = [
                (await connection.exec_driver_sql(f"PRAGMA {name}")).scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout")
            ]
    finally:
        await engine.dispose()
    assert path.parent.is_dir()
    assert pragmas[0] == "wal"
    assert pragmas[1] == 1
    assert pragmas[2] > 0


async def test_a_new_file_another_process_is_writing_still_gets_wal(tmp_path: Path) -> None:
    # Workers starting together on a new file: while one holds the write lock (putting the
    # file in WAL mode takes it too), SQLite refuses another's change to WAL at once instead of
    # waiting with its busy handler: waiting for a lock while holding a read lock could deadlock.
    path = tmp_path / "new.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("CREATE TABLE t (x)")
    writer.execute("BEGIN IMMEDIATE")  # the write lock, until COMMIT
    engine = create_engine(f"sqlite:///{path}")
    try:

        async def journal_mode() -> str:
            async with engine.connect() as connection:
                return str((await connection.exec_driver_sql("PRAGMA journal_mode")).scalar())

        opening = asyncio.create_task(journal_mode())
        await asyncio.sleep(0.2)
        assert not opening.done()  # still waiting for the lock, not failed
        writer.execute("COMMIT")
        assert await opening == "wal"
    finally:
        writer.close()
        await engine.dispose()


async def test_values_round_trip_exactly(session_factory: Factory) -> None:
    moment = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=timezone(timedelta(hours=2)))
    price = Decimal("12345678901234.5678")  # 18 digits: more than a float holds
    vector = np.array([0.1, -2.5, 3.25e-8], dtype=np.float32)
    async with session_factory() as session:
        supplier = Supplier(name="Shein", website_url="https://shein.test")
        batch = StagingBatch(
            batch_processor_name="Shein", file_hash="abc", started_at=moment, supplier=supplier
        )
        order = StagingPurchaseOrder(supplier_reference="SO-1", order_date=moment)
        order.items.append(StagingPurchaseOrderItem(quantity=2, actual_unit_price=price))
        batch.orders.append(order)
        product = Product(sku="SKU-1", name="Mug")
        photo = ProductPhoto(url="https://img.test/1.jpg", embedding=vector, product=product)
        session.add_all([batch, photo])
        await session.commit()
        ids = (batch.id, photo.id)

    async with session_factory() as session:
        loaded_batch = await session.get_one(StagingBatch, ids[0])
        loaded_item = (await session.execute(select(StagingPurchaseOrderItem))).scalar_one()
        loaded_photo = await session.get_one(ProductPhoto, ids[1])
        raw_status = (await session.execute(text("SELECT status FROM staging_batches"))).scalar()

    assert isinstance(loaded_batch.id, uuid.UUID)
    assert loaded_batch.supplier_id is not None
    assert loaded_batch.started_at == moment
    assert loaded_batch.started_at is not None and loaded_batch.started_at.tzinfo == UTC
    assert loaded_batch.created_at.tzinfo == UTC
    assert loaded_batch.status is ProcessingStatus.QUEUED
    assert (loaded_batch.attempts, loaded_batch.max_attempts) == (0, 5)
    assert raw_status == "Queued"
    assert loaded_item.actual_unit_price == price
    assert loaded_item.status is CandidateStatus.PENDING
    assert loaded_photo.embedding is not None
    assert loaded_photo.embedding.dtype == np.float32
    assert np.array_equal(loaded_photo.embedding, vector)
    assert loaded_photo.status is ProcessingStatus.QUEUED


async def test_naive_datetimes_are_refused(session_factory: Factory) -> None:
    async with session_factory() as session:
        session.add(
            StagingBatch(
                batch_processor_name="Shein", file_hash="x", started_at=datetime(2026, 1, 1)
            )
        )
        with pytest.raises(StatementError, match="naive datetime"):
            await session.commit()


async def test_file_hash_is_unique_per_processor(session_factory: Factory) -> None:
    async with session_factory() as session:
        session.add(StagingBatch(batch_processor_name="Shein", file_hash="same"))
        session.add(StagingBatch(batch_processor_name="Other", file_hash="same"))
        await session.commit()
        session.add(StagingBatch(batch_processor_name="Shein", file_hash="same"))
        with pytest.raises(IntegrityError):
            await session.commit()
