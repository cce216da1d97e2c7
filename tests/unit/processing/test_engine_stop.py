"""Stopping a cycle, scopes always closed, and the ClaimLifecycle calls (complete, fail,
extend, release)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from myapp.processing import CycleReport, WorkItemProcessingEngine
from tests.fixtures.logs import LogCapture
from tests.unit.support import (
    FakeClaimHandler,
    HandlerState,
    Item,
    ScopeRecorder,
    items_for,
    registration,
)

DEADLOCK_GUARD_S = 20
LONG = timedelta(seconds=30)


async def run_cycle(engine: WorkItemProcessingEngine) -> CycleReport:
    async with asyncio.timeout(DEADLOCK_GUARD_S):
        return await engine.run_cycle()


class Gate:
    """Process hook: items announce they started, then wait until the gate opens."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.started: list[Item] = []
        self.all_started = asyncio.Event()
        self.open = asyncio.Event()
        self.cancelled: list[Item] = []

    async def __call__(self, item: Item) -> None:
        self.started.append(item)
        if len(self.started) == self.expected:
            self.all_started.set()
        try:
            await self.open.wait()
        except asyncio.CancelledError:
            self.cancelled.append(item)
            raise


def claim_engine(
    state: HandlerState, scopes: ScopeRecorder, *, max_concurrency: int = 2, **options: Any
) -> WorkItemProcessingEngine:
    reg_options = {
        k: options.pop(k) for k in ("item_timeout", "max_items_per_cycle") if k in options
    }
    return WorkItemProcessingEngine(
        [registration(state, FakeClaimHandler, **reg_options)],
        max_concurrency=max_concurrency,
        scope_factory=scopes,
        **options,
    )


def flatten(calls: Sequence[tuple[Any, ...]]) -> list[Any]:
    return [item for (items,) in calls for item in items]


async def test_stop_during_a_cycle_starts_nothing_new_and_lets_in_flight_items_finish() -> None:
    gate = Gate(expected=2)
    items = items_for("Claims", 6)
    state = HandlerState("Claims", items, process_hook=gate)
    scopes = ScopeRecorder()
    engine = claim_engine(state, scopes, shutdown_timeout=LONG)

    cycle = asyncio.create_task(run_cycle(engine))
    await gate.all_started.wait()
    engine.request_stop()
    await asyncio.sleep(0.05)  # give the engine a chance to (wrongly) start more items
    assert len(gate.started) == 2
    gate.open.set()
    report = await cycle

    stats = report.handlers["Claims"]
    assert (stats.succeeded, stats.failed, stats.released) == (2, 0, 4)
    assert gate.started == state.processed  # the two in flight finished normally
    assert sorted(flatten(state.calls("complete")), key=lambda i: i.index) == gate.started
    released = flatten(state.calls("release"))
    assert sorted(released, key=lambda i: i.index) == [i for i in items if i not in gate.started]
    assert state.calls("fail") == []
    assert scopes.open_now == 0


async def test_in_flight_items_past_the_shutdown_timeout_are_cancelled_and_scopes_closed(
    logs: LogCapture,
) -> None:
    gate = Gate(expected=2)
    items = items_for("Claims", 5)
    state = HandlerState("Claims", items, process_hook=gate)
    scopes = ScopeRecorder()
    engine = claim_engine(state, scopes, shutdown_timeout=timedelta(milliseconds=50))

    cycle = asyncio.create_task(run_cycle(engine))
    await gate.all_started.wait()
    engine.request_stop()
    report = await cycle  # the gate never opens

    assert sorted(gate.cancelled, key=lambda i: i.index) == sorted(
        gate.started, key=lambda i: i.index
    )
    stats = report.handlers["Claims"]
    assert (stats.succeeded, stats.failed, stats.released) == (0, 2, 3)
    failed = state.calls("fail")
    assert {item for item, _ in failed} == set(gate.started)
    assert all(isinstance(error, asyncio.CancelledError) for _, error in failed)
    assert len(flatten(state.calls("release"))) == 3
    assert scopes.open_now == 0
    assert scopes.closed_with.count(asyncio.CancelledError) == 2
    assert logs.containing("Cancelled 2 work items")


async def test_stop_while_a_fetch_is_still_running_releases_what_it_returns() -> None:
    fetch_started = asyncio.Event()
    fetch_may_return = asyncio.Event()
    items = items_for("Late", 4)

    async def slow_fetch(max_items: int) -> list[Item]:
        fetch_started.set()
        await fetch_may_return.wait()
        return items

    state = HandlerState("Late", fetch_hook=slow_fetch)
    scopes = ScopeRecorder()
    engine = claim_engine(state, scopes)

    cycle = asyncio.create_task(run_cycle(engine))
    await fetch_started.wait()
    engine.request_stop()
    fetch_may_return.set()
    report = await cycle

    assert state.started == []
    assert sorted(flatten(state.calls("release")), key=lambda i: i.index) == items
    assert report.handlers["Late"].released == 4
    assert scopes.open_now == 0


