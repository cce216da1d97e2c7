"""`myapp status` figures on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from myapp.data.models import ProcessingStatus, ProductPhoto, StagingBatch
from myapp.data.status import table_statuses
from tests.data.claim_helpers import database_now
from tests.fixtures.clock import FakeClock

LIVE_LEASE = timedelta(minutes=5)


async def test_counts_expired_leases_and_oldest_queued(
    session_factory: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    now = clock()
    statuses = [
        (ProcessingStatus.QUEUED, None, timedelta(hours=2)),
        (ProcessingStatus.QUEUED, None, timedelta(hours=1)),
        (ProcessingStatus.STARTED, now - timedelta(minutes=1), timedelta(0)),  # lease ran out
        (ProcessingStatus.STARTED, now + timedelta(minutes=5), timedelta(0)),  # still held
        (ProcessingStatus.COMPLETED, None, timedelta(0)),
        (ProcessingStatus.FAILED, None, timedelta(0)),
    ]
    async with session_factory() as session:
        for index, (status, locked_until, age) in enumerate(statuses):
            session.add(
                StagingBatch(
                    batch_processor_name="Shein",
                    file_hash=f"hash-{index}",
                    status=status,
                    locked_until=locked_until,
                    created_at=now - age,
                )
            )
        session.add(ProductPhoto(url="https://example.test/deleted.png", deleted_at=now))
        session.add(ProductPhoto(url="https://example.test/queued.png", created_at=now))
        await session.commit()

    async with session_factory() as session:
        batches, photos = await table_statuses(session, now)

    assert batches.table == "staging_batches"
    assert batches.counts == {
        ProcessingStatus.QUEUED: 2,
        ProcessingStatus.STARTED: 2,
        ProcessingStatus.COMPLETED: 1,
        ProcessingStatus.FAILED: 1,
        ProcessingStatus.CANCELLED: 0,
    }
    assert batches.expired_leases == 1
    assert batches.oldest_queued == now - timedelta(hours=2)
    assert photos.counts[ProcessingStatus.QUEUED] == 1  # the soft-deleted photo is not counted
    assert photos.oldest_queued == now


async def test_expired_leases_are_counted_by_the_database_clock(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    now = await database_now(session_factory)
    async with session_factory() as session:
        for index, locked_until in enumerate([now - timedelta(seconds=30), now + LIVE_LEASE]):
            session.add(
                StagingBatch(
                    batch_processor_name="Shein",
                    file_hash=f"hash-{index}",
                    status=ProcessingStatus.STARTED,
                    locked_until=locked_until,
                )
            )
        await session.commit()

    async with session_factory() as session:
        batches, _ = await table_statuses(session)  # no `now`: the database's, as claims use

    assert batches.counts[ProcessingStatus.STARTED] == 2
    assert batches.expired_leases == 1
