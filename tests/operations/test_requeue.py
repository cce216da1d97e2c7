"""`requeue`: rows back to queued with attempts reset, never one a live lease holds; wakes the
workers. On SQLite and PostgreSQL, with a user's own table and status values."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import asyncpg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from myapp.data.claimable_watcher import WAKEUP_CHANNEL
from myapp.data.claiming import status_claim_spec
from myapp.data.models import ProcessingStatus, ProductPhoto
from myapp.operations.registry import RegisteredHandler
from myapp.operations.requeue import RequeueError, requeue
from myapp.processing.claims import Claims
from myapp.processing.work_item import ProcessorPurpose
from tests.operations.support import add_checks, database_now, price_checks
from tests.operations.user_app import DONE, GAVE_UP, WAITING, WORKING, PriceCheck, price_check_spec

RACE_ROWS = 200
RACE_ROUNDS = 5


async def rows(factory: async_sessionmaker[AsyncSession]) -> dict[uuid.UUID, PriceCheck]:
    async with factory() as session:
        return {row.id: row for row in (await session.scalars(select(PriceCheck))).all()}


async def test_failed_rows_go_back_to_queued_with_attempts_reset_and_their_error_kept(
    user_engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    failed = await add_checks(
        session_factory, [{"state": GAVE_UP, "attempts": 5, "last_error": "boom"}] * 3
    )
    (done,) = await add_checks(session_factory, [{"state": DONE, "attempts": 1}])
    before = await database_now(session_factory)

    async with session_factory() as session:
        result = await requeue(session, price_checks(), failed=True)

    assert sorted(result.requeued) == sorted(failed)
    after = await rows(session_factory)
    for id in failed:
        row = after[id]
        assert (row.state, row.attempts, row.last_error) == (WAITING, 0, "boom")
        assert row.next_attempt_at is not None and row.next_attempt_at >= before
        assert row.locked_by is None and row.locked_until is None
    assert after[done].state == DONE


async def test_by_id_a_held_row_is_untouched_and_an_expired_lease_is_taken_back(
    user_engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    (queued,) = await add_checks(session_factory, [{"state": WAITING}])
    async with session_factory() as session:  # a live worker takes the queued row
        (held,) = await Claims(session, price_check_spec(), worker_id="alive").claim(10)
    now = await database_now(session_factory)
    (expired,) = await add_checks(
        session_factory,
        [{"state": WORKING, "locked_by": "dead", "locked_until": now - timedelta(seconds=5)}],
    )
    (done,) = await add_checks(session_factory, [{"state": DONE}])
    missing = uuid.uuid4()

    async with session_factory() as session:
        result = await requeue(session, price_checks(), [held.id, expired, done, missing])

    assert sorted(result.requeued) == sorted([expired, done])
    assert result.held == [queued]
    assert result.not_found == [missing]
    after = await rows(session_factory)
    assert (after[queued].state, after[queued].locked_by) == (WORKING, "alive")
    assert after[expired].state == after[done].state == WAITING
    async with session_factory() as session:  # the holder still finishes its row
        won = await Claims(session, price_check_spec(), worker_id="alive").complete([queued])
    assert won == {queued}


async def test_failed_since_picks_rows_by_updated_at_and_needs_that_column(
    user_engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    now = await database_now(session_factory)
    old, new = uuid.uuid4(), uuid.uuid4()
    async with session_factory() as session:
        for id, age in ((old, timedelta(days=3)), (new, timedelta(minutes=5))):
            session.add(
                ProductPhoto(
                    id=id,
                    url=f"https://x.test/{id}",
                    status=ProcessingStatus.FAILED,
                    updated_at=now - age,
                )
            )
        await session.commit()
    photos = RegisteredHandler(
        name="ImageVectorization",
        purpose=ProcessorPurpose.INTERNAL,
        enabled=True,
        disabled_reason=None,
        spec=status_claim_spec(ProductPhoto),
    )

    async with session_factory() as session:
        result = await requeue(session, photos, failed_since=now - timedelta(hours=1))
        assert result.requeued == [new]
        with pytest.raises(RequeueError, match="ops_price_checks has no updated_at"):
            await requeue(session, price_checks(), failed_since=now - timedelta(hours=1))
    with pytest.raises(RequeueError, match="not both"):
        async with session_factory() as session:
            await requeue(session, photos, [new], failed=True)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_requeue_racing_a_claim_never_takes_a_row_the_claim_won(
    user_engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """A worker claims while an operator requeues the same rows, on two connections at once:
    every row the worker won is still its own afterwards (its completion wins them all)."""
    for _ in range(RACE_ROUNDS):
        ids = await add_checks(session_factory, [{"state": WAITING}] * RACE_ROWS)

        async def claim() -> list[uuid.UUID]:
            async with session_factory() as session:
                claims = Claims(session, price_check_spec(), worker_id="racer")
                return [row.id for row in await claims.claim(RACE_ROWS)]

        async def operator(ids: list[uuid.UUID]) -> list[uuid.UUID]:
            async with session_factory() as session:
                return (await requeue(session, price_checks(), ids, wake=False)).requeued

        claimed, _ = await asyncio.gather(claim(), operator(ids))
        async with session_factory() as session:
            won = await Claims(session, price_check_spec(), worker_id="racer").complete(claimed)
        assert won == set(claimed)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_requeue_wakes_the_workers_of_the_handler(
    db_url: str, user_engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    (failed,) = await add_checks(session_factory, [{"state": GAVE_UP}])
    dsn = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
    listener = await asyncpg.connect(dsn)
    woken: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener(WAKEUP_CHANNEL, lambda *args: woken.put_nowait(args[-1]))
    try:
        async with session_factory() as session:
            await requeue(session, price_checks(), [failed])
        assert await asyncio.wait_for(woken.get(), timeout=10) == "PriceCheck"
    finally:
        await listener.close()
