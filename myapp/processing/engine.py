"""WorkItemProcessingEngine: one cycle is fetch -> fair bounded queue -> bounded processing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Sequence
from datetime import timedelta
from time import perf_counter
from typing import Any, TypeVar

from loguru import logger

from myapp.processing.fair_queue import FairQueue, QueueClosedError
from myapp.processing.lifecycle import HandlerLifecycle, ScopeFactory
from myapp.processing.registration import HandlerRegistration
from myapp.processing.report import CycleReport, HandlerStatsRecorder
from myapp.processing.scope import Scope
from myapp.processing.transient import describe_database_error, is_database_unavailable
from myapp.processing.work_item import ClaimLifecycle, ProcessorPurpose

DEFAULT_MAX_CONCURRENCY = 4
DEFAULT_SHUTDOWN_TIMEOUT = timedelta(seconds=30)
DEFAULT_HEARTBEAT_INTERVAL = timedelta(seconds=30)
QUEUE_SLOTS_PER_WORKER = 4
# A lease is renewed this many times within its length, so one late heartbeat cannot lose it.
LEASE_RENEWALS = 3
MIN_HEARTBEAT_SECONDS = 0.05

T = TypeVar("T")


class WorkItemProcessingEngine:
    """Runs every enabled registration's work, one cycle at a time.

    Every fetch and every process call gets a fresh scope (`scope_factory`) and a fresh handler
    (`registration.handler_factory()`). One failure never stops the rest.
    """

    def __init__(
        self,
        registrations: Iterable[HandlerRegistration],
        *,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        queue_size: int | None = None,
        fetch_timeout: timedelta | None = None,
        item_timeout: timedelta | None = None,
        shutdown_timeout: timedelta = DEFAULT_SHUTDOWN_TIMEOUT,
        heartbeat_interval: timedelta = DEFAULT_HEARTBEAT_INTERVAL,
        scope_factory: ScopeFactory = Scope,
    ) -> None:
        self.registrations: tuple[HandlerRegistration, ...] = tuple(registrations)
        names = [r.name for r in self.registrations]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"Handler names must be unique; registered twice: {duplicates}")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self.max_concurrency = max_concurrency
        self.queue_size = queue_size or max_concurrency * QUEUE_SLOTS_PER_WORKER
        self.fetch_timeout = fetch_timeout
        self.item_timeout = item_timeout
        self.shutdown_timeout = shutdown_timeout
        self.heartbeat_interval = heartbeat_interval
        self.scope_factory = scope_factory
        self._stopping = asyncio.Event()

    def get_handler_names_by_purpose(self, purpose: ProcessorPurpose) -> list[str]:
        return [r.name for r in self.registrations if r.purpose == purpose]

    @property
    def enabled_registrations(self) -> list[HandlerRegistration]:
        return [r for r in self.registrations if r.enabled]

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def request_stop(self) -> None:
        """Graceful stop: no new item starts; in-flight items get `shutdown_timeout` to finish."""
        self._stopping.set()

    async def wait_for_stop(self) -> None:
        await self._stopping.wait()

    async def run_cycle(self) -> CycleReport:
        return await _Cycle(self, self.enabled_registrations).run()


class _Cycle:
    """The state of one cycle. Reads in the order it runs: fetch, queue, process, report."""

    def __init__(self, engine: WorkItemProcessingEngine, registrations: list[HandlerRegistration]):
        self.engine = engine
        self.registrations = registrations
        self.stats = {r.name: HandlerStatsRecorder() for r in registrations}
        self.lifecycles: dict[str, HandlerLifecycle] = {}
        # Items fetched and not yet finished or released: their leases are renewed.
        self.held: dict[str, dict[int, Any]] = {r.name: {} for r in registrations}
        self.queue: FairQueue[Any] = FairQueue(
            engine.queue_size, {r.name: r.max_concurrency for r in registrations}
        )
        self.slots = asyncio.Semaphore(engine.max_concurrency)
        self.by_name = {r.name: r for r in registrations}
        self.open_scope = engine.scope_factory

    async def run(self) -> CycleReport:
        started = asyncio.get_running_loop().time()
        async with asyncio.TaskGroup() as tasks:
            fetches = [tasks.create_task(self.fetch(r)) for r in self.registrations]
            tasks.create_task(self.close_queue_after(fetches))
            heartbeat = tasks.create_task(self.heartbeat())
            await self.process_queue(tasks)
            heartbeat.cancel()
        for lifecycle in self.lifecycles.values():
            await lifecycle.drain()
        seconds = asyncio.get_running_loop().time() - started
        return CycleReport({n: s.freeze() for n, s in self.stats.items()}, seconds)

    # 1. Fetch: every registration in parallel, each in its own scope.

    async def fetch(self, registration: HandlerRegistration) -> None:
        name, quota = registration.name, registration.max_items_per_cycle
        stats = self.stats[name]
        try:
            async with self.open_scope():
                handler = registration.handler_factory()
                if isinstance(handler, ClaimLifecycle):
                    lease = getattr(handler, "lease", None)
                    self.lifecycles[name] = HandlerLifecycle(registration, self.open_scope, lease)
                async with asyncio.timeout(_seconds(self.engine.fetch_timeout)):
                    items = list(await handler.fetch_work_items(quota))
            fetched = len(items)
            items = await self._within_quota(name, quota, items)
            items = _without_duplicates(name, items, stats)  # needs a hashable `id` on each
        except Exception as error:
            stats.fetch_error, stats.fetch_exception = f"{type(error).__name__}: {error}", error
            stats.finished = perf_counter()
            if is_database_unavailable(error):  # one line: the outage lasts many cycles
                summary = describe_database_error(error)
                logger.warning("Error fetching work items from handler {}: {}", name, summary)
            else:
                logger.opt(exception=error).error("Error fetching work items from handler {}", name)
            return
        stats.filled_quota = fetched >= quota
        stats.fetched = len(items)
        stats.finished = perf_counter()
        self.held[name].update((id(item), item) for item in items)
        logger.info("Handler '{}' fetched {} work items", name, len(items))
        for index, item in enumerate(items):
            try:
                await self.queue.put(name, item)
            except QueueClosedError:  # stopping: what was not queued is released
                await self._release(name, items[index:])
                return

    async def _within_quota(self, name: str, quota: int, items: list[Any]) -> list[Any]:
        if len(items) <= quota:
            return items
        logger.warning(
            "Handler '{}' returned {} items but max is {}. Truncating.", name, len(items), quota
        )
        self.stats[name].truncated = len(items) - quota
        if name in self.lifecycles:  # claimed but dropped: give them back at once
            await self.lifecycles[name].release(items[quota:])
        return items[:quota]

    async def close_queue_after(self, fetches: Sequence[asyncio.Task[None]]) -> None:
        """Close the queue once every fetch is done; on a stop, give them the grace period."""
        pending = set(fetches)
        stop = asyncio.ensure_future(self.engine.wait_for_stop())
        while pending and not stop.done():
            _, pending = await asyncio.wait({*pending, stop}, return_when=asyncio.FIRST_COMPLETED)
            pending.discard(stop)
        stop.cancel()
        if pending:
            _, late = await asyncio.wait(
                pending, timeout=self.engine.shutdown_timeout.total_seconds()
            )
            for task in late:
                task.cancel("shutdown timeout")
        total = sum(s.fetched for s in self.stats.values())
        logger.info("Processing {} work items across all handlers", total)
        self.queue.close()

    # 2. Process: at most max_concurrency at once, fair across handlers, each in its own scope.

    async def process_queue(self, tasks: asyncio.TaskGroup) -> None:
        in_flight: set[asyncio.Task[None]] = set()
        stop = asyncio.ensure_future(self.engine.wait_for_stop())
        try:
            while entry := await self._next_entry(stop):
                task = tasks.create_task(self.process(*entry))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            if self.engine.stopping:
                await self.release_unstarted()
            await self._finish(in_flight, stop)
        finally:
            stop.cancel()

    async def _next_entry(self, stop: asyncio.Future[Any]) -> tuple[str, Any] | None:
        """Wait for a free slot and the next item in turn; None when done or stopping."""
        if not self.slots.locked():
            await self.slots.acquire()  # a free slot: no waiting, no extra task
        elif not await _first(self.slots.acquire(), stop):
            return None
        entry = self.queue.get_nowait()  # the fast path: no waiting, no extra futures
        if entry is None:
            entry = await _first(self.queue.get(), stop)
        if entry is not None and self.engine.stopping:  # picked just as the stop came
            self.queue.task_done(entry[0])
            await self._release(entry[0], [entry[1]])
            entry = None
        if entry is None:
            self.slots.release()
        return entry

    async def _finish(self, in_flight: set[asyncio.Task[None]], stop: asyncio.Future[Any]) -> None:
        """Wait for in-flight items; on a stop, give them the graceful timeout, then cancel them."""
        while in_flight and not self.engine.stopping:
            await asyncio.wait([*in_flight, stop], return_when=asyncio.FIRST_COMPLETED)
        if in_flight:
            grace = self.engine.shutdown_timeout.total_seconds()
            _, late = await asyncio.wait(set(in_flight), timeout=grace)
            for task in late:
                task.cancel("shutdown timeout")
            if late:
                logger.warning("Cancelled {} work items still running after {}s", len(late), grace)
                await asyncio.wait(late)

    async def process(self, name: str, item: Any) -> None:
        registration = self.by_name[name]
        timeout = _seconds(registration.item_timeout or self.engine.item_timeout)
        deadline = asyncio.timeout(timeout)
        try:
            async with self.open_scope():
                handler = registration.handler_factory()
                async with deadline:
                    await handler.process(item)
        except TimeoutError as error:
            if deadline.expired():
                message = "Work item {} from handler {} timed out after {}s and was cancelled"
                logger.error(message, item.id, name, timeout)
                await self._failed(name, item, error)
            else:  # the handler's own timeout: an ordinary failure
                await self._failed(name, item, error, log=True)
        except asyncio.CancelledError as error:
            logger.warning("Work item {} from handler {} was cancelled", item.id, name)
            await self._failed(name, item, error)
            raise
        except Exception as error:
            await self._failed(name, item, error, log=True)
        else:
            self.stats[name].succeeded += 1
            if lifecycle := self.lifecycles.get(name):
                lifecycle.completed(item)
        finally:
            self.stats[name].finished = perf_counter()
            self.held[name].pop(id(item), None)
            self.queue.task_done(name)
            self.slots.release()

    async def _failed(
        self, name: str, item: Any, error: BaseException, *, log: bool = False
    ) -> None:
        self.stats[name].failed += 1
        if log:
            logger.opt(exception=error).error(
                "Error processing work item {} from handler {}", item.id, name
            )
        if lifecycle := self.lifecycles.get(name):
            await lifecycle.failed(item, error)

    # Leases: renew those of every held item (queued or running), release those never started.

    async def heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_seconds())
            for name, lifecycle in list(self.lifecycles.items()):
                await lifecycle.extend(list(self.held[name].values()))

    def _heartbeat_seconds(self) -> float:
        """The configured interval, or more often if a handler's lease is short: every lease is
        renewed LEASE_RENEWALS times before it could run out."""
        intervals = [self.engine.heartbeat_interval.total_seconds()]
        for lifecycle in list(self.lifecycles.values()):
            if lifecycle.lease is not None:
                intervals.append(lifecycle.lease.total_seconds() / LEASE_RENEWALS)
        return max(min(intervals), MIN_HEARTBEAT_SECONDS)

    async def release_unstarted(self) -> None:
        for name, items in self.queue.take_remaining().items():
            await self._release(name, items)

    async def _release(self, name: str, items: list[Any]) -> None:
        self.stats[name].released += len(items)
        for item in items:
            self.held[name].pop(id(item), None)
        if items and name in self.lifecycles:
            await self.lifecycles[name].release(items)


def _without_duplicates(name: str, items: list[Any], stats: HandlerStatsRecorder) -> list[Any]:
    seen: set[Any] = set()
    unique = []
    for item in items:
        if item.id in seen:
            stats.duplicates += 1
            logger.warning("Handler '{}' returned work item {} more than once", name, item.id)
            continue
        seen.add(item.id)
        unique.append(item)
    return unique


async def _first(awaitable: Awaitable[T], stop: asyncio.Future[Any]) -> T | None:
    """The awaitable's result, or None if `stop` completes first (the awaitable is cancelled)."""
    if stop.done():
        if asyncio.iscoroutine(awaitable):
            awaitable.close()
        return None
    task = asyncio.ensure_future(awaitable)
    if not task.done():
        await asyncio.wait([task, stop], return_when=asyncio.FIRST_COMPLETED)
    if task.done() and not task.cancelled():
        return task.result()
    task.cancel()
    return None


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()
