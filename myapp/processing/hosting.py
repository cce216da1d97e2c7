"""Hosted services: the continuous BackgroundProcessingService and the Host that runs them."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import Protocol, runtime_checkable

from loguru import logger

from myapp.processing.engine import DEFAULT_POLL_INTERVAL, WorkItemProcessingEngine
from myapp.processing.report import CycleReport
from myapp.processing.timespan import format_timespan

# An engine error that ends a continuous run (not an item's or a fetch's: those never do)
# restarts it after 1 s, 2 s, 4 s ... at most a minute.
RESTART_BACKOFF_SECONDS = 1.0
RESTART_BACKOFF_CAP = 60.0


@runtime_checkable
class HostedService(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class BackgroundProcessingService:
    """Keeps the work flowing: runs the engine continuously until stopped.

    Each handler refills on its own and sleeps while its source is dry until woken, until its
    next item falls due or until the poll interval passes (see `WorkItemProcessingEngine.
    run_continuously`). An unexpected engine error is logged and the run restarts after a
    backoff; a stop interrupts the wait.
    """

    def __init__(
        self, engine: WorkItemProcessingEngine, *, poll_interval: timedelta = DEFAULT_POLL_INTERVAL
    ) -> None:
        self.engine = engine
        self.poll_interval = poll_interval
        self._stop_requested = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="background-processing")

    async def stop(self) -> None:
        """Graceful: the engine finishes in-flight items within its shutdown timeout.

        Cancelling this call (a second signal) cancels the running items at once.
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
        failures = 0
        while not self._stop_requested.is_set():
            try:
                await self.engine.run_continuously(self.poll_interval)
            except Exception:
                failures += 1
                delay = min(RESTART_BACKOFF_SECONDS * 2 ** (failures - 1), RESTART_BACKOFF_CAP)
                logger.exception("Error in background processing; restarting in {}s", delay)
                await self._wait_for_stop(timedelta(seconds=delay))
        logger.info("Unified background processing service stopped")

    async def _wait_for_stop(self, interval: timedelta) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval.total_seconds()):
                await self._stop_requested.wait()


class Host:
    """Starts hosted services in order, stops them in reverse order on SIGINT/SIGTERM.

    A second signal stops at once: running items are cancelled (their scopes still close).
    """

    def __init__(self, services: Sequence[HostedService]) -> None:
        self.services = list(services)
        self._stop = asyncio.Event()
        self._stopping_task: asyncio.Task[None] | None = None
        self.request_stop = StopSignals(graceful=self._stop.set, at_once=self._stop_at_once)

    def _stop_at_once(self) -> None:
        if self._stopping_task is not None:
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
                    if not self.request_stop.at_once_requested:
                        raise

    async def _stop_all(self, services: list[HostedService]) -> None:
        remaining = list(reversed(services))
        while remaining:
            service = remaining.pop(0)
            try:
                await service.stop()
            except asyncio.CancelledError:  # the second signal: the rest stop at once too
                for rest in remaining:
                    await _stop_at_once(rest)
                raise
            except Exception:
                logger.exception("Error stopping {}", type(service).__name__)


async def _stop_at_once(service: HostedService) -> None:
    """`stop()`, cancelled as soon as it has begun: a service's stop-at-once path."""
    stopping = asyncio.ensure_future(service.stop())
    await asyncio.sleep(0)
    stopping.cancel("second signal")
    for outcome in await asyncio.gather(stopping, return_exceptions=True):
        if isinstance(outcome, Exception):
            logger.opt(exception=outcome).error("Error stopping {}", type(service).__name__)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """What SIGINT/SIGTERM mean, for the host and for `run --once` alike: the first asks for a
    graceful stop, the second for a stop at once; more change nothing."""

    def __init__(
        self, *, graceful: Callable[[], object], at_once: Callable[[], object], what: str = ""
    ) -> None:
        self._graceful = graceful
        self._at_once = at_once
        self._what = f" {what}" if what else ""
        self.count = 0

    @property
    def at_once_requested(self) -> bool:
        return self.count >= 2

    def __call__(self) -> None:
        self.count += 1
        if self.count == 1:
            logger.info("Stopping{} (send the signal again to stop at once)", self._what)
            self._graceful()
        elif self.count == 2:
            logger.warning("Stopping at once")
            self._at_once()


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


async def run_one_cycle(engine: WorkItemProcessingEngine) -> CycleReport:
    """One cycle (`run --once`) that stops like the host: the first signal is a graceful stop
    (unstarted items released), the second cancels what still runs."""
    cycle = asyncio.ensure_future(engine.run_cycle())
    stop = StopSignals(
        graceful=engine.request_stop,
        at_once=lambda: cycle.cancel("second signal"),
        what="the cycle",
    )
    with handle_stop_signals(stop):
        return await cycle
