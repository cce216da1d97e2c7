"""BackgroundProcessingService (continuous runs, restarts) and Host (start/stop order, signals)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from myapp.processing import CycleReport, WorkItemProcessingEngine
from myapp.processing.hosting import BackgroundProcessingService, Host, HostedService
from tests.fixtures.logs import LogCapture
from tests.unit.support import HandlerState, Item, ScopeRecorder, items_for, registration

# Generous guards: they turn a hang into a failure, they do not measure speed.
GUARD_S = 10
ONE_HOUR = timedelta(hours=1)


class ScriptedEngine(WorkItemProcessingEngine):
    """An engine whose continuous runs follow a script: an exception to raise, or None to run
    until stopped."""

    def __init__(self, script: Sequence[Exception | None]) -> None:
        super().__init__([], max_concurrency=1)
        self.script = list(script)
        self.runs = 0
        self.run_started = asyncio.Event()

    async def run_continuously(self, poll_interval: timedelta = ONE_HOUR) -> CycleReport:
        step = self.script[min(self.runs, len(self.script) - 1)]
        self.runs += 1
        self.run_started.set()
        if step is not None:
            raise step
        await self.wait_for_stop()
        return CycleReport({})

    async def wait_for_runs(self, count: int) -> None:
        async with asyncio.timeout(GUARD_S):
            while self.runs < count:
                self.run_started.clear()
                await self.run_started.wait()


async def test_the_service_logs_its_start_and_runs_the_engine_until_stopped(
    logs: LogCapture,
) -> None:
    engine = ScriptedEngine([None])
    service = BackgroundProcessingService(engine)  # default poll interval: 5 minutes

    await service.start()
    await engine.wait_for_runs(1)
    async with asyncio.timeout(GUARD_S):  # the stop ends the run at once
        await service.stop()

    started = "Unified background processing service started with 00:05:00 poll interval"
    assert [r.level for r in logs.with_message(started)] == ["INFO"]
    assert engine.runs == 1
    assert engine.stopping
    assert logs.containing("stopped")


async def test_an_engine_error_is_logged_and_the_run_restarts(logs: LogCapture) -> None:
    boom = RuntimeError("engine exploded")
    engine = ScriptedEngine([boom, None])
    service = BackgroundProcessingService(engine)

    await service.start()
    await engine.wait_for_runs(2)  # after the first restart backoff (1 s)
    await service.stop()

    errors = [r for r in logs.records if r.level == "ERROR"]
    assert len(errors) == 1
    assert errors[0].exception is boom
    assert "restarting in 1.0s" in errors[0].message


async def test_a_stop_during_the_restart_backoff_ends_the_service_at_once() -> None:
    engine = ScriptedEngine([RuntimeError("down")])
    service = BackgroundProcessingService(engine)

    await service.start()
    await engine.wait_for_runs(1)
    async with asyncio.timeout(0.5):  # the backoff (1 s) does not hold the stop
        await service.stop()

    assert engine.runs == 1


async def test_a_backlog_drains_without_waiting_the_poll_interval() -> None:
    backlog = items_for("Backlog", 7)
    drained = asyncio.Event()

    async def fetch(max_items: int) -> list[Item]:
        return [item for item in backlog if item not in state.processed][:max_items]

    async def process(item: Item) -> None:
        await asyncio.sleep(0.01)
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

    # Each once, although later fetches returned items still queued or running.
    assert sorted(state.started, key=lambda i: i.index) == backlog


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


class SlowToStop(Recorder):
    """A service whose graceful stop takes long; cancelled, it records that it stopped at once."""

    async def stop(self) -> None:
        self.journal.append(f"stop {self.name}")
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.journal.append(f"stopped {self.name} at once")
            raise


async def test_a_second_signal_while_one_service_stops_stops_the_others_at_once_too() -> None:
    journal: list[str] = []
    host = Host([SlowToStop("processing", journal), SlowToStop("wakeups", journal)])

    running = asyncio.create_task(host.run())
    async with asyncio.timeout(GUARD_S):
        while journal != ["start processing", "start wakeups"]:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)  # while "wakeups" is still stopping
        await running

    assert journal[2:] == [
        "stop wakeups",
        "stopped wakeups at once",
        "stop processing",  # not left running: a service that was never stopped outlives the host
        "stopped processing at once",
    ]
