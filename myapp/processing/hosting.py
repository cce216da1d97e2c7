"""Hosted services: the polling BackgroundProcessingService and the Host that runs them."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import Protocol, runtime_checkable

from loguru import logger

from myapp.processing.engine import WorkItemProcessingEngine
from myapp.processing.report import CycleReport
from myapp.processing.timespan import format_timespan
from myapp.processing.transient import (
    DatabaseOutage,
    is_database_unavailable,
    raised_by_database,
)

DEFAULT_POLL_INTERVAL = timedelta(minutes=5)


@runtime_checkable
class HostedService(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class BackgroundProcessingService:
    """Runs a cycle, waits the poll interval (a stop interrupts the wait), repeats.

    When the last cycle filled some handler's quota there is probably more work waiting, so the
    next cycle starts at once: throughput is not capped at quota / poll interval.

    When the database is away (the cycle, or a fetch, failed because it cannot be reached) the
    service says so once, retries with a capped backoff instead of the poll interval, and says
    once when it is back (`DatabaseOutage`). Any fetch, not every: handlers that do not use the
    database (BlobCleanup) keep working through its outage.
    """

    def __init__(
        self,
        engine: WorkItemProcessingEngine,
        *,
        poll_interval: timedelta = DEFAULT_POLL_INTERVAL,
        outage: DatabaseOutage | None = None,
    ) -> None:
        self.engine = engine
        self.poll_interval = poll_interval
        self.cycles = 0
        self.outage = outage or DatabaseOutage()
        self._stop_requested = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="background-processing")

    async def stop(self) -> None:
        """Graceful: the engine finishes in-flight items within its shutdown timeout.

        Cancelling this call (a second signal) cancels the running cycle at once.
        """
        self._stop_requested.set()
        self.engine.request_stop()
        if self._task is None:
            return
        try:
            await asyncio.shield(self._task)
        except asyncio.CancelledError:
            self._task.cancel("stop now")
            await asyncio.gather(self._task, return_exceptions=True)
            raise

    async def run(self) -> None:
        interval = format_timespan(self.poll_interval)
        logger.info("Unified background processing service started with {} poll interval", interval)
        while not self._stop_requested.is_set():
            report = await self.run_one_cycle()
            if self.outage.down:
                await self._wait_for_stop(timedelta(seconds=self.outage.next_delay()))
                continue
            if report is not None and report.more_work_waiting:
                logger.debug("A handler filled its quota; starting the next cycle now")
                continue
            await self._wait_for_stop(self.poll_interval)
        logger.info("Unified background processing service stopped")

    async def run_one_cycle(self) -> CycleReport | None:
        """One cycle; the outage tracker learns whether the database answered."""
        self.cycles += 1
        try:
            report = await self.engine.run_cycle()
        except Exception as error:
            if _database_away(error):
                self.outage.failed(error)
            else:
                logger.exception("Error during background processing cycle {}", self.cycles)
            return None
        if (unavailable := _database_unavailable(report)) is not None:
            self.outage.failed(unavailable)
        else:
            self.outage.recovered()
        return report

    async def _wait_for_stop(self, interval: timedelta) -> None:
        try:
            async with asyncio.timeout(interval.total_seconds()):
                await self._stop_requested.wait()
        except TimeoutError:
            pass


class Host:
    """Starts hosted services in order, stops them in reverse order on SIGINT/SIGTERM.

    A second signal stops at once: running items are cancelled (their scopes still close).
    """

    def __init__(self, services: Sequence[HostedService]) -> None:
        self.services = list(services)
        self._stop = asyncio.Event()
        self._signals = 0
        self._stopping_task: asyncio.Task[None] | None = None

    def request_stop(self) -> None:
        self._signals += 1
        if self._signals == 1:
            logger.info("Stopping (send the signal again to stop at once)")
            self._stop.set()
        elif self._stopping_task is not None:
            logger.warning("Stopping at once")
            self._stopping_task.cancel("second signal")

    async def run(self) -> None:
        with handle_stop_signals(self.request_stop):
            started: list[HostedService] = []
            try:
                for service in self.services:
                    await service.start()
                    started.append(service)
                await self._stop.wait()
            finally:  # also when a service fails to start: stop those that did
                self._stopping_task = asyncio.create_task(self._stop_all(started))
                try:
                    await self._stopping_task
                except asyncio.CancelledError:
                    if self._signals < 2:
                        raise

    async def _stop_all(self, services: list[HostedService]) -> None:
        for service in reversed(services):
            try:
                await service.stop()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Error stopping {}", type(service).__name__)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def handle_stop_signals(on_signal: Callable[[], None]) -> Iterator[None]:
    """Call `on_signal` on SIGINT/SIGTERM while inside (the caller counts repeats)."""
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal)
    try:
        yield
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)


def _database_unavailable(report: CycleReport) -> BaseException | None:
    """The error of the first fetch that failed because the database cannot be reached."""
    errors = (stats.fetch_exception for stats in report.handlers.values())
    return next((e for e in errors if e is not None and _database_away(e)), None)


def _database_away(error: BaseException) -> bool:
    return is_database_unavailable(error) and raised_by_database(error)


async def run_one_cycle(engine: WorkItemProcessingEngine) -> CycleReport:
    """One cycle (`run --once`) that stops like the host: the first signal is a graceful stop
    (unstarted items released), the second cancels what still runs."""
    cycle = asyncio.ensure_future(engine.run_cycle())
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            logger.info("Stopping the cycle (send the signal again to stop at once)")
            engine.request_stop()
        else:
            cycle.cancel("second signal")

    with handle_stop_signals(on_signal):
        return await cycle
