"""submit_cookie_file and list_batches, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import traceback
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from myapp.data.models import (
    ProcessingStatus,
    StagingBatch,
    StagingPurchaseOrder,
    Supplier,
)
from myapp.scraping.batches import (
    DuplicateBatchError,
    SubmitError,
    list_batches,
    submit_cookie_file,
)
from myapp.scraping.errors import CookieFileError, CookiesExpiredError
from tests.fixtures.clock import FakeClock
from tests.scraping.at_rest import stored_contents
from tests.scraping.conftest import COOKIE_VALUES, TEST_CIPHER, cookie_file_text

Factory = async_sessionmaker[AsyncSession]


def write(tmp_path: Path, text: str, name: str = "cookies.json") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


async def test_submit_queues_a_batch_and_creates_the_supplier(
    session_factory: Factory, clock: FakeClock, tmp_path: Path
) -> None:
    path = write(tmp_path, cookie_file_text())

    async with session_factory() as session:
        batch = await submit_cookie_file(session, path, None, clock, cipher=TEST_CIPHER)

    async with session_factory() as session:
        stored = await session.get_one(StagingBatch, batch.id)
        supplier = await session.scalar(select(Supplier).where(Supplier.name == "Shein"))
    assert stored.status == ProcessingStatus.QUEUED
    assert stored.batch_processor_name == "Shein"
    assert stored.started_at == clock.now
    assert stored.file_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert supplier is not None and stored.supplier_id == supplier.id
    token = await stored_contents(session_factory, batch.id)
    assert token is not None and TEST_CIPHER.open(token) == path.read_bytes()
    assert not any(value in token for value in COOKIE_VALUES)


async def test_submit_uses_an_existing_supplier_by_name(
    session_factory: Factory, clock: FakeClock, tmp_path: Path
) -> None:
    async with session_factory() as session:
        session.add(Supplier(name="Shein ZA"))
        await session.commit()
        first = await submit_cookie_file(
            session, write(tmp_path, cookie_file_text()), "Shein ZA", clock, cipher=TEST_CIPHER
        )
        other = cookie_file_text(session_value="another-session")
        second = await submit_cookie_file(
            session, write(tmp_path, other, "b.json"), "Shein ZA", clock, cipher=TEST_CIPHER
        )

    async with session_factory() as session:
        count = await session.scalar(select(func.count()).select_from(Supplier))
    assert count == 1
    assert first.supplier_id == second.supplier_id


async def test_the_same_file_twice_is_refused_naming_the_batch(
    session_factory: Factory, clock: FakeClock, tmp_path: Path
) -> None:
    path = write(tmp_path, cookie_file_text())
    async with session_factory() as session:
        batch = await submit_cookie_file(session, path, None, clock, cipher=TEST_CIPHER)

    async with session_factory() as session:
        with pytest.raises(
            DuplicateBatchError, match=f"already submitted as batch {batch.id}"
        ) as e:
            await submit_cookie_file(session, path, "Other name", clock, cipher=TEST_CIPHER)

    assert "(status Queued)" in str(e.value)
    assert e.value.batch_id == batch.id


@pytest.mark.parametrize(
    ("text", "error", "expected"),
    [
        ("{nope", CookieFileError, "cookie file is not valid JSON"),
        ('{"domain": "x"}', CookieFileError, "capturedAt: Field required"),
        (
            cookie_file_text(expires_at=datetime(2025, 1, 1, tzinfo=UTC)),
            CookiesExpiredError,
            "cookies expired at 2025-01-01",
        ),
    ],
)
async def test_a_bad_file_is_refused_before_anything_is_stored(
    session_factory: Factory,
    clock: FakeClock,
    tmp_path: Path,
    text: str,
    error: type[Exception],
    expected: str,
) -> None:
    async with session_factory() as session:
        with pytest.raises(error, match=expected) as caught:
            await submit_cookie_file(
                session, write(tmp_path, text), None, clock, cipher=TEST_CIPHER
            )
        count = await session.scalar(select(func.count()).select_from(StagingBatch))

    assert count == 0
    for value in COOKIE_VALUES:
        assert value not in str(caught.value)


async def test_a_missing_file_is_a_readable_error(
    session_factory: Factory, clock: FakeClock, tmp_path: Path
) -> None:
    async with session_factory() as session:
        with pytest.raises(CookieFileError, match=r"cannot read cookie file .*absent\.json"):
            await submit_cookie_file(
                session, tmp_path / "absent.json", None, clock, cipher=TEST_CIPHER
            )


async def test_list_batches_with_counts_and_errors(
    session_factory: Factory, clock: FakeClock, tmp_path: Path
) -> None:
    async with session_factory() as session:
        older = await submit_cookie_file(
            session, write(tmp_path, cookie_file_text()), None, clock, cipher=TEST_CIPHER
        )
        clock.advance(timedelta(hours=1))
        newer_file = write(tmp_path, cookie_file_text(session_value="other"), "b.json")
        newer = await submit_cookie_file(session, newer_file, None, clock, cipher=TEST_CIPHER)
        for n, status in enumerate(
            [ProcessingStatus.COMPLETED, ProcessingStatus.FAILED, ProcessingStatus.FAILED]
        ):
            session.add(
                StagingPurchaseOrder(
                    batch_id=older.id,
                    supplier_reference=f"A{n}",
                    status=status,
                    error_message="HTTP 404" if status == ProcessingStatus.FAILED else None,
                )
            )
        failed = await session.get_one(StagingBatch, newer.id)
        failed.status = ProcessingStatus.FAILED
        failed.error_message = "cookies expired at 2025-01-01T00:00:00+00:00"
        await session.commit()

    async with session_factory() as session:
        summaries = await list_batches(session)

    assert [s.id for s in summaries] == [newer.id, older.id]
    newest, oldest = summaries
    assert (oldest.order_count, oldest.failed_order_count) == (3, 2)
    assert oldest.status == ProcessingStatus.QUEUED and oldest.supplier == "Shein"
    assert (newest.order_count, newest.failed_order_count) == (0, 0)
    assert newest.error == "cookies expired at 2025-01-01T00:00:00+00:00"
    assert newest.started_at == clock.now and newest.completed_at is None


@pytest.fixture
async def batches_refused(session_factory: Factory) -> AsyncIterator[str]:
    """The database refuses every new batch with an integrity error other than a duplicate: a
    CHECK constraint on PostgreSQL (dropped after: the database is shared by the session's
    tests), a trigger on SQLite (the file is the test's own). Yields what the error says."""
    async with session_factory() as session:
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(
                text(
                    "ALTER TABLE staging_batches ADD CONSTRAINT ck_test_refuse_batches "
                    "CHECK (file_hash = 'never') NOT VALID"
                )
            )
            expected = "constraint ck_test_refuse_batches was violated"
        else:
            await session.execute(
                text(
                    "CREATE TRIGGER refuse_batches BEFORE INSERT ON staging_batches "
                    "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                )
            )
            expected = "a database constraint was violated"
        await session.commit()
    try:
        yield expected
    finally:
        async with session_factory() as session:
            if session.get_bind().dialect.name == "postgresql":
                await session.execute(
                    text("ALTER TABLE staging_batches DROP CONSTRAINT ck_test_refuse_batches")
                )
                await session.commit()


async def test_another_integrity_error_is_a_clean_error_without_the_cookie_file(
    session_factory: Factory, clock: FakeClock, tmp_path: Path, batches_refused: str
) -> None:
    path = write(tmp_path, cookie_file_text())

    async with session_factory() as session:
        with pytest.raises(SubmitError) as caught:
            await submit_cookie_file(session, path, None, clock, cipher=TEST_CIPHER)
        count = await session.scalar(select(func.count()).select_from(StagingBatch))

    assert str(caught.value) == f"could not save the batch: {batches_refused}"
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    printed = "".join(traceback.format_exception(caught.value))
    assert "parameters" not in printed and "INSERT" not in printed
    for value in COOKIE_VALUES:
        assert value not in printed
    assert count == 0