async def test_stop_with_a_full_queue_accounts_for_every_item_exactly_once() -> None:
    gate = Gate(expected=1)
    items = items_for("Many", 9)
    state = HandlerState("Many", items, process_hook=gate)
    scopes = ScopeRecorder()
    engine = claim_engine(state, scopes, max_concurrency=1, queue_size=2, shutdown_timeout=LONG)

    cycle = asyncio.create_task(run_cycle(engine))
    await gate.all_started.wait()
    engine.request_stop()
    gate.open.set()
    report = await cycle

    released = flatten(state.calls("release"))
    assert len(gate.started) == 1
    assert sorted([*gate.started, *released], key=lambda i: i.index) == items
    assert report.handlers["Many"].released == 8
    assert scopes.open_now == 0


async def test_every_scope_is_closed_after_success_failure_and_timeout() -> None:
    async def mixed(item: Item) -> None:
        if item.index == 1:
            raise RuntimeError("fails")
        if item.index == 2:
            await asyncio.Event().wait()  # times out

    state = HandlerState("Mixed", items_for("Mixed", 4), process_hook=mixed)
    scopes = ScopeRecorder()
    engine = claim_engine(state, scopes, item_timeout=timedelta(milliseconds=50))

    await run_cycle(engine)

    # 1 fetch + 4 process calls + lifecycle calls (complete batches, 2 fails), all closed.
    assert scopes.opened >= 1 + 4 + 2 + 1
    assert scopes.open_now == 0
    assert RuntimeError in scopes.closed_with
    assert asyncio.CancelledError in scopes.closed_with or TimeoutError in scopes.closed_with


async def test_completions_finishing_together_are_acknowledged_in_one_call() -> None:
    gate = Gate(expected=4)
    items = items_for("Batch", 4)
    state = HandlerState("Batch", items, process_hook=gate)
    engine = claim_engine(state, ScopeRecorder(), max_concurrency=4)

    cycle = asyncio.create_task(run_cycle(engine))
    await gate.all_started.wait()
    gate.open.set()  # all four finish at the same moment
    await cycle

    completes = state.calls("complete")
    assert len(completes) == 1, completes
    assert sorted(completes[0][0], key=lambda i: i.index) == items


async def test_fail_is_called_for_failed_and_timed_out_items_and_complete_for_the_rest() -> None:
    boom = RuntimeError("broken item")

    async def mixed(item: Item) -> None:
        if item.index == 0:
            raise boom
        if item.index == 1:
            await asyncio.Event().wait()

    items = items_for("Mixed", 5)
    state = HandlerState("Mixed", items, process_hook=mixed)
    engine = claim_engine(state, ScopeRecorder(), item_timeout=timedelta(milliseconds=50))

    report = await run_cycle(engine)

    failures = dict(state.calls("fail"))
    assert set(failures) == {items[0], items[1]}
    assert failures[items[0]] is boom
    assert isinstance(failures[items[1]], TimeoutError)
    assert sorted(flatten(state.calls("complete")), key=lambda i: i.index) == items[2:]
    assert state.calls("release") == []
    assert (report.handlers["Mixed"].succeeded, report.handlers["Mixed"].failed) == (3, 2)


class HeartbeatHandler(FakeClaimHandler):
    extended = asyncio.Event()  # replaced per test

    async def extend(self, items: Sequence[Any]) -> None:
        await super().extend(items)
        if len(self.state.calls("extend")) >= 2:
            HeartbeatHandler.extended.set()


async def test_heartbeat_extends_the_leases_of_running_items() -> None:
    HeartbeatHandler.extended = asyncio.Event()
    items = items_for("Long", 2)

    async def long_running(item: Item) -> None:
        if item.index == 0:
            await HeartbeatHandler.extended.wait()  # finishes only once leases were extended

    state = HandlerState("Long", items, process_hook=long_running)
    engine = WorkItemProcessingEngine(
        [registration(state, HeartbeatHandler)],
        max_concurrency=2,
        heartbeat_interval=timedelta(milliseconds=10),
    )

    report = await run_cycle(engine)

    assert report.handlers["Long"].succeeded == 2
    extends = state.calls("extend")
    assert len(extends) >= 2
    assert all(batch == [items[0]] for (batch,) in extends), extends  # only the running one


async def test_a_lifecycle_call_that_raises_is_logged_and_does_not_stop_the_cycle(
    logs: LogCapture,
) -> None:
    class BrokenAck(FakeClaimHandler):
        async def complete(self, items: Sequence[Any]) -> None:
            raise ConnectionError("lost the database")

    state = HandlerState("Ack", items_for("Ack", 3))
    engine = WorkItemProcessingEngine([registration(state, BrokenAck)], max_concurrency=2)

    report = await run_cycle(engine)

    assert report.handlers["Ack"].succeeded == 3
    errors = [r for r in logs.records if r.level == "ERROR" and "Ack" in r.message]
    assert errors and all(isinstance(r.exception, ConnectionError) for r in errors)
