"""Leases and due times come from the database's clock: a worker whose own clock is wrong (ahead,
behind, by seconds or hours) neither takes a live lease nor writes a lease or retry time off by
its error. Each worker here is a ClaimingHandler whose handler `clock` is skewed against the real
time, as a container's `core.clock` on a badly synced machine would be."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from myapp.data.models import ProductPhoto
from myapp.processing import ClaimingHandler, ClaimSpec, RetryPolicy
from tests.data.claim_helpers import add_photos, database_now, load, photo_spec
from tests.fixtures.clock import FakeClock

Factory = async_sessionmaker[AsyncSession]
LEASE = timedelta(seconds=1)
SKEW = timedelta(seconds=10)
HOURS_BEHIND = timedelta(hours=3)
RETRY = RetryPolicy(base=timedelta(milliseconds=500), cap=timedelta(seconds=1), jitter=0.0)
SETTLE = timedelta(milliseconds=50)  # past an instant on the database's clock, not on it


class PhotoHandler(ClaimingHandler[ProductPhoto]):
    def claim_spec(self) -> ClaimSpec[ProductPhoto]:
        return photo_spec(lease=LEASE, retry=RETRY)

    async def process(self, item: ProductPhoto) -> None:
        return None


class SkewedWorker:
    """A worker whose clock is `skew` away from the real time; a fresh session and handler per
    call, as the engine does."""

    def __init__(self, factory: Factory, name: str, skew: timedelta) -> None:
        self.factory, self.name, self.skew = factory, name, skew

    def clock(self) -> datetime:
        return datetime.now(UTC) + self.skew

    async def call(self, method: str, *args: Any) -> Any:
        async with self.factory() as session:
            handler = PhotoHandler(session=session, worker_id=self.name, clock=self.clock)
            return await getattr(handler, method)(*args)

    async def claim(self) -> Sequence[ProductPhoto]:
        return await self.call("fetch_work_items", 10)  # type: ignore[no-any-return]


def workers(factory: Factory) -> tuple[SkewedWorker, SkewedWorker, SkewedWorker]:
    return (
        SkewedWorker(factory, "correct", timedelta(0)),
        SkewedWorker(factory, "ahead", SKEW),
        SkewedWorker(factory, "behind", -SKEW),
    )


async def add_photo(factory: Factory) -> None:
    await add_photos(factory, FakeClock(datetime.now(UTC)), 1)


async def timed(factory: Factory, action: Callable[[], Any]) -> tuple[Any, datetime, datetime]:
    """`action`'s result and the database's time just before and just after it."""
    before = await database_now(factory)
    result = await action()
    return result, before, await database_now(factory)


async def sleep_past(factory: Factory, moment: datetime) -> None:
    """Until the database's clock is past `moment`."""
    now = await database_now(factory)
    await asyncio.sleep(max((moment - now + SETTLE).total_seconds(), 0.0))


async def test_a_worker_ahead_cannot_take_a_live_lease_and_one_behind_takes_an_expired_one(
    session_factory: Factory,
) -> None:
    correct, ahead, behind = workers(session_factory)
    await add_photo(session_factory)
    [held], before, after = await timed(session_factory, correct.claim)
    lease_end = held.locked_until
    assert before + LEASE <= lease_end <= after + LEASE

    assert await ahead.claim() == []  # its clock says the lease ended 9 s ago: it has not
    assert await behind.claim() == []
    assert await database_now(session_factory) < lease_end, "the machine took over 1 s to claim"

    await sleep_past(session_factory, lease_end)
    [taken], before, after = await timed(session_factory, behind.claim)  # its clock: not yet
    assert (taken.id, taken.attempts, taken.locked_by) == (held.id, 2, "behind")
    assert before + LEASE <= taken.locked_until <= after + LEASE
    assert await ahead.claim() == []  # the new lease is live


async def test_a_worker_behind_writes_leases_by_the_database_clock(
    session_factory: Factory,
) -> None:
    correct, ahead, behind = workers(session_factory)
    await add_photo(session_factory)
    [held], before, after = await timed(session_factory, behind.claim)
    assert before + LEASE <= held.locked_until <= after + LEASE  # not 10 s short of it
    assert await correct.claim() == []
    assert await ahead.claim() == []

    _, before, after = await timed(session_factory, lambda: behind.call("extend", [held]))
    extended = (await load(session_factory, held.id)).locked_until
    assert extended is not None and before + LEASE <= extended <= after + LEASE


async def test_a_retry_from_a_worker_hours_behind_is_due_by_the_database_clock(
    session_factory: Factory,
) -> None:
    correct, ahead, _ = workers(session_factory)
    late = SkewedWorker(session_factory, "hours-behind", -HOURS_BEHIND)
    await add_photo(session_factory)
    [held] = await late.claim()

    _, before, after = await timed(session_factory, lambda: late.call("fail", held, TimeoutError()))
    due = (await load(session_factory, held.id)).next_attempt_at
    backoff = RETRY.delay(1)
    assert due is not None and before + backoff <= due <= after + backoff
    assert await ahead.claim() == []  # not due yet, even by a clock 10 s ahead
    assert await database_now(session_factory) < due, "the machine took over 0.5 s to claim"

    await sleep_past(session_factory, due)
    [retried] = await correct.claim()
    assert (retried.id, retried.attempts) == (held.id, 2)
