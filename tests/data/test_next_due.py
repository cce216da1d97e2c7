"""When does a row this worker cannot claim now become claimable? Continuous mode sleeps until
then at most, so a retry's backoff ending or a dead worker's lease running out wakes the handler
at that moment, not at its poll interval. On SQLite and PostgreSQL, by the database's clock."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from myapp.data.models import ProductPhoto
from myapp.processing import ClaimSpec, RetryPolicy
from myapp.processing.claims import Claims
from tests.data.claim_helpers import add_photos, photo_spec
from tests.data.test_engine_leases import Journal, PhotoHandler, engine_for
from tests.fixtures.clock import FakeClock

Factory = async_sessionmaker[AsyncSession]
RETRY_IN_1S = RetryPolicy(base=timedelta(seconds=1), cap=timedelta(seconds=1), jitter=0.0)
RETRY_IN_04S = RetryPolicy(base=timedelta(seconds=0.4), cap=timedelta(seconds=0.4), jitter=0.0)


def claims(
    session: AsyncSession, worker: str, spec: ClaimSpec[ProductPhoto]
) -> Claims[ProductPhoto]:
    return Claims(session, spec, worker_id=worker)  # the database's clock


async def test_nothing_pending_is_none(session_factory: Factory, clock: FakeClock) -> None:
    await add_photos(session_factory, clock, 2)  # queued and due now: claimable, not "pending"
    async with session_factory() as session:
        assert await claims(session, "w1", photo_spec()).next_due_in() is None


async def test_a_scheduled_retry_is_due_after_its_backoff(
    session_factory: Factory, clock: FakeClock
) -> None:
    await add_photos(session_factory, clock, 1)
    spec = photo_spec(retry=RETRY_IN_1S)
    async with session_factory() as session:
        [row] = await claims(session, "w1", spec).claim(1)
    async with session_factory() as session:
        await claims(session, "w1", spec).fail(row.id, "boom")
    async with session_factory() as session:
        due = await claims(session, "w1", spec).next_due_in()

    assert due is not None and timedelta(seconds=0.5) < due <= timedelta(seconds=1)


async def test_another_workers_lease_is_due_when_it_runs_out_and_our_own_is_not(
    session_factory: Factory, clock: FakeClock
) -> None:
    await add_photos(session_factory, clock, 2)
    spec = photo_spec(lease=timedelta(seconds=30))
    async with session_factory() as session:
        await claims(session, "w-dead", spec).claim(1)
    async with session_factory() as session:
        await claims(session, "w1", spec).claim(1)
    async with session_factory() as session:
        due_for_w1 = await claims(session, "w1", spec).next_due_in()
    async with session_factory() as session:
        due_for_w2 = await claims(session, "w2", spec).next_due_in()

    assert due_for_w1 is not None and timedelta(seconds=29) < due_for_w1 <= timedelta(seconds=30)
    assert due_for_w2 is not None and due_for_w2 <= timedelta(seconds=30)


async def test_continuous_mode_retries_when_the_backoff_ends_not_at_the_poll_interval(
    session_factory: Factory, clock: FakeClock
) -> None:
    await add_photos(session_factory, clock, 1)
    journal = Journal()
    attempts: list[float] = []

    async def fails_once(item: ProductPhoto) -> None:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")

    handler = type(
        "Retrying",
        (PhotoHandler,),
        {
            "journal": journal,
            "work": staticmethod(fails_once),
            "spec": photo_spec(retry=RETRY_IN_04S),
        },
    )
    engine = engine_for(session_factory, handler)
    run = asyncio.create_task(engine.run_continuously(timedelta(hours=1)))
    async with asyncio.timeout(20):
        while len(journal.finished) < 1:  # noqa: ASYNC110 (waits on the handler's journal)
            await asyncio.sleep(0.05)
    engine.request_stop()
    report = await run

    assert len(attempts) == 2
    assert 0.36 < attempts[1] - attempts[0] < 5  # at the backoff (0.4 s), not after an hour
    assert (report.handlers["Photos"].succeeded, report.handlers["Photos"].failed) == (1, 1)
