"""WorkItemProcessingEngine: one cycle is fetch -> fair bounded queue -> bounded processing."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import uuid
from collections.abc import Awaitable, Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from time import monotonic, perf_counter
from types import FrameType
from typing import Any, TypeVar

from loguru import logger

from myapp.processing.claiming_handler import ClaimingHandler
from myapp.processing.fair_queue import FairQueue, QueueClosedError
from myapp.processing.lifecycle import HandlerLifecycle, ScopeFactory
from myapp.processing.log_context import work_on
from myapp.processing.observers import NoObserver, Outcome, ProcessingObserver
from myapp.processing.refill import MAX_FETCHES_IN_FLIGHT, HandlerRefill
from myapp.processing.registration import HandlerRegistration
from myapp.processing.report import CycleReport, HandlerStatsRecorder
from myapp.processing.scope import Scope
from myapp.processing.timespan import format_timespan
from myapp.processing.tracebacks import describe_failure
from myapp.processing.transient import DatabaseOutage, database_away, describe_database_error
from myapp.processing.watchdog import LoopWatchdog
from myapp.processing.work_item import (
    BatchProcessor,
    BatchResult,
    ClaimLifecycle,
    DueTime,
    Leased,
    LostLeasePolicy,
    ProcessorPurpose,
    as_batch_processor,
    implements,
)

DEFAULT_MAX_CONCURRENCY = 4
DEFAULT_SHUTDOWN_TIMEOUT = timedelta(seconds=30)
DEFAULT_HEARTBEAT_INTERVAL = timedelta(seconds=30)
DEFAULT_POLL_INTERVAL = timedelta(minutes=5)
QUEUE_SLOTS_PER_WORKER = 4
# A lease is renewed this many times within its length, so one late heartbeat cannot lose it.
LEASE_RENEWALS = 3
MIN_HEARTBEAT_SECONDS = 0.05
# How many item ids a warning names before "...": enough to find them, short enough to read.
IDS_IN_A_WARNING = 5

T = TypeVar("T")
# What the queue holds for each item: its id, read once when it is fetched (an ORM model's
# `id` is a descriptor call; the engine looks an item up by id several times), and the item.
Entry = tuple[Any, Any]


class WorkItemProcessingEngine:
    """Runs every enabled registration's work: one cycle (`run_cycle`, the seed's contract and
    `run --once`), or continuously until stopped (`run_continuously`, what the service runs).

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
        outage: DatabaseOutage | None = None,
        observer: ProcessingObserver | None = None,
    ) -> None:
        self.registrations: tuple[HandlerRegistration, ...] = tuple(registrations)
        names = [r.name for r in self.registrations]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"Handler names must be unique; registered twice: {duplicates}")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self.max_concurrency = max_concurrency
        # By default the items of every fetch a handler may have in flight fit at once (two
        # claims overlap while a backlog drains, see refill.py): a fetch does not wait on the
        # queue, item by item, for what it already holds, and a batch handler's batch can be its
        # whole quota. The refill's low-water mark, not the queue, bounds what a handler holds.
        quotas = [
            r.max_items_per_cycle * MAX_FETCHES_IN_FLIGHT for r in self.registrations if r.enabled
        ]
        self.queue_size = queue_size or max(max_concurrency * QUEUE_SLOTS_PER_WORKER, *quotas, 1)
        self.fetch_timeout = fetch_timeout
        self.item_timeout = item_timeout
        self.shutdown_timeout = shutdown_timeout
        self.heartbeat_interval = heartbeat_interval
        self.scope_factory = scope_factory
        self._stopping = asyncio.Event()
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._watchdog = LoopWatchdog(
            {_Run.fetch.__code__: _fetching, _Run.process.__code__: _processing}
        )
        self._continuous: _Run | None = None
        # A database that cannot be reached is told once (`outage`) and once when it is back:
        # when every handler whose fetch failed on it has fetched again.
        self.outage = outage or DatabaseOutage()
        self.database_down: set[str] = set()
        self.observer = observer or NoObserver()  # outcomes, fetches (observers.py)

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
        """One cycle: fetch every enabled handler once, process what came, report."""
        self._watchdog.watch()
        return await _Run(self, self.enabled_registrations).run()

    async def run_continuously(
        self, poll_interval: timedelta = DEFAULT_POLL_INTERVAL
    ) -> CycleReport:
        """Until `request_stop()`: no cycle barrier. Each handler refills on its own when it runs
        low and sleeps when its source is dry until woken (`trigger`), its next item falls due,
        or its poll interval (`registration.poll_interval`, else `poll_interval`) passes. The
        report covers the whole run."""
        self._watchdog.watch()
        run = _Run(self, self.enabled_registrations, poll_interval=poll_interval)
        self._continuous = run
        try:
            return await run.run()
        finally:
            self._continuous = None

    def trigger(self, name: str | None = None) -> None:
        """Wake one handler (or all) of a continuous run to fetch now; a no-op when none runs."""
        if name is not None and name not in {r.name for r in self.registrations}:
            raise ValueError(f"no handler named {name!r}; registered: {self._names()}")
        if self._continuous is not None:
            self._continuous.wake(name)

    def waiting_for_work(self) -> bool:
        """Whether a wake-up could start a fetch now: a handler of the continuous run sleeps
        because its source ran dry. While every one is busy fetching or processing, a wake-up
        changes nothing (a probe for claimable rows can wait). True when no continuous run is
        going."""
        run = self._continuous
        return run is None or bool(run.sleeping)

    def trigger_table(self, table: str) -> None:
        """Wake the handlers that claim rows from `table` (all of them if none is known yet)."""
        if self._continuous is not None:
            names = self._continuous.tables.get(table)
            for name in names if names else [None]:
                self._continuous.wake(name)

    def load(self) -> dict[str, tuple[int, int]]:
        """Per handler of the continuous run: items (queued, running); empty when none runs."""
        run = self._continuous
        return {} if run is None else {name: run.queue.load(name) for name in run.by_name}

    def _names(self) -> str:
        return ", ".join(r.name for r in self.registrations) or "none"

    def executor_for(self, registration: HandlerRegistration) -> ThreadPoolExecutor:
        """The threads that run a synchronous handler's `process`: as many as it may run at once,
        its own, so a stuck synchronous handler holds only its own threads."""
        executor = self._executors.get(registration.name)
        if executor is None:
            workers = registration.max_concurrency or self.max_concurrency
            executor = ThreadPoolExecutor(workers, thread_name_prefix=f"myapp-{registration.name}")
            self._executors[registration.name] = executor
        return executor


