"""BackgroundProcessingService (poll loop) and Host (start/stop order, signals)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from myapp.processing import CycleReport, HandlerCycleStats, WorkItemProcessingEngine
from myapp.processing.hosting import BackgroundProcessingService, Host, HostedService
from tests.fixtures.logs import LogCapture
from tests.unit.support import HandlerState, Item, ScopeRecorder, items_for, registration

# Generous guards: they turn a hang into a failure, they do not measure speed.
GUARD_S = 10
ONE_HOUR = timedelta(hours=1)


class ScriptedEngine(WorkItemProcessingEngine):
    """An engine whose cycles follow a script: a report to return or an exception to raise."""

    def __init__(self, script: Sequence[CycleReport | Exception]) -> None:
        super().__init__([], max_concurrency=1)
        self.script = list(script)
        self.cycles = 0
        self.cycle_ran = asyncio.Event()

    async def run_cycle(self) -> CycleReport:
        step = self.script[min(self.cycles, len(self.script) - 1)]
        self.cycles += 1
        self.cycle_ran.set()
        if isinstance(step, Exception):
            raise step
        return step

    async def wait_for_cycles(self, count: int) -> None:
        async with asyncio.timeout(GUARD_S):
            while self.cycles < count:
                self.cycle_ran.clear()
                await self.cycle_ran.wait()


QUIET = CycleReport({"A": HandlerCycleStats(fetched=1, succeeded=1)})
FULL = CycleReport({"A": HandlerCycleStats(fetched=5, succeeded=5, filled_quota=True)})


async def test_the_service_logs_its_start_and_runs_a_cycle_at_once(logs: LogCapture) -> None:
    engine = ScriptedEngine([QUIET])
    service = BackgroundProcessingService(engine)  # default poll interval: 5 minutes

    await service.start()
    await engine.wait_for_cycles(1)
    async with asyncio.timeout(GUARD_S):
        await service.stop()

    started = "Unified background processing service started with 00:05:00 poll interval"
    assert [r.level for r in logs.with_message(started)] == ["INFO"]
    assert engine.cycles == 1
    assert logs.containing("stopped")


async def test_stop_interrupts_the_poll_wait_at_once() -> None:
    engine = ScriptedEngine([QUIET])
    service = BackgroundProcessingService(engine, poll_interval=ONE_HOUR)

    await service.start()
    await engine.wait_for_cycles(1)
    async with asyncio.timeout(GUARD_S):  # an hour-long wait must not hold the stop
        await service.stop()

    assert engine.cycles == 1
    assert engine.stopping


async def test_an_engine_error_is_logged_and_the_loop_keeps_running(logs: LogCapture) -> None:
    boom = RuntimeError("cycle exploded")
    engine = ScriptedEngine([boom, QUIET])
    service = BackgroundProcessingService(engine, poll_interval=timedelta(milliseconds=10))

    await service.start()
    await engine.wait_for_cycles(3)
    await service.stop()

    errors = [r for r in logs.records if r.level == "ERROR"]
    assert len(errors) == 1
    assert errors[0].exception is boom
    assert "cycle 1" in errors[0].message


async def test_a_filled_quota_starts_the_next_cycle_without_waiting() -> None:
    engine = ScriptedEngine([FULL, FULL, QUIET])
    service = BackgroundProcessingService(engine, poll_interval=ONE_HOUR)

    await service.start()
    await engine.wait_for_cycles(3)  # would wait an hour after cycle 1 without the shortcut
    await service.stop()

    assert engine.cycles == 3


async def test_a_filled_quota_with_a_real_engine_drains_the_backlog() -> None:
    backlog = items_for("Backlog", 7)
    drained = asyncio.Event()

    async def fetch(max_items: int) -> list[Item]:
        return [item for item in backlog if item not in state.processed][:max_items]

    async def process(item: Item) -> None:
        if len(state.started) == len(backlog):
            drained.set()

    state = HandlerState("Backlog", fetch_hook=fetch, process_hook=process)
    engine = WorkItemProcessingEngine(
        [registration(state, max_items_per_cycle=3)], max_concurrency=2
    )
    service = BackgroundProcessingService(engine, poll_interval=ONE_HOUR)

    await service.start()
    async with asyncio.timeout(GUARD_S):
        await drained.wait()
    await service.stop()

    assert sorted(state.processed, key=lambda i: i.index) == backlog
    assert state.fetch_requests == [3, 3, 3]  # 3 + 3 + 1: the partial batch ends the burst


class RecordingService:
    def __init__(self, name: str, events: list[str], started: asyncio.Event | None = None):
        self.name = name
        self.events = events
        self.started = started

    async def start(self) -> None:
        self.events.append(f"start {self.name}")
        if self.started is not None:
            self.started.set()

    async def stop(self) -> None:
        self.events.append(f"stop {self.name}")


async def test_host_starts_services_in_order_and_stops_them_in_reverse() -> None:
    events: list[str] = []
    all_started = asyncio.Event()
    services: list[HostedService] = [
        RecordingService("a", events),
        RecordingService("b", events),
        RecordingService("c", events, all_started),
    ]
    assert all(isinstance(s, HostedService) for s in services)
    host = Host(services)

    running = asyncio.create_task(host.run())
    async with asyncio.timeout(GUARD_S):
        await all_started.wait()
        host.request_stop()
        await running

    assert events == ["start a", "start b", "start c", "stop c", "stop b", "stop a"]


async def test_sigterm_stops_the_host_gracefully() -> None:
    gate = asyncio.Event()
    item_started = asyncio.Event()

    async def process(item: Item) -> None:
        item_started.set()
        await gate.wait()

    state = HandlerState("Work", items_for("Work", 3), process_hook=process)
    scopes = ScopeRecorder()
    engine = WorkItemProcessingEngine(
        [registration(state)], max_concurrency=1, shutdown_timeout=ONE_HOUR, scope_factory=scopes
    )
    service = BackgroundProcessingService(engine, poll_interval=ONE_HOUR)
    events: list[str] = []
    host = Host([RecordingService("first", events), service])

    running = asyncio.create_task(host.run())
    async with asyncio.timeout(GUARD_S):
        await item_started.wait()
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.05)  # the in-flight item is allowed to finish...
        assert not running.done()
        gate.set()  # ...and does
        await running

    assert state.processed == items_for("Work", 1)  # nothing new started after the signal
    assert events == ["start first", "stop first"]
    assert scopes.open_now == 0
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers removed


async def test_a_second_signal_cancels_running_items_at_once(logs: LogCapture) -> None:
    item_started = asyncio.Event()
    cancelled: list[Any] = []

    async def process(item: Item) -> None:
        item_started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(item)
            raise

    state = HandlerState("Work", items_for("Work", 2), process_hook=process)
    scopes = ScopeRecorder()
    engine = WorkItemProcessingEngine(
        [registration(state)], max_concurrency=1, shutdown_timeout=ONE_HOUR, scope_factory=scopes
    )
    host = Host([BackgroundProcessingService(engine, poll_interval=ONE_HOUR)])

    running = asyncio.create_task(host.run())
    async with asyncio.timeout(GUARD_S):
        await item_started.wait()
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.05)
        assert not running.done()  # graceful: waiting for the item (shutdown timeout: 1 h)
        os.kill(os.getpid(), signal.SIGINT)
        await running

    assert cancelled == items_for("Work", 1)
    assert scopes.open_now == 0
    assert logs.containing("Stopping at once")


class Recorder:
    def __init__(self, name: str, journal: list[str], fail_start: bool = False) -> None:
        self.name, self.journal, self.fail_start = name, journal, fail_start

    async def start(self) -> None:
        if self.fail_start:
            raise RuntimeError(f"{self.name} cannot start")
        self.journal.append(f"start {self.name}")

    async def stop(self) -> None:
        self.journal.append(f"stop {self.name}")


async def test_a_service_that_fails_to_start_stops_those_already_started() -> None:
    journal: list[str] = []
    host = Host([Recorder("a", journal), Recorder("b", journal), Recorder("c", journal, True)])

    async with asyncio.timeout(GUARD_S):
        try:
            await host.run()
        except RuntimeError as error:
            assert "c cannot start" in str(error)
        else:
            raise AssertionError("the start failure was swallowed")

    assert journal == ["start a", "start b", "stop b", "stop a"]


async def test_sigterm_during_run_once_is_a_graceful_stop_that_releases_unstarted_items() -> None:
    from myapp.processing.hosting import run_one_cycle
    from tests.unit.support import FakeClaimHandler

    started = asyncio.Event()

    async def slow(item: Any) -> None:
        started.set()
        await asyncio.sleep(0.3)

    state = HandlerState("Slow", items_for("Slow", 5), process_hook=slow)
    engine = WorkItemProcessingEngine(
        [registration(state, FakeClaimHandler, max_items_per_cycle=5)], max_concurrency=1
    )

    async def terminate_once_started() -> None:
        await started.wait()
        os.kill(os.getpid(), signal.SIGTERM)

    killer = asyncio.create_task(terminate_once_started())
    async with asyncio.timeout(GUARD_S):
        report = await run_one_cycle(engine)
    await killer

    assert report.handlers["Slow"].succeeded == 1  # the running item finished
    assert report.handlers["Slow"].released == 4
    assert [len(items) for (items,) in state.calls("release")] == [4]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
