"""The workers table: a worker's row is written at start, refreshed with the heartbeat, marked
stopped on a graceful stop, stale when its heartbeat is old, and pruned after the retention.
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import myapp
from myapp.data.models import WorkerRow
from myapp.data.worker_heartbeat import WorkerHeartbeat, heartbeat_interval
from myapp.data.worker_liveness import database_now, worker_is_live
from myapp.processing import WorkItemProcessingEngine
from tests.unit.support import HandlerState, items_for, registration

Factory = async_sessionmaker[AsyncSession]
GUARD_S = 30
INTERVAL = timedelta(seconds=30)


def engine_with(*states: HandlerState, disabled: str | None = None) -> WorkItemProcessingEngine:
    registrations = [registration(state) for state in states]
    if disabled is not None:
        registrations.append(
            registration(HandlerState(disabled), enabled=False, disabled_reason="off")
        )
    return WorkItemProcessingEngine(registrations)


async def worker_row(factory: Factory, worker_id: str) -> WorkerRow | None:
    async with factory() as session:
        return await session.get(WorkerRow, worker_id)


async def is_live(db_engine: AsyncEngine, row: WorkerRow) -> bool:
    async with db_engine.connect() as connection:
        now = await database_now(connection)
    interval = timedelta(seconds=row.heartbeat_seconds)
    return worker_is_live(row.last_heartbeat_at, row.stopped_at, now, interval)


async def test_start_writes_the_row_and_a_graceful_stop_marks_it(
    db_engine: AsyncEngine, session_factory: Factory
) -> None:
    engine = engine_with(HandlerState("Greeting"), HandlerState("Photos"), disabled="Shein")
    heartbeat = WorkerHeartbeat(db_engine, engine, "host-1-abc", interval=INTERVAL)

    await heartbeat.start()
    row = await worker_row(session_factory, "host-1-abc")
    assert row is not None
    assert row.version == myapp.__version__
    assert row.pid > 0 and row.host
    assert json.loads(row.handlers) == ["Greeting", "Photos"]  # enabled ones
    assert row.heartbeat_seconds == 30.0
    assert row.stopped_at is None and row.in_flight == 0
    assert row.started_at <= row.last_heartbeat_at
    assert await is_live(db_engine, row)

    await heartbeat.stop()
    stopped = await worker_row(session_factory, "host-1-abc")
    assert stopped is not None and stopped.stopped_at is not None
    assert stopped.started_at == row.started_at
    assert not await is_live(db_engine, stopped)


async def test_a_beat_refreshes_the_heartbeat_and_the_items_in_flight(
    db_engine: AsyncEngine, session_factory: Factory
) -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def hold(_item: object) -> None:
        started.set()
        await release.wait()

    state = HandlerState("Greeting", items=items_for("Greeting", 1), process_hook=hold)
    engine = engine_with(state)
    heartbeat = WorkerHeartbeat(db_engine, engine, "w-busy", interval=INTERVAL)
    await heartbeat.start()
    await _age_heartbeat(session_factory, "w-busy", timedelta(minutes=10))
    aged = await worker_row(session_factory, "w-busy")
    assert aged is not None and not await is_live(db_engine, aged)  # stale: 3 beats missed

    run = asyncio.create_task(engine.run_continuously(timedelta(hours=1)))
    try:
        async with asyncio.timeout(GUARD_S):
            await started.wait()
            assert await heartbeat.beat()
    finally:
        release.set()
        engine.request_stop()
        await run
        await heartbeat.stop()

    row = await worker_row(session_factory, "w-busy")
    assert row is not None
    assert row.in_flight == 0  # the stop's write: nothing runs any more
    beaten = aged.last_heartbeat_at + timedelta(minutes=9)
    assert row.last_heartbeat_at > beaten


async def test_the_running_items_are_in_the_row(
    db_engine: AsyncEngine, session_factory: Factory
) -> None:
    release = asyncio.Event()
    running = 0
    both = asyncio.Event()

    async def hold(_item: object) -> None:
        nonlocal running
        running += 1
        if running == 2:
            both.set()
        await release.wait()

    state = HandlerState("Greeting", items=items_for("Greeting", 2), process_hook=hold)
    engine = engine_with(state)
    heartbeat = WorkerHeartbeat(db_engine, engine, "w-two", interval=INTERVAL)
    await heartbeat.start()
    run = asyncio.create_task(engine.run_continuously(timedelta(hours=1)))
    try:
        async with asyncio.timeout(GUARD_S):
            await both.wait()
            await heartbeat.beat()
            row = await worker_row(session_factory, "w-two")
    finally:
        release.set()
        engine.request_stop()
        await run
        await heartbeat.stop()
    assert row is not None and row.in_flight == 2


async def test_a_worker_that_died_goes_stale(
    db_engine: AsyncEngine, session_factory: Factory
) -> None:
    heartbeat = WorkerHeartbeat(db_engine, engine_with(), "w-died", interval=INTERVAL)
    await heartbeat.beat()  # ... and never again, nor a stop
    await _age_heartbeat(session_factory, "w-died", INTERVAL * 3 - timedelta(seconds=5))
    row = await worker_row(session_factory, "w-died")
    assert row is not None and await is_live(db_engine, row)

    await _age_heartbeat(session_factory, "w-died", timedelta(seconds=10))
    row = await worker_row(session_factory, "w-died")
    assert row is not None and not await is_live(db_engine, row)


async def test_rows_older_than_the_retention_are_pruned_at_start(
    db_engine: AsyncEngine, session_factory: Factory
) -> None:
    async with session_factory() as session:
        now = await database_now(await session.connection())
        await session.execute(
            insert(WorkerRow),
            [
                _row("stopped-long-ago", now - timedelta(days=8), stopped=True),
                _row("died-long-ago", now - timedelta(days=7, minutes=1), stopped=False),
                _row("stopped-yesterday", now - timedelta(days=1), stopped=True),
                _row("died-an-hour-ago", now - timedelta(hours=1), stopped=False),
            ],
        )
        await session.commit()

    heartbeat = WorkerHeartbeat(
        db_engine, engine_with(), "w-new", interval=INTERVAL, retention=timedelta(days=7)
    )
    await heartbeat.start()
    await heartbeat.stop()

    async with session_factory() as session:
        left = set((await session.scalars(select(WorkerRow.id))).all())
    assert left == {"stopped-yesterday", "died-an-hour-ago", "w-new"}


async def test_a_row_deleted_under_a_running_worker_comes_back(
    db_engine: AsyncEngine, session_factory: Factory
) -> None:
    heartbeat = WorkerHeartbeat(db_engine, engine_with(), "w-back", interval=INTERVAL)
    await heartbeat.beat()
    async with session_factory() as session:
        await session.delete(await session.get(WorkerRow, "w-back"))
        await session.commit()

    await heartbeat.beat()

    assert await worker_row(session_factory, "w-back") is not None


def test_the_interval_follows_the_engine_heartbeat_and_the_shortest_lease() -> None:
    assert heartbeat_interval(INTERVAL, []) == INTERVAL
    assert heartbeat_interval(INTERVAL, [timedelta(minutes=5)]) == INTERVAL
    assert heartbeat_interval(INTERVAL, [timedelta(minutes=5), timedelta(seconds=3)]) == (
        timedelta(seconds=1)
    )
    assert heartbeat_interval(INTERVAL, [timedelta(milliseconds=30)]) == timedelta(milliseconds=50)


async def _age_heartbeat(factory: Factory, worker_id: str, by: timedelta) -> None:
    """As if the worker had not beaten for `by` (the database's clock cannot be moved)."""
    async with factory() as session:
        row = await session.get(WorkerRow, worker_id)
        assert row is not None
        await session.execute(
            update(WorkerRow)
            .where(WorkerRow.id == worker_id)
            .values(last_heartbeat_at=row.last_heartbeat_at - by)
        )
        await session.commit()


def _row(worker_id: str, last: object, *, stopped: bool) -> dict[str, object]:
    return {
        "id": worker_id,
        "host": "elsewhere",
        "pid": 1,
        "version": "0.0.1",
        "started_at": last,
        "last_heartbeat_at": last,
        "stopped_at": last if stopped else None,
        "handlers": "[]",
        "in_flight": 0,
        "heartbeat_seconds": 30.0,
    }


async def test_a_started_worker_keeps_beating_on_its_own(
    db_engine: AsyncEngine, session_factory: Factory
) -> None:
    interval = timedelta(milliseconds=100)
    heartbeat = WorkerHeartbeat(db_engine, engine_with(), "w-beats", interval=interval)
    await heartbeat.start()
    try:
        await _age_heartbeat(session_factory, "w-beats", timedelta(minutes=10))
        for _ in range(GUARD_S * 20):  # until a beat of its own makes it live again
            await asyncio.sleep(0.05)
            row = await worker_row(session_factory, "w-beats")
            if row is not None and await is_live(db_engine, row):
                break
        else:
            raise AssertionError("the worker never beat again")
    finally:
        await heartbeat.stop()