class _Run:
    """The state of one run: a cycle, or a continuous run until stopped. Reads in the order it
    runs: fetch (once, or keep each handler filled), queue, process, leases, report."""

    def __init__(
        self,
        engine: WorkItemProcessingEngine,
        registrations: list[HandlerRegistration],
        poll_interval: timedelta | None = None,
    ):
        self.engine = engine
        self.registrations = registrations
        self.continuous = poll_interval is not None
        self.poll_interval = poll_interval
        self.refills = {
            r.name: HandlerRefill(r.name, r.max_items_per_cycle, r.poll_interval or poll_interval)
            for r in registrations
            if poll_interval is not None
        }
        self.tables: dict[str, set[str]] = {}  # claimed table -> handler names, for wake-ups
        self.sleeping: set[str] = set()  # handlers asleep in _sleep: their source ran dry
        self.batching: set[str] = set()  # handlers with `process_batch`
        self.leases_changed = asyncio.Event()
        self.stats = {r.name: HandlerStatsRecorder() for r in registrations}
        self.lifecycles: dict[str, HandlerLifecycle] = {}
        # Items fetched and not yet finished or released: their leases are renewed.
        # By item id: a continuous run's next fetch skips what is still queued or running.
        self.held: dict[str, dict[Any, Any]] = {r.name: {} for r in registrations}
        # Items of claiming handlers being processed now, and items whose lease another worker
        # took (by `id(item)`): a lost item is never started, and a running one is cancelled.
        self.running: dict[int, asyncio.Task[Any]] = {}
        self.lost: set[int] = set()
        # When each held item's lease was last known to be this worker's (monotonic seconds): at
        # its claim, then at each renewal that covered it. An item whose lease is not known to
        # be fresh is confirmed with the database before it starts (see _still_held).
        self.confirmed: dict[Any, float] = {}
        self.queue: FairQueue[Any] = FairQueue(
            engine.queue_size, {r.name: r.max_concurrency for r in registrations}
        )
        self.slots = asyncio.Semaphore(engine.max_concurrency)
        self.by_name = {r.name: r for r in registrations}
        self.open_scope = engine.scope_factory

    async def run(self) -> CycleReport:
        started = asyncio.get_running_loop().time()
        fill = self.keep_filled if self.continuous else self.fetch
        async with asyncio.TaskGroup() as tasks:
            fetches = [tasks.create_task(fill(r)) for r in self.registrations]
            tasks.create_task(self.close_queue_after(fetches))
            side_tasks = [tasks.create_task(self.heartbeat())]
            if self.continuous:
                side_tasks.append(tasks.create_task(self.summarize()))
            await self.process_queue(tasks)
            for task in side_tasks:
                task.cancel()
        for lifecycle in self.lifecycles.values():
            await lifecycle.drain()
        seconds = asyncio.get_running_loop().time() - started
        return CycleReport({n: s.freeze() for n, s in self.stats.items()}, seconds)

    # 1. Fetch: every registration in parallel, each in its own scope; once, or kept filled.

    async def keep_filled(self, registration: HandlerRegistration) -> None:
        """Continuous mode: fetch whenever this handler runs low (a second fetch may overlap the
        first while its source has a backlog, see refill.py); sleep while its source is dry."""
        name, refill = registration.name, self.refills[registration.name]
        held = self.held[name]
        stop = asyncio.ensure_future(self.engine.wait_for_stop())
        fetches: set[asyncio.Task[None]] = set()

        def ready() -> bool:
            claimed = name in self.lifecycles
            return refill.pause is not None or refill.may_fetch(len(held), claimed=claimed)

        try:
            while not self.engine.stopping:
                await _first(self.queue.wait_until(name, ready), stop)
                if self.engine.stopping:
                    return
                if refill.pause is not None:
                    await self._pause(registration, refill, stop)
                    continue
                refill.started()
                fetch = asyncio.create_task(self.fetch(registration))
                fetches.add(fetch)
                fetch.add_done_callback(fetches.discard)
        except asyncio.CancelledError:
            for fetch in fetches:
                fetch.cancel("shutdown timeout")
            raise
        finally:
            stop.cancel()
            if fetches:  # stopping: they queue nothing more and release what they hold
                await asyncio.wait(set(fetches))

    async def _pause(
        self, registration: HandlerRegistration, refill: HandlerRefill, stop: asyncio.Future[Any]
    ) -> None:
        """Sleep as the last fetch asked: until woken, the next item falls due or the poll
        interval passes; a spinning handler sleeps its whole poll interval, a failed fetch its
        backoff."""
        pause, refill.pause = refill.pause, None
        assert pause is not None
        if not refill.pause_after_error and not refill.spinning:
            pause = min(pause, await self._next_due(registration))
        await self._sleep(refill, pause, stop, wakeable=not refill.spinning)

    async def _sleep(
        self, refill: HandlerRefill, seconds: float, stop: asyncio.Future[Any], *, wakeable: bool
    ) -> None:
        if refill.wake.is_set() and wakeable:
            return
        waits: list[asyncio.Future[Any]] = [stop]
        if wakeable:
            waits.append(asyncio.ensure_future(refill.wake.wait()))
            self.sleeping.add(refill.name)
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.sleeping.discard(refill.name)
            for waiting in waits[1:]:
                waiting.cancel()

    async def _next_due(self, registration: HandlerRegistration) -> float:
        """Seconds until an item the last fetch could not take falls due (inf: none known)."""
        try:
            async with self.open_scope():
                handler = registration.handler_factory()
                due = await handler.next_due_in() if implements(handler, DueTime) else None
        except Exception:
            logger.opt(exception=True).debug(
                "Handler {} could not tell when its next item falls due", registration.name
            )
            return float("inf")
        return float("inf") if due is None else max(due.total_seconds(), 0.0)

    def wake(self, name: str | None) -> None:
        for refill in self.refills.values() if name is None else [self.refills[name]]:
            refill.wake.set()

    async def fetch(self, registration: HandlerRegistration) -> None:
        """Fetch once and queue what came. In continuous mode the handler's refill learns, as
        soon as the items are back, how many the handler returned (None if the fetch failed),
        how many were kept, and how many of those had just succeeded here (the spin guard)."""
        name, quota = registration.name, registration.max_items_per_cycle
        stats = self.stats[name]
        work_on(name)  # this task's logs are the handler's (log_context.py)
        try:
            async with self.open_scope():
                handler = registration.handler_factory()
                if implements(handler, BatchProcessor):
                    self.batching.add(name)
                if name not in self.lifecycles and implements(handler, ClaimLifecycle):
                    self._learn_table(name, handler)
                    self.lifecycles[name] = HandlerLifecycle(
                        registration,
                        self.open_scope,
                        lease=handler.lease if isinstance(handler, Leased) else None,
                        cancel_on_lost_lease=(
                            handler.cancel_on_lost_lease
                            if isinstance(handler, LostLeasePolicy)
                            else True
                        ),
                        on_lost=functools.partial(self._completion_lost, name),
                    )
                    self.leases_changed.set()  # the heartbeat may have to beat faster now
                claimed_at = monotonic()
                async with asyncio.timeout(_seconds(self.engine.fetch_timeout)):
                    items = list(await handler.fetch_work_items(quota))
            fetched = len(items)
            # Duplicates first: the quota counts distinct items, and an id kept is never released.
            entries = _without_duplicates(name, items, stats)  # needs a hashable `id` on each
            entries = self._not_held(name, entries)
            entries = await self._within_quota(name, quota, entries)
        except Exception as error:
            stats.fetch_error, stats.fetch_exception = f"{type(error).__name__}: {error}", error
            stats.finished = perf_counter()
            self.engine.observer.fetch_failed(name)
            if database_away(error):  # the outage is told once, not per fetch
                self.engine.outage.failed(error)
                self.engine.database_down.add(name)
                logger.debug(
                    "Error fetching work items from handler {}: {}",
                    name,
                    describe_database_error(error),
                )
            else:
                logger.opt(exception=error).error("Error fetching work items from handler {}", name)
            self._came_back(name, None, 0, 0)
            return
        if name in self.engine.database_down:
            self.engine.database_down.discard(name)
            if not self.engine.database_down:
                self.engine.outage.recovered()
        if self.continuous:
            self._came_back(name, fetched, len(entries), self.refills[name].repeats(entries))
        stats.filled_quota = fetched >= quota
        stats.fetched += len(entries)
        stats.finished = perf_counter()
        self.engine.observer.fetched(name, len(entries), monotonic() - claimed_at)
        self.held[name].update(entries)
        if name in self.lifecycles:
            self.confirmed.update((item_id, claimed_at) for item_id, _ in entries)
        if entries or not self.continuous:  # an idle worker does not log every wake-up
            logger.info("Handler '{}' fetched {} work items", name, len(entries))
        for index, entry in enumerate(entries):
            try:
                await self.queue.put(name, entry)
            except QueueClosedError:  # stopping: what was not queued is released
                await self._release(name, entries[index:])
                break

    def _came_back(self, name: str, returned: int | None, kept: int, repeats: int) -> None:
        if self.continuous:
            idle = self.queue.outstanding(name) == 0
            self.refills[name].came_back(returned, kept, repeats, idle=idle)
            self.queue.poke(name)  # keep_filled may start the next fetch now

    def _not_held(self, name: str, entries: list[Entry]) -> list[Entry]:
        """A source that is not claimed (a blob listing, an API) may return again what this run
        still has queued or running: it is not queued twice."""
        held = self.held[name]
        if not held:
            return entries
        fresh = [entry for entry in entries if entry[0] not in held]
        if len(fresh) < len(entries):
            logger.debug(
                "Handler '{}': {} fetched items are already queued or running",
                name,
                len(entries) - len(fresh),
            )
        return fresh

    def _learn_table(self, name: str, handler: Any) -> None:
        if isinstance(handler, ClaimingHandler):
            self.tables.setdefault(handler.claim_table, set()).add(name)

    async def _within_quota(self, name: str, quota: int, entries: list[Entry]) -> list[Entry]:
        if len(entries) <= quota:
            return entries
        logger.warning(
            "Handler '{}' returned {} items but max is {}. Truncating.", name, len(entries), quota
        )
        self.stats[name].truncated += len(entries) - quota
        if name in self.lifecycles:  # claimed but dropped: give them back at once
            await self.lifecycles[name].release(_items(entries[quota:]))
        if self.continuous:  # what was dropped is still to do: a fetch that raced this one
            self.refills[name].wake.set()  # and came back short must not put the handler to sleep
        return entries[:quota]

    async def close_queue_after(self, fetches: Sequence[asyncio.Task[Any]]) -> None:
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
        if not self.continuous:
            total = sum(s.fetched for s in self.stats.values())
            logger.info("Processing {} work items across all handlers", total)
        self.queue.close()

    # 2. Process: at most max_concurrency at once, fair across handlers, each in its own scope.

    async def process_queue(self, tasks: asyncio.TaskGroup) -> None:
        in_flight: set[asyncio.Task[None]] = set()
        stop = asyncio.ensure_future(self.engine.wait_for_stop())
        stop.add_done_callback(self._wake_dispatcher)
        try:
            while next_entry := await self._next_entry():
                name, entry = next_entry
                if name in self.batching:
                    more = self.by_name[name].max_items_per_cycle - 1
                    batch = [entry, *self.queue.take_more(name, more)]
                    task = tasks.create_task(self.process_batch(name, batch))
                else:
                    task = tasks.create_task(self.process(name, entry))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            if self.engine.stopping:
                await self.release_unstarted()
            await self._finish(in_flight, stop)
        finally:
            stop.cancel()

    async def _next_entry(self) -> tuple[str, Entry] | None:
        """Wait for a free slot and the next item in turn; None when done or stopping. This
        runs once per item: each wait is a plain await, and a stop ends it (_wake_dispatcher)."""
        await self.slots.acquire()
        entry = None if self.engine.stopping else await self.queue.get()
        if entry is not None and self.engine.stopping:  # picked just as the stop came
            self.queue.task_done(entry[0])
            await self._release(entry[0], [entry[1]])
            entry = None
        if entry is None:
            self.slots.release()
        return entry

    def _wake_dispatcher(self, stop: asyncio.Future[Any]) -> None:
        """A stop ends the dispatcher's wait, for a free slot (one more, which nothing else
        takes now) or for the next item."""
        if self.engine.stopping:
            self.slots.release()
            self.queue.interrupt()

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

    async def process(self, name: str, entry: Entry) -> None:
        item_id, item = entry
        lifecycle = self.lifecycles.get(name)
        try:
            if lifecycle is None:
                await self._process(name, entry)
            elif id(item) in self.lost or (
                not self._fresh(lifecycle, item_id)
                and not await self._still_held(name, lifecycle, [entry])
            ):
                self.stats[name].lost += 1  # its lease was taken while it waited: never started
            else:
                self.running[id(item)] = asyncio.current_task()  # type: ignore[assignment]
                await self._process(name, entry)
        finally:
            if lifecycle is not None:
                self.running.pop(id(item), None)
                self.lost.discard(id(item))
                self.confirmed.pop(item_id, None)
            self.stats[name].finished = perf_counter()
            self.held[name].pop(item_id, None)
            self.queue.task_done(name)
            self.slots.release()

    async def _process(self, name: str, entry: Entry) -> None:
        item_id, item = entry
        work_on(name, item_id)  # this task's logs are about this item (log_context.py)
        registration = self.by_name[name]
        timeout = _seconds(registration.item_timeout or self.engine.item_timeout)
        # The common case has no timeout: no timeout context to make, enter and leave.
        deadline = None if timeout is None else asyncio.timeout(timeout)
        started = perf_counter()
        try:
            async with self.open_scope():
                handler = registration.handler_factory()
                if _is_synchronous(handler):
                    await self._in_thread(
                        registration, handler, item, deadline or asyncio.timeout(None)
                    )
                elif deadline is None:
                    await handler.process(item)
                else:
                    async with deadline:
                        await handler.process(item)
        except TimeoutError as error:
            if deadline is not None and deadline.expired():
                message = "Work item {} from handler {} timed out after {}s and was cancelled"
                logger.error(message, item.id, name, timeout)
                await self._failed(name, item, error)
            else:  # the handler's own timeout: an ordinary failure
                await self._failed(name, item, error, log=True)
        except asyncio.CancelledError as error:
            if id(item) in self.lost and not self.engine.stopping:  # see _leases_lost
                asyncio.current_task().uncancel()  # type: ignore[union-attr]
                self.stats[name].lost += 1
                return
            logger.warning("Work item {} from handler {} was cancelled", item.id, name)
            await self._failed(name, item, error)
            raise
        except Exception as error:
            await self._failed(name, item, error, log=True)
        else:
            self._succeeded(name, [entry], perf_counter() - started)

    async def process_batch(self, name: str, entries: list[Entry]) -> None:
        """Several items of a `process_batch` handler in one call, one scope and one slot."""
        stats = self.stats[name]
        live = [entry for entry in entries if id(entry[1]) not in self.lost]
        if live and (lifecycle := self.lifecycles.get(name)):
            live = await self._still_held(name, lifecycle, live)
        stats.lost += len(entries) - len(live)
        try:
            if live:
                await self._process_batch(name, live)
        finally:
            held, lost, confirmed = self.held[name], self.lost, self.confirmed
            for item_id, item in entries:
                lost.discard(id(item))
                confirmed.pop(item_id, None)
                held.pop(item_id, None)
            self.queue.task_done(name, len(entries))
            stats.finished = perf_counter()
            self.slots.release()

    async def _process_batch(self, name: str, entries: list[Entry]) -> None:
        items = _items(entries)
        work_on(name)
        registration = self.by_name[name]
        timeout = _seconds(registration.item_timeout or self.engine.item_timeout)
        started = perf_counter()
        try:
            async with self.open_scope():
                handler = as_batch_processor(registration.handler_factory())
                async with asyncio.timeout(timeout):
                    result: BatchResult | None = await handler.process_batch(items)
        except asyncio.CancelledError as error:
            logger.warning(
                "A batch of {} work items from handler {} was cancelled", len(items), name
            )
            for item in items:
                await self._failed(name, item, error)
            raise
        except Exception as error:  # the whole batch failed, its timeout included
            logger.error(
                "Error processing a batch of {} work items from handler {}: {}",
                len(items),
                name,
                describe_failure(error),
            )
            logger.opt(exception=error).debug("The traceback of that batch from handler {}", name)
            for item in items:
                await self._failed(name, item, error)
            return
        failed = result.failed if result is not None else {}
        seconds = (perf_counter() - started) / len(items)
        succeeded = [entry for entry in entries if entry[0] not in failed]
        self._succeeded(name, succeeded, seconds, batch=True)
        for item_id, item in entries:
            if item_id in failed:
                await self._failed(name, item, failed[item_id], log=True)

    def _succeeded(
        self, name: str, entries: list[Entry], seconds: float, *, batch: bool = False
    ) -> None:
        """Items that succeeded, each in `seconds`: one item, or a `batch`'s (acknowledged as
        soon as it is done, see lifecycle.py)."""
        stats = self.stats[name]
        stats.succeeded += len(entries)
        stats.busy_seconds += seconds * len(entries)
        observer, refill = self.engine.observer, self.refills.get(name)
        for item_id, _ in entries:
            observer.item_finished(name, Outcome.SUCCEEDED, seconds)
            if refill is not None:
                refill.succeeded(item_id)
        if lifecycle := self.lifecycles.get(name):
            lifecycle.completed(_items(entries), batch=batch)

    async def _in_thread(
        self,
        registration: HandlerRegistration,
        handler: Any,
        item: Any,
        deadline: asyncio.Timeout,
    ) -> None:
        """A synchronous `process` runs in the handler's own threads, so the loop (heartbeats,
        timeouts, other items) keeps going. A thread cannot be cancelled: on a timeout the item
        keeps its slot and its lease until the thread returns, so it never runs twice at once."""
        call = functools.partial(contextvars.copy_context().run, handler.process, item)
        future = asyncio.get_running_loop().run_in_executor(
            self.engine.executor_for(registration), call
        )
        try:
            async with deadline:
                await asyncio.shield(future)
        except TimeoutError:
            if deadline.expired():
                logger.error(
                    "Work item {} from handler {} timed out; its synchronous process cannot be "
                    "cancelled and keeps its slot and lease until it returns",
                    item.id,
                    registration.name,
                )
                with contextlib.suppress(Exception):
                    await asyncio.shield(future)
            raise

    async def _failed(
        self, name: str, item: Any, error: BaseException, *, log: bool = False
    ) -> None:
        self.stats[name].failed += 1
        if log:  # the handler's frames at Error, the whole traceback at Debug
            logger.error(
                "Error processing work item {} from handler {}: {}",
                item.id,
                name,
                describe_failure(error),
            )
            logger.opt(exception=error).debug(
                "The traceback of work item {} from handler {}", item.id, name
            )
        outcome = Outcome.FAILED
        if lifecycle := self.lifecycles.get(name):
            if await lifecycle.failed(item, error):
                outcome = Outcome.DEAD_LETTERED
            if self.continuous:  # a retry was scheduled: the handler learns when it falls due
                self.refills[name].wake.set()
        self.engine.observer.item_finished(name, outcome, None)

    # Leases: renew those of every held item (queued or running), release those never started.

    async def heartbeat(self) -> None:
        while True:
            self.leases_changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._heartbeat_seconds()):
                    await self.leases_changed.wait()
                    continue  # a handler with a shorter lease appeared: sleep its interval
            for name, lifecycle in list(self.lifecycles.items()):
                await self._renew(name, lifecycle, list(self.held[name].items()))

    async def _renew(
        self, name: str, lifecycle: HandlerLifecycle, entries: list[Entry]
    ) -> set[Any]:
        """Extend these items' leases; the ids still this worker's (none if it cannot tell)."""
        asked_at = monotonic()
        lost = await lifecycle.extend(_items(entries))
        if lost is None:  # the renewal failed: nothing is known to be held now
            return set()
        if lost:
            self._leases_lost(name, lifecycle, lost)
        held = {item_id for item_id, _ in entries if item_id not in lost}
        self.confirmed.update((id, asked_at) for id in held if id in self.confirmed)
        return held

    def _fresh(self, lifecycle: HandlerLifecycle, item_id: Any) -> bool:
        """Whether this item's lease was claimed or renewed less than half a lease ago (the
        common case, decided without a call: see _still_held)."""
        if lifecycle.lease is None:
            return True
        confirmed = self.confirmed.get(item_id)
        fresh_since = monotonic() - lifecycle.lease.total_seconds() / 2
        return confirmed is None or confirmed >= fresh_since

    async def _still_held(
        self, name: str, lifecycle: HandlerLifecycle, entries: list[Entry]
    ) -> list[Entry]:
        """The items whose lease is still this worker's, about to start. A lease renewed (or
        claimed) less than half a lease ago is; an older one (a renewal failed, the worker
        stalled) is asked of the database first: starting an item whose lease ran out and was
        taken by another worker would run it twice at once."""
        if lifecycle.lease is None:
            return entries
        fresh_since = monotonic() - lifecycle.lease.total_seconds() / 2
        confirmed = self.confirmed
        stale = [entry for entry in entries if confirmed.get(entry[0], fresh_since) < fresh_since]
        if not stale:
            return entries
        held = await self._renew(name, lifecycle, stale)
        for item_id, item in stale:
            if item_id not in held and id(item) not in self.lost:  # lost ones are told already
                logger.warning(
                    "Work item {} from handler {}: its lease could not be confirmed; not started",
                    item_id,
                    name,
                )
        stale_ids = {item_id for item_id, _ in stale}
        return [entry for entry in entries if entry[0] in held or entry[0] not in stale_ids]

    def _leases_lost(
        self, name: str, lifecycle: HandlerLifecycle, lost_ids: Collection[uuid.UUID]
    ) -> None:
        """Another worker holds these items now: stop renewing them, never start the queued
        ones, and cancel the running ones (unless the handler opted out)."""
        held = self.held[name]
        for item_id, item in [entry for entry in held.items() if entry[0] in lost_ids]:
            del held[item_id]
            self.lost.add(id(item))
            task = self.running.get(id(item))
            if task is None:
                action = "it will not be started"
            elif lifecycle.cancel_on_lost_lease:
                action = "cancelling it"
                task.cancel("lease lost")
            else:
                action = "it keeps running (cancel_on_lost_lease is off)"
            logger.warning(
                "Work item {} from handler {} lost its lease to another worker; {}",
                item_id,
                name,
                action,
            )

    def _completion_lost(self, name: str, items: Sequence[Any]) -> None:
        """Items that finished after their lease was taken over: their completion was not
        recorded (another worker runs them again), so they are not successes."""
        stats = self.stats[name]
        stats.succeeded -= len(items)
        stats.lost += len(items)
        logger.warning(
            "Handler {}: {} work items finished after their lease was taken over; their "
            "completion was not recorded: {}",
            name,
            len(items),
            _some_ids(items),
        )

    # Continuous mode: one summary line per handler that did work, every poll interval.

    async def summarize(self) -> None:
        assert self.poll_interval is not None
        every = self.poll_interval
        last = {name: (0, 0, 0.0) for name in self.stats}
        while True:
            await asyncio.sleep(every.total_seconds())
            for name, stats in self.stats.items():
                now = (stats.succeeded, stats.failed, stats.busy_seconds)
                succeeded, failed, busy = (a - b for a, b in zip(now, last[name], strict=True))
                last[name] = now
                if succeeded or failed:
                    logger.info(
                        "Handler '{}' in the last {}: {} succeeded, {} failed, {:.3f}s per item",
                        name,
                        format_timespan(every),
                        succeeded,
                        failed,
                        busy / succeeded if succeeded else 0.0,
                    )

    def _heartbeat_seconds(self) -> float:
        """The configured interval, or more often if a handler's lease is short: every lease is
        renewed LEASE_RENEWALS times before it could run out."""
        intervals = [self.engine.heartbeat_interval.total_seconds()]
        for lifecycle in list(self.lifecycles.values()):
            if lifecycle.lease is not None:
                intervals.append(lifecycle.lease.total_seconds() / LEASE_RENEWALS)
        return max(min(intervals), MIN_HEARTBEAT_SECONDS)

    async def release_unstarted(self) -> None:
        for name, entries in self.queue.take_remaining().items():
            await self._release(name, entries)

    async def _release(self, name: str, entries: list[Entry]) -> None:
        self.stats[name].released += len(entries)
        held = self.held[name]
        for item_id, _ in entries:
            held.pop(item_id, None)
        if entries and name in self.lifecycles:
            await self.lifecycles[name].release(_items(entries))


