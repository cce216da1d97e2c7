"""Outcome counters: tallied in memory, added to one row per handler and minute in one statement
per flush, kept across worker restarts, pruned after the retention. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from myapp.data.models import HandlerOutcomeRow, ProcessingStatus, ProductPhoto
from myapp.data.outcome_counters import OutcomeCounters
from myapp.processing import WorkItemProcessingEngine
from myapp.processing.errors import PermanentError
from myapp.processing.observers import Outcome
from tests.data.claim_helpers import add_photos
from tests.data.test_engine_leases import Journal, PhotoHandler, engine_for
from tests.fixtures.clock import FakeClock
from tests.unit.support import HandlerState, items_for, registration

Factory = async_sessionmaker[AsyncSession]
MINUTE = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
GUARD_S = 30


class Seconds:
    """A `time.time` tests move by hand."""

    def __init__(self, start: datetime = MINUTE) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta.total_seconds()


@contextmanager
def counted_writes(engine: AsyncEngine) -> Iterator[list[str]]:
    """The statements that write the counters table while inside."""
    writes: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "myapp_handler_outcomes" in statement and not statement.lstrip().startswith("SELECT"):
            writes.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield writes
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def rows(factory: Factory) -> dict[tuple[str, datetime], HandlerOutcomeRow]:
    async with factory() as session:
        found = (await session.scalars(select(HandlerOutcomeRow))).all()
        return {(row.handler, row.minute): row for row in found}


async def test_many_items_make_one_write_per_flush(
    db_engine: AsyncEngine, session_factory: Factory
) -> None:
    clock = Seconds()
    counters = OutcomeCounters(db_engine, clock=clock)
    for index in range(1000):
        counters.item_finished("Photos", Outcome.SUCCEEDED, 0.001 * (index % 10 + 1))
        counters.item_finished("Batches", Outcome.FAILED, None)
    counters.item_finished("Batches", Outcome.DEAD_LETTERED, None)

    with counted_writes(db_engine) as writes:
        assert await counters.flush() == 2
    prunes = [w for w in writes if w.lstrip().upper().startswith("DELETE")]
    assert len(writes) - len(prunes) == 1  # 2,001 items: one INSERT ... ON CONFLICT

    found = await rows(session_factory)
    photos, batches = found["Photos", MINUTE], found["Batches", MINUTE]
    assert (photos.succeeded, photos.failed, photos.dead_lettered) == (1000, 0, 0)
    assert photos.count == 1000
    assert abs(photos.total_duration_ms - 5500.0) < 1e-6
    assert abs(photos.max_duration_ms - 10.0) < 1e-9
    assert (batches.succeeded, batches.failed, batches.dead_lettered) == (0, 1000, 1)
    assert batches.count == 0


async def test_flushes_add_to_the_minute_and_keep_its_maximum(
    db_engine: AsyncEngine, session_factory: Factory
) -> None:
    clock = Seconds()
    counters = OutcomeCounters(db_engine, clock=clock)
    counters.item_finished("Photos", Outcome.SUCCEEDED, 0.5)
    await counters.flush()
    counters.item_finished("Photos", Outcome.SUCCEEDED, 0.1)
    counters.item_finished("Photos", Outcome.FAILED, None)
    clock.advance(timedelta(seconds=61))
    counters.item_finished("Photos", Outcome.SUCCEEDED, 0.2)

    with counted_writes(db_engine) as writes:
        await counters.flush()
    assert len(writes) == 1
    assert await counters.flush() == 0  # nothing new: nothing written

    found = await rows(session_factory)
    first, second = found["Photos", MINUTE], found["Photos", MINUTE + timedelta(minutes=1)]
    assert (first.succeeded, first.failed, first.count) == (2, 1, 2)
    assert abs(first.total_duration_ms - 600.0) < 1e-6
    assert abs(first.max_duration_ms - 500.0) < 1e-6  # the larger of the two flushes
    assert (second.succeeded, second.count) == (1, 1)


async def test_workers_share_the_row_of_a_minute(
    db_engine: AsyncEngine, session_factory: Factory
) -> None:
    clock = Seconds()
    workers = [OutcomeCounters(db_engine, clock=clock) for _ in range(3)]
    for worker in workers:
        for _ in range(5):
            worker.item_finished("Photos", Outcome.SUCCEEDED, 0.01)

    await asyncio.gather(*(worker.flush() for worker in workers))

    assert (await rows(session_factory))["Photos", MINUTE].succeeded == 15


async def test_counters_survive_a_worker_restart(
    db_engine: AsyncEngine, session_factory: Factory
) -> None:
    """A worker runs its engine with the counters, stops (the last flush), and a new worker
    process (new counters, new engine) goes on counting into the same minute."""
    clock = Seconds()

    async def one_worker_run(items: int) -> None:
        counters = OutcomeCounters(db_engine, clock=clock, flush_interval=timedelta(hours=1))
        state = HandlerState("Greeting", items=items_for("Greeting", items))
        engine = WorkItemProcessingEngine([registration(state)], observer=counters)
        await counters.start()
        await engine.run_cycle()
        await counters.stop()  # the host stops it after the processing service

    await one_worker_run(7)
    await one_worker_run(5)

    row = (await rows(session_factory))["Greeting", MINUTE]
    assert (row.succeeded, row.count) == (12, 12)


async def test_dead_letters_are_counted_apart_from_failures(
    db_engine: AsyncEngine, session_factory: Factory, clock: FakeClock
) -> None:
    """A claiming handler's failure that ends the item's attempts is dead-lettered; one that
    schedules a retry is failed."""
    _retried, dead = await add_photos(session_factory, clock, 2)

    async def work(item: ProductPhoto) -> None:
        raise PermanentError("bad photo") if item.id == dead else ValueError("try again")

    handler = type("Failing", (PhotoHandler,), {"journal": Journal(), "work": staticmethod(work)})
    counters = OutcomeCounters(db_engine, clock=Seconds())
    engine = engine_for(session_factory, handler, observer=counters)

    async with asyncio.timeout(GUARD_S):
        await engine.run_cycle()
        await counters.flush()

    row = (await rows(session_factory))["Photos", MINUTE]
    assert (row.succeeded, row.failed, row.dead_lettered) == (0, 1, 1)
    async with session_factory() as session:
        status = await session.scalar(select(ProductPhoto.status).where(ProductPhoto.id == dead))
    assert status == ProcessingStatus.FAILED


async def test_minutes_older_than_the_retention_are_pruned_at_most_hourly(
    db_engine: AsyncEngine, session_factory: Factory
) -> None:
    clock = Seconds()
    counters = OutcomeCounters(db_engine, clock=clock, retention=timedelta(days=14))
    old = MINUTE - timedelta(days=14, minutes=1)
    kept = MINUTE - timedelta(days=13)
    await _insert_minutes(session_factory, [old, kept])

    await counters.flush()  # the first flush prunes
    assert set(minute for _, minute in await rows(session_factory)) == {kept}

    await _insert_minutes(session_factory, [old])
    clock.advance(timedelta(minutes=59))
    await counters.flush()  # less than an hour later: not again
    assert old in {minute for _, minute in await rows(session_factory)}

    clock.advance(timedelta(minutes=1))
    await counters.flush()
    assert set(minute for _, minute in await rows(session_factory)) == {kept}


async def test_a_failed_flush_keeps_its_tallies_for_the_next(
    db_engine: AsyncEngine, session_factory: Factory
) -> None:
    counters = OutcomeCounters(db_engine, clock=Seconds())
    counters.item_finished("Photos", Outcome.SUCCEEDED, 0.1)
    await _rename(db_engine, "myapp_handler_outcomes", "away")  # the write fails
    try:
        assert await counters.flush() == 0
        counters.item_finished("Photos", Outcome.SUCCEEDED, 0.1)
    finally:
        await _rename(db_engine, "away", "myapp_handler_outcomes")

    assert await counters.flush() == 1
    assert (await rows(session_factory))["Photos", MINUTE].succeeded == 2


async def _rename(engine: AsyncEngine, table: str, to: str) -> None:
    async with engine.begin() as connection:
        await connection.exec_driver_sql(f"ALTER TABLE {table} RENAME TO {to}")


async def _insert_minutes(factory: Factory, minutes: list[datetime]) -> None:
    async with factory() as session:
        await session.execute(
            insert(HandlerOutcomeRow),
            [
                {
                    "handler": f"H{uuid.uuid4().hex[:6]}",
                    "minute": minute,
                    "succeeded": 1,
                    "failed": 0,
                    "dead_lettered": 0,
                    "count": 0,
                    "total_duration_ms": 0.0,
                    "max_duration_ms": 0.0,
                }
                for minute in minutes
            ],
        )
        await session.commit()
