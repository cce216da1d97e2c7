"""The engine over a real claimable table: duplicate ids, leases lost while queued or running,
and synchronous handlers that keep their lease. Each runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from myapp.clock import utc_now
from myapp.data.database import close_session
from myapp.data.models import ProcessingStatus, ProductPhoto
from myapp.processing import (
    ClaimingHandler,
    ClaimSpec,
    CycleReport,
    HandlerRegistration,
    WorkItemProcessingEngine,
    scoped,
)
from myapp.processing.claims import Claims
from tests.data.claim_helpers import add_photos, photo_spec
from tests.fixtures.clock import FakeClock

Factory = async_sessionmaker[AsyncSession]
OTHER_WORKER = "w-other"
GUARD_S = 30  # turns a hang into a failure; never a speed assertion


@dataclass
class Journal:
    """What the handlers did: (item id, worker) per start and per finish, in order."""

    started: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    finished: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    running: dict[uuid.UUID, str] = field(default_factory=dict)
    overlaps: list[uuid.UUID] = field(default_factory=list)
    first_started: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self, id: uuid.UUID, worker: str) -> None:
        if id in self.running:
            self.overlaps.append(id)
        self.running[id] = worker
        self.started.append((id, worker))
        self.first_started.set()

    def finish(self, id: uuid.UUID, worker: str) -> None:
        self.running.pop(id, None)
        self.finished.append((id, worker))


class PhotoHandler(ClaimingHandler[ProductPhoto]):
    """Claims product photos; `work(item)` is the processing (awaited), journaled around it."""

    spec: ClaimSpec[ProductPhoto] = photo_spec()
    journal: Journal
    work: Callable[[ProductPhoto], Any] = staticmethod(lambda item: asyncio.sleep(0))
    duplicate: bool = False

    async def fetch_work_items(self, max_items: int) -> Sequence[ProductPhoto]:
        rows = list(await super().fetch_work_items(max_items))
        return rows + rows[::-1] if self.duplicate else rows

    def claim_spec(self) -> ClaimSpec[ProductPhoto]:
        return self.spec

    async def process(self, item: ProductPhoto) -> None:
        self.journal.start(item.id, self._worker_id)
        try:
            await self.work(item)
        finally:
            self.journal.running.pop(item.id, None)
        self.journal.finish(item.id, self._worker_id)


def engine_for(
    factory: Factory,
    handler_class: type[ClaimingHandler[ProductPhoto]],
    worker_id: str = "w1",
    quota: int = 10,
    **engine_options: Any,
) -> WorkItemProcessingEngine:
    def make() -> ClaimingHandler[ProductPhoto]:
        session = scoped(factory, close=close_session)
        return handler_class(session=session, worker_id=worker_id, clock=utc_now)

    registration = HandlerRegistration(make, name="Photos", max_items_per_cycle=quota)
    return WorkItemProcessingEngine([registration], **engine_options)


async def statuses(factory: Factory) -> dict[uuid.UUID, tuple[ProcessingStatus, int, str | None]]:
    async with factory() as session:
        rows = await session.execute(
            select(
                ProductPhoto.id, ProductPhoto.status, ProductPhoto.attempts, ProductPhoto.locked_by
            )
        )
        return {id: (status, attempts, locked_by) for id, status, attempts, locked_by in rows}


async def take_over(factory: Factory, ids: Sequence[uuid.UUID]) -> None:
    """What another worker does when it claims these rows after their lease ran out."""
    async with factory() as session:
        await session.execute(
            update(ProductPhoto)
            .where(ProductPhoto.id.in_(list(ids)))
            .values(locked_by=OTHER_WORKER, locked_until=utc_now() + timedelta(hours=1))
        )
        await session.commit()


async def drain(engine: WorkItemProcessingEngine, factory: Factory, cycles: int) -> int:
    """Run cycles until no row is left to claim (or `cycles` ran); the cycles it took."""
    for cycle in range(1, cycles + 1):
        report = await engine.run_cycle()
        if sum(s.fetched for s in report.handlers.values()) == 0:
            return cycle
    return cycles


# --- Duplicate ids from fetch_work_items ------------------------------------------------------


async def test_duplicate_ids_from_a_claiming_fetch_are_each_processed_once_and_completed(
    session_factory: Factory, clock: FakeClock
) -> None:
    ids = await add_photos(session_factory, clock, 60)
    journal = Journal()
    handler = type("Dup", (PhotoHandler,), {"journal": journal, "duplicate": True})
    engine = engine_for(session_factory, handler, quota=10)

    async with asyncio.timeout(GUARD_S):
        cycles = await drain(engine, session_factory, cycles=12)

    rows = await statuses(session_factory)
    assert cycles <= 7  # 6 full quotas, then an empty fetch
    assert sorted(id for id, _ in journal.started) == sorted(ids)  # each exactly once
    assert {status for status, _, _ in rows.values()} == {ProcessingStatus.COMPLETED}
    assert {attempts for _, attempts, _ in rows.values()} == {1}


async def test_two_workers_with_duplicating_fetches_never_run_a_row_twice(
    session_factory: Factory, clock: FakeClock
) -> None:
    ids = await add_photos(session_factory, clock, 80)
    journal = Journal()

    async def slow(item: ProductPhoto) -> None:
        await asyncio.sleep(0.005)

    handler = type(
        "Dup", (PhotoHandler,), {"journal": journal, "duplicate": True, "work": staticmethod(slow)}
    )
    engines = [engine_for(session_factory, handler, worker_id=w, quota=10) for w in ("w1", "w2")]

    async with asyncio.timeout(GUARD_S):
        await asyncio.gather(*(drain(e, session_factory, cycles=20) for e in engines))

    rows = await statuses(session_factory)
    assert journal.overlaps == []
    assert sorted(id for id, _ in journal.started) == sorted(ids)
    assert {status for status, _, _ in rows.values()} == {ProcessingStatus.COMPLETED}
    assert {worker for _, worker in journal.started} == {"w1", "w2"}  # both took part


# --- Leases lost to another worker ------------------------------------------------------------

SHORT_LEASE = timedelta(seconds=0.6)  # renewed every 0.2 s


async def run_and_take_over(
    engine: WorkItemProcessingEngine,
    factory: Factory,
    journal: Journal,
    pick: Callable[[list[uuid.UUID]], list[uuid.UUID]],
    ids: list[uuid.UUID],
) -> CycleReport:
    cycle = asyncio.create_task(engine.run_cycle())
    async with asyncio.timeout(GUARD_S):
        await journal.first_started.wait()
        await take_over(factory, pick(ids))
        return await cycle


async def test_items_whose_lease_was_taken_while_queued_are_never_started(
    session_factory: Factory, clock: FakeClock
) -> None:
    ids = await add_photos(session_factory, clock, 4)
    journal = Journal()

    async def first_is_slow(item: ProductPhoto) -> None:
        await asyncio.sleep(SHORT_LEASE.total_seconds() if item.id == ids[0] else 0)

    handler = type(
        "Lost",
        (PhotoHandler,),
        {
            "journal": journal,
            "work": staticmethod(first_is_slow),
            "spec": photo_spec(lease=SHORT_LEASE),
        },
    )
    engine = engine_for(session_factory, handler, max_concurrency=1)

    report = await run_and_take_over(engine, session_factory, journal, lambda i: i[1:], ids)

    assert [id for id, _ in journal.started] == ids[:1]
    stats = report.handlers["Photos"]
    assert (stats.succeeded, stats.lost, stats.failed) == (1, 3, 0)
    rows = await statuses(session_factory)
    assert rows[ids[0]][0] is ProcessingStatus.COMPLETED
    for id in ids[1:]:  # the other worker's rows are untouched: not failed, not released
        assert rows[id] == (ProcessingStatus.STARTED, 1, OTHER_WORKER)


async def test_a_running_item_whose_lease_was_taken_is_cancelled_and_not_failed(
    session_factory: Factory, clock: FakeClock
) -> None:
    ids = await add_photos(session_factory, clock, 1)
    journal = Journal()

    async def long(item: ProductPhoto) -> None:
        await asyncio.sleep(10)

    handler = type(
        "Lost",
        (PhotoHandler,),
        {"journal": journal, "work": staticmethod(long), "spec": photo_spec(lease=SHORT_LEASE)},
    )
    engine = engine_for(session_factory, handler)

    started = time.monotonic()
    report = await run_and_take_over(engine, session_factory, journal, lambda i: i, ids)

    assert time.monotonic() - started < 5  # cancelled at the next heartbeat, not after 10 s
    assert journal.finished == []
    stats = report.handlers["Photos"]
    assert (stats.succeeded, stats.failed, stats.lost) == (0, 0, 1)
    async with session_factory() as session:
        row = await session.get_one(ProductPhoto, ids[0])
    assert (row.status, row.locked_by, row.last_error) == (
        ProcessingStatus.STARTED,
        OTHER_WORKER,
        None,
    )


async def test_a_handler_that_opts_out_runs_to_its_end_but_its_completion_is_not_a_success(
    session_factory: Factory, clock: FakeClock
) -> None:
    ids = await add_photos(session_factory, clock, 1)
    journal = Journal()

    async def short(item: ProductPhoto) -> None:
        await asyncio.sleep(0.8)

    handler = type(
        "KeepsRunning",
        (PhotoHandler,),
        {
            "journal": journal,
            "work": staticmethod(short),
            "spec": photo_spec(lease=SHORT_LEASE),
            "cancel_on_lost_lease": False,
        },
    )
    engine = engine_for(session_factory, handler)

    report = await run_and_take_over(engine, session_factory, journal, lambda i: i, ids)

    assert [id for id, _ in journal.finished] == ids
    stats = report.handlers["Photos"]
    assert (stats.succeeded, stats.failed, stats.lost) == (0, 0, 1)
    rows = await statuses(session_factory)
    assert rows[ids[0]] == (ProcessingStatus.STARTED, 1, OTHER_WORKER)


# --- Synchronous handlers ---------------------------------------------------------------------


class SyncPhotoHandler(ClaimingHandler[ProductPhoto]):
    """A plain `def process` that blocks for longer than its lease (2.5 leases)."""

    finished: list[uuid.UUID] = []

    def claim_spec(self) -> ClaimSpec[ProductPhoto]:
        return photo_spec(lease=SHORT_LEASE)

    def process(self, item: ProductPhoto) -> None:  # type: ignore[override]
        time.sleep(2.5 * SHORT_LEASE.total_seconds())
        self.finished.append(item.id)


async def test_a_synchronous_handler_runs_in_a_thread_and_keeps_its_lease(
    session_factory: Factory, clock: FakeClock
) -> None:
    ids = await add_photos(session_factory, clock, 1)
    SyncPhotoHandler.finished = []
    engine = engine_for(session_factory, SyncPhotoHandler)
    rival_claims: list[uuid.UUID] = []

    async def rival() -> None:
        """Another worker trying to claim the row all along: it must never get it."""
        while (await statuses(session_factory))[ids[0]][2] != "w1":  # noqa: ASYNC110 (polls the DB)
            await asyncio.sleep(0.01)
        while not SyncPhotoHandler.finished:
            async with session_factory() as session:
                claims = Claims(session, photo_spec(), worker_id=OTHER_WORKER, clock=utc_now)
                rival_claims.extend(row.id for row in await claims.claim(1))
            await asyncio.sleep(0.1)

    async with asyncio.timeout(GUARD_S):
        report, _ = await asyncio.gather(engine.run_cycle(), rival())

    assert SyncPhotoHandler.finished == ids
    assert rival_claims == []
    assert report.handlers["Photos"].succeeded == 1
    rows = await statuses(session_factory)
    assert rows[ids[0]] == (ProcessingStatus.COMPLETED, 1, None)


async def test_a_graceful_stop_in_continuous_mode_keeps_renewing_leases_while_it_drains(
    session_factory: Factory, clock: FakeClock
) -> None:
    ids = await add_photos(session_factory, clock, 4)
    journal = Journal()

    lease = timedelta(seconds=0.4)  # renewed every 0.13 s

    async def long(item: ProductPhoto) -> None:
        await asyncio.sleep(4 * lease.total_seconds())

    handler = type(
        "Draining",
        (PhotoHandler,),
        {"journal": journal, "work": staticmethod(long), "spec": photo_spec(lease=lease)},
    )
    engine = engine_for(
        session_factory, handler, max_concurrency=2, shutdown_timeout=timedelta(seconds=10)
    )
    rival_claims: list[uuid.UUID] = []
    run = asyncio.create_task(engine.run_continuously(timedelta(hours=1)))
    async with asyncio.timeout(GUARD_S):
        while len(journal.started) < 2:  # noqa: ASYNC110 (waits on the handler's journal)
            await asyncio.sleep(0.01)
        engine.request_stop()
        while not run.done():  # another worker tries all through the drain (4 leases long)
            async with session_factory() as session:
                claims = Claims(session, photo_spec(), worker_id=OTHER_WORKER)
                rival_claims.extend(row.id for row in await claims.claim(4))
            await asyncio.sleep(0.1)
        report = await run

    running = [id for id, _ in journal.started]
    assert len(running) == 2
    assert rival_claims == [id for id in ids if id not in running]  # only the released ones
    stats = report.handlers["Photos"]
    assert (stats.succeeded, stats.released, stats.lost) == (2, 2, 0)
    rows = await statuses(session_factory)
    assert all(rows[id] == (ProcessingStatus.COMPLETED, 1, None) for id in running)