def _without_duplicates(name: str, items: list[Any], stats: HandlerStatsRecorder) -> list[Entry]:
    """Each item with its id, the first of each id, in order; one warning per fetch that
    returned duplicates."""
    unique: dict[Any, Any] = {}
    repeated: list[Any] = []
    for item in items:
        item_id = item.id
        if item_id in unique:
            repeated.append(item)
        else:
            unique[item_id] = item
    if repeated:
        stats.duplicates += len(repeated)
        logger.warning(
            "Handler '{}' returned {} duplicate work items (each is processed once): {}",
            name,
            len(repeated),
            _some_ids(repeated),
        )
    return list(unique.items())


def _items(entries: Iterable[Entry]) -> list[Any]:
    return [item for _, item in entries]


def _some_ids(items: Sequence[Any]) -> str:
    shown = ", ".join(str(item.id) for item in items[:IDS_IN_A_WARNING])
    return shown + (", ..." if len(items) > IDS_IN_A_WARNING else "")


_synchronous: dict[type, bool] = {}


def _is_synchronous(handler: Any) -> bool:
    """`def process`, not `async def process`: run in a thread (looked up once per class)."""
    cls = type(handler)
    known = _synchronous.get(cls)
    if known is None:
        known = _synchronous[cls] = not inspect.iscoroutinefunction(handler.process)
    return known


def _fetching(frame: FrameType) -> tuple[str, object | None]:
    registration = frame.f_locals.get("registration")
    return getattr(registration, "name", "?"), None


def _processing(frame: FrameType) -> tuple[str, object | None]:
    entry = frame.f_locals.get("entry")
    return str(frame.f_locals.get("name", "?")), entry[0] if entry else None


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
