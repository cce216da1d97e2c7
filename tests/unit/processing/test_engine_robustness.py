"""Regressions found in review: bad items, stops with blocked fetches, heartbeats vs leases."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from myapp.processing import HandlerRegistration, WorkItemProcessingEngine
from tests.fixtures.logs import LogCapture


@dataclass(frozen=True)
class Item:
    id: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass
class Journal:
    processed: list[Any] = field(default_factory=list)
    released: list[Any] = field(default_factory=list)
    extended: list[float] = field(default_factory=list)


class ClaimHandler:
    """Claims `max_items` fresh items; records what the engine tells it."""

    def __init__(self, journal: Journal, work: float = 0.0, lease: timedelta | None = None):
        self.journal, self.work = journal, work
        if lease is not None:
            self.lease = lease

    async def fetch_work_items(self, max_items: int) -> Sequence[Any]:
        return [Item() for _ in range(max_items)]

    async def process(self, item: Any) -> None:
        await asyncio.sleep(self.work)
        self.journal.processed.append(item)

    async def complete(self, items: Sequence[Any]) -> None:
        return None

    async def fail(self, item: Any, error: BaseException) -> None:
        return None

    async def extend(self, items: Sequence[Any]) -> None:
        self.journal.extended.append(asyncio.get_running_loop().time())
        await asyncio.sleep(0.01)

    async def release(self, items: Sequence[Any]) -> None:
        self.journal.released.extend(items)


class ItemsWithoutIds:
    async def fetch_work_items(self, max_items: int) -> Sequence[Any]:
        return [object()]

    async def process(self, item: Any) -> None:
        raise AssertionError("never called")


async def test_a_handler_returning_items_without_ids_is_a_fetch_error_not_a_dead_cycle() -> None:
    journal = Journal()
    engine = WorkItemProcessingEngine(
        [
            HandlerRegistration(lambda: ClaimHandler(journal), name="Good"),
            HandlerRegistration(ItemsWithoutIds, name="Bad"),
        ]
    )

    report = await engine.run_cycle()

    assert report.handlers["Good"].succeeded == 10
    assert "AttributeError" in (report.handlers["Bad"].fetch_error or "")


async def test_a_stop_wakes_fetches_blocked_on_a_full_queue_and_releases_their_items() -> None:
    journal = Journal()
    registrations = [
        HandlerRegistration(
            lambda: ClaimHandler(journal, work=0.3), name=f"H{n}", max_items_per_cycle=3
        )
        for n in range(6)
    ]
    engine = WorkItemProcessingEngine(
        registrations, max_concurrency=1, queue_size=2, shutdown_timeout=timedelta(seconds=30)
    )

    cycle = asyncio.create_task(engine.run_cycle())
    await asyncio.sleep(0.1)
    engine.request_stop()
    async with asyncio.timeout(10):  # far below the 30 s grace: nothing waits for it
        report = await cycle

    fetched = sum(s.fetched for s in report.handlers.values())
    released = sum(s.released for s in report.handlers.values())
    assert fetched == 18
    assert report.succeeded + released == 18  # none lost: done or handed back
    assert len(journal.released) == released


async def test_a_short_lease_is_renewed_more_often_than_the_heartbeat_interval() -> None:
    journal = Journal()
    lease = timedelta(seconds=0.3)
    engine = WorkItemProcessingEngine(
        [
            HandlerRegistration(
                lambda: ClaimHandler(journal, work=1.0, lease=lease),
                name="Short",
                max_items_per_cycle=4,  # one round of the 4 slots: 1 s of work
            )
        ],
        heartbeat_interval=timedelta(hours=1),
    )

    await engine.run_cycle()

    assert len(journal.extended) >= 3  # ~every 0.1 s during the 1 s of work
    gaps = [b - a for a, b in zip(journal.extended, journal.extended[1:], strict=False)]
    assert max(gaps) < lease.total_seconds()


async def test_a_scope_that_awaits_on_entry_does_not_break_the_heartbeat() -> None:
    journal = Journal()
    opened = 0

    @contextlib.asynccontextmanager
    async def slow_scope() -> AsyncIterator[None]:
        nonlocal opened
        opened += 1
        if opened == 2:  # the second fetch registers its handler while the heartbeat runs
            await asyncio.sleep(0.12)
        yield

    engine = WorkItemProcessingEngine(
        [
            HandlerRegistration(
                lambda: ClaimHandler(journal, work=0.3), name=name, max_items_per_cycle=2
            )
            for name in ("A", "B")
        ],
        heartbeat_interval=timedelta(seconds=0.1),
        scope_factory=slow_scope,
    )

    report = await engine.run_cycle()

    assert report.succeeded == 4


class DuplicatingClaimHandler(ClaimHandler):
    """Claims `max_items + extra` fresh items and returns each of them twice."""

    def __init__(self, journal: Journal, extra: int) -> None:
        super().__init__(journal)
        self.extra = extra

    async def fetch_work_items(self, max_items: int) -> Sequence[Any]:
        items = [Item() for _ in range(max_items + self.extra)]
        return items + items[::-1]


async def test_duplicates_are_removed_before_the_quota_and_a_kept_id_is_never_released(
    logs: LogCapture,
) -> None:
    journal = Journal()
    engine = WorkItemProcessingEngine(
        [
            HandlerRegistration(
                lambda: DuplicatingClaimHandler(journal, extra=5),
                name="Dup",
                max_items_per_cycle=10,
            )
        ]
    )

    report = await engine.run_cycle()

    processed = {item.id for item in journal.processed}
    released = {item.id for item in journal.released}
    assert len(journal.processed) == len(processed) == 10  # each id once
    assert len(released) == 5  # the 5 distinct items over the quota, handed back
    assert not processed & released  # what runs is never released
    stats = report.handlers["Dup"]
    assert (stats.fetched, stats.truncated, stats.duplicates) == (10, 5, 15)
    assert len(logs.containing("duplicate work items")) == 1  # one warning per fetch


class SlowSynchronous:
    """A plain `def process` longer than its timeout: threads cannot be cancelled."""

    finished: list[Any] = []

    async def fetch_work_items(self, max_items: int) -> Sequence[Any]:
        return [Item() for _ in range(max_items)]

    def process(self, item: Any) -> None:
        time.sleep(0.6)
        self.finished.append(item)


async def test_a_synchronous_item_that_times_out_keeps_its_slot_until_its_thread_returns(
    logs: LogCapture,
) -> None:
    SlowSynchronous.finished = []
    engine = WorkItemProcessingEngine(
        [HandlerRegistration(SlowSynchronous, name="Sync", max_items_per_cycle=2)],
        item_timeout=timedelta(seconds=0.2),
    )

    report = await engine.run_cycle()

    assert report.handlers["Sync"].failed == 2  # timed out: failures, as for async handlers
    assert len(SlowSynchronous.finished) == 2  # and the cycle ended after the threads did
    assert len(logs.containing("cannot be cancelled and keeps its slot")) == 2


async def test_continuous_mode_renews_a_short_lease_from_its_first_fetch_on() -> None:
    """The heartbeat starts before the first fetch registers a handler's lease: it must not sleep
    the default interval (30 s here an hour) before it learns of a 0.3 s lease."""
    journal = Journal()
    lease = timedelta(seconds=0.3)
    engine = WorkItemProcessingEngine(
        [
            HandlerRegistration(
                lambda: ClaimHandler(journal, work=1.0, lease=lease),
                name="Short",
                max_items_per_cycle=1,
            )
        ],
        heartbeat_interval=timedelta(hours=1),
    )

    run = asyncio.create_task(engine.run_continuously(timedelta(hours=1)))
    await asyncio.sleep(0.9)  # the stop lets the first item's 1 s of work finish
    engine.request_stop()
    await run

    assert len(journal.extended) >= 4  # ~every 0.1 s while the items run
    gaps = [b - a for a, b in zip(journal.extended, journal.extended[1:], strict=False)]
    assert max(gaps) < lease.total_seconds()


class UnrenewableHandler(ClaimHandler):
    """Claims items whose renewals all fail (the database is away, say)."""

    async def extend(self, items: Sequence[Any]) -> None:
        raise RuntimeError("could not renew")


async def test_an_item_whose_lease_cannot_be_confirmed_is_not_started(logs: LogCapture) -> None:
    """Renewals failed, so by the time the second item's turn comes (after the first's 0.5 s,
    more than half its 0.4 s lease) nothing says its lease is still this worker's: another
    worker may have claimed it. It is not started."""
    journal = Journal()
    lease = timedelta(seconds=0.4)
    engine = WorkItemProcessingEngine(
        [
            HandlerRegistration(
                lambda: UnrenewableHandler(journal, work=0.5, lease=lease),
                name="Stale",
                max_items_per_cycle=2,
            )
        ],
        max_concurrency=1,
    )

    report = await engine.run_cycle()

    assert len(journal.processed) == 1
    stats = report.handlers["Stale"]
    assert (stats.succeeded, stats.lost) == (1, 1)
    assert logs.containing("its lease could not be confirmed; not started")
