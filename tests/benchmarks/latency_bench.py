"""Wake-up latency through the whole engine: a plain SQL INSERT committed by another program ->
the handler's `process` starting, on PostgreSQL and SQLite.

    python -m tests.benchmarks.latency_bench

The worker is what the service runs: `WorkItemProcessingEngine.run_continuously` at the DEFAULT
poll interval (5 minutes, so only a wake-up can explain a prompt start) with the default
MaxConcurrency, beside the hosted `EngineWakeups` (PostgreSQL: the "anything claimable?" probe
every 50 ms plus LISTEN; SQLite: `PRAGMA data_version` every 100 ms). Its handler claims
`product_photos` rows (a ClaimingHandler, so claims, leases and acknowledgements are real) and
records `time.time()` as the first thing `process` does.

A separate process (a plain program: asyncpg or sqlite3, no myapp) inserts one Queued row at a
time when told, and answers with the row's id and the time its commit returned. Each of
INSERTS rows waits for its processing to start; then a random GAP_S pause. Latency is commit
returned -> `process` started (both clocks are this machine's `time.time()`).

Two variants per database: the worker idle, and the worker beside a second handler (over
`staging_batches`) busy with BUSY_ITEMS long items for the whole measurement, which leaves
free slots under MaxConcurrency.

The p99 rows' notes say where the time goes, as medians and for the slowest rows:
wake-up (commit -> the first `engine.trigger` for the handler after the INSERT was sent: the
probe's or data_version poll's interval and its query), refill (-> the handler's claiming fetch
began: its refill task woken, a scope and a handler built), claim (the claim statement and its
commit, in `fetch_work_items`), dispatch (-> `process` started: queue, slot, scope, handler).
The 1-minute load average is in the notes: this 2-core machine is shared, and a tail of a few
hundred ms follows the load, not the code.

Rows are dicts with "benchmark", "value", "unit", "ideal_or_anchor", "ratio", "notes".
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from myapp.clock import utc_now
from myapp.data.claimable_watcher import DEFAULT_PROBE_INTERVAL_S
from myapp.data.claiming import status_claim_spec
from myapp.data.database import close_session, create_engine, create_session_factory
from myapp.data.migrations import upgrade_to_head
from myapp.data.models import ProductPhoto, StagingBatch
from myapp.data.sqlite_changes import DEFAULT_POLL_INTERVAL_S as SQLITE_POLL_INTERVAL_S
from myapp.data.wakeups import EngineWakeups
from myapp.processing import (
    ClaimingHandler,
    ClaimSpec,
    HandlerRegistration,
    WorkItemProcessingEngine,
    scoped,
)
from myapp.processing.engine import DEFAULT_MAX_CONCURRENCY, DEFAULT_POLL_INTERVAL
from myapp.processing.timespan import format_timespan
from tests.benchmarks.table import print_table, row
from tests.fixtures.database import create_postgres_database, drop_postgres_database

INSERTS = 50
GAP_S = (0.05, 0.2)
BUSY_ITEMS = 2
LONG_ITEM_S = 30.0  # longer than a variant's measurement; released as soon as it ends
SETTLE_S = 0.5  # after the first fetches found nothing: the worker is idle
START_TIMEOUT_S = 10.0  # a row not started by then is a hang, not a figure
SLOWEST = 3  # how many of the slowest rows the notes break down
WRITER_TIMEOUT_S = 30.0
TARGET_PG_P99_MS = 100.0
TARGET_SQLITE_P99_MS = 500.0
WORKER_ID = "latency-bench"
BUSY_PROCESSOR = "LatencyBenchLongItems"
PHOTOS = "Photos"
LONG_BATCHES = "LongBatches"

PHOTO_SPEC = status_claim_spec(ProductPhoto, order_by=(ProductPhoto.created_at, ProductPhoto.id))
BATCH_SPEC = status_claim_spec(
    StagingBatch,
    order_by=(StagingBatch.started_at, StagingBatch.id),
    where=(StagingBatch.batch_processor_name == BUSY_PROCESSOR,),
)

# The other program: told "insert" on stdin, it commits one Queued photo and prints
# [id, time sent, time its commit returned]. It knows nothing of myapp.
WRITER = textwrap.dedent(
    """
    import asyncio, json, sqlite3, sys, time, uuid
    kind, target = sys.argv[1], sys.argv[2]
    SQL = ("INSERT INTO product_photos (id, url, status) "
           "VALUES ({}, 'https://images.test/latency.jpg', 'Queued')")

    def report(id, sent):
        print(json.dumps([str(id), sent, time.time()]), flush=True)

    if kind == "sqlite":
        connection = sqlite3.connect(target, isolation_level=None, timeout=30)
        for _ in sys.stdin:
            id, sent = uuid.uuid4(), time.time()
            connection.execute(SQL.format("?"), (id.hex,))
            report(id, sent)
    else:
        import asyncpg

        async def main():
            connection = await asyncpg.connect(target)
            loop = asyncio.get_running_loop()
            while await loop.run_in_executor(None, sys.stdin.readline):
                id, sent = uuid.uuid4(), time.time()
                await connection.execute(SQL.format("$1"), id)
                report(id, sent)
            await connection.close()

        asyncio.run(main())
    """
)

Factory = async_sessionmaker[AsyncSession]


# The worker --------------------------------------------------------------------------------


@dataclass
class Timeline:
    """When each photo's claiming fetch began and returned, and its `process` started
    (`time.time()`, by row id as text); how many fetches the photo handler made."""

    fetch_began: dict[str, float] = field(default_factory=dict)
    fetched: dict[str, float] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)
    woken: list[float] = field(default_factory=list)  # every wake-up of the photo handler
    fetches: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def first_wakeup(self, after: float, before: float) -> float:
        """When the first wake-up between `after` and `before` came (`before` if none did: the
        fetch was already on its way)."""
        index = bisect.bisect_left(self.woken, after)
        return (
            self.woken[index] if index < len(self.woken) and self.woken[index] <= before else before
        )

    def start(self, id: str) -> None:
        self.started[id] = time.time()
        self.changed.set()

    async def wait_started(self, id: str) -> float:
        async with asyncio.timeout(START_TIMEOUT_S):
            while id not in self.started:
                self.changed.clear()
                await self.changed.wait()
        return self.started[id]


class TimedEngine(WorkItemProcessingEngine):
    """The engine, noting when the photo handler is woken (by EngineWakeups)."""

    def __init__(self, timeline: Timeline, *args: Any, **options: Any) -> None:
        super().__init__(*args, **options)
        self._timeline = timeline

    def trigger(self, name: str | None = None) -> None:
        if name in (None, PHOTOS):
            self._timeline.woken.append(time.time())
        super().trigger(name)


class TimedPhotoHandler(ClaimingHandler[ProductPhoto]):
    """Claims photos; `process` records its start and does nothing else."""

    def __init__(self, timeline: Timeline, **options: Any) -> None:
        super().__init__(**options)
        self._timeline = timeline

    def claim_spec(self) -> ClaimSpec[ProductPhoto]:
        return PHOTO_SPEC

    async def fetch_work_items(self, max_items: int) -> list[ProductPhoto]:
        began = time.time()
        items = list(await super().fetch_work_items(max_items))
        returned = time.time()
        for item in items:
            self._timeline.fetch_began[str(item.id)] = began
            self._timeline.fetched[str(item.id)] = returned
        self._timeline.fetches += 1
        self._timeline.changed.set()
        return items

    async def process(self, item: ProductPhoto) -> None:
        self._timeline.start(str(item.id))


@dataclass
class Busy:
    """The long items of the busy neighbour: how many run now; `release` ends them early."""

    running: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_running(self, count: int) -> None:
        async with asyncio.timeout(START_TIMEOUT_S):
            while self.running < count:
                self.changed.clear()
                await self.changed.wait()


class LongBatchHandler(ClaimingHandler[StagingBatch]):
    """The busy neighbour: each batch takes LONG_ITEM_S (or until released)."""

    def __init__(self, busy: Busy, **options: Any) -> None:
        super().__init__(**options)
        self._busy = busy

    def claim_spec(self) -> ClaimSpec[StagingBatch]:
        return BATCH_SPEC

    async def process(self, item: StagingBatch) -> None:
        self._busy.running += 1
        self._busy.changed.set()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._busy.release.wait(), LONG_ITEM_S)
        finally:
            self._busy.running -= 1


def _handler_factory(
    handler: Callable[..., ClaimingHandler[Any]], factory: Factory, state: object
) -> Callable[[], ClaimingHandler[Any]]:
    def make() -> ClaimingHandler[Any]:
        session = scoped(factory, close=close_session)
        return handler(state, session=session, worker_id=WORKER_ID, clock=utc_now)

    return make


async def _queue_long_batches(factory: Factory) -> None:
    async with factory() as session:
        session.add_all(
            StagingBatch(batch_processor_name=BUSY_PROCESSOR, file_hash=uuid.uuid4().hex)
            for _ in range(BUSY_ITEMS)
        )
        await session.commit()


@asynccontextmanager
async def idle_worker(
    url: str, factory: Factory, timeline: Timeline, busy: Busy | None
) -> AsyncIterator[None]:
    """The engine and its wake-ups running at the default poll interval, its photo handler's
    first fetch done (and, with `busy`, its long items running), then SETTLE_S of quiet."""
    registrations = [
        HandlerRegistration(_handler_factory(TimedPhotoHandler, factory, timeline), name=PHOTOS)
    ]
    if busy is not None:
        await _queue_long_batches(factory)
        long_batches = _handler_factory(LongBatchHandler, factory, busy)
        registrations.append(HandlerRegistration(long_batches, name=LONG_BATCHES))
    engine = TimedEngine(timeline, registrations)
    run = asyncio.create_task(engine.run_continuously(DEFAULT_POLL_INTERVAL))
    wakeups = EngineWakeups(url, engine)
    await wakeups.start()
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            # Fetched once, and the wake-up source is watching: it wakes every handler once
            # when it starts (its catch-up).
            while timeline.fetches == 0 or not timeline.woken:
                timeline.changed.clear()
                await timeline.changed.wait()
        if busy is not None:
            await busy.wait_running(BUSY_ITEMS)
        await asyncio.sleep(SETTLE_S)
        yield
    finally:
        await wakeups.stop()
        if busy is not None:
            busy.release.set()
        engine.request_stop()
        await run


# The other program -------------------------------------------------------------------------


@dataclass(frozen=True)
class Insert:
    id: str
    sent: float
    committed: float


class Writer:
    """The separate process that inserts rows when told."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process

    @classmethod
    async def spawn(cls, kind: str, target: str) -> Writer:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WRITER,
            kind,
            target,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        return cls(process)

    async def insert(self) -> Insert:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(b"insert\n")
        await self._process.stdin.drain()
        async with asyncio.timeout(WRITER_TIMEOUT_S):
            line = await self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the writer process ended (exit code {await self._process.wait()})")
        id, sent, committed = json.loads(line)
        return Insert(id, sent, committed)

    async def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        async with asyncio.timeout(WRITER_TIMEOUT_S):
            await self._process.wait()


# The measurement ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One row, in ms from its commit returning: the photo handler woken, its claiming fetch
    began, returned, and `process` started; and the INSERT's own round trip."""

    woken: float
    fetch_began: float
    fetched: float
    started: float
    insert: float


async def measure(writer: Writer, timeline: Timeline, rng: random.Random) -> list[Sample]:
    samples = []
    for _ in range(INSERTS):
        await asyncio.sleep(rng.uniform(*GAP_S))
        insert = await writer.insert()
        started = await timeline.wait_started(insert.id)
        fetch_began = timeline.fetch_began[insert.id]
        woken = timeline.first_wakeup(insert.sent, fetch_began)
        committed = insert.committed
        samples.append(
            Sample(
                woken=(woken - committed) * 1000,
                fetch_began=(fetch_began - committed) * 1000,
                fetched=(timeline.fetched[insert.id] - committed) * 1000,
                started=(started - committed) * 1000,
                insert=(committed - insert.sent) * 1000,
            )
        )
    return samples


async def measure_both(
    url: str, kind: str, target: str, rng: random.Random
) -> tuple[list[Sample], list[Sample]]:
    """(idle, beside a busy neighbour) samples on the migrated database at `url`."""
    database = create_engine(url)
    factory = create_session_factory(database)
    writer = await Writer.spawn(kind, target)
    try:
        timeline = Timeline()
        async with idle_worker(url, factory, timeline, busy=None):
            idle = await measure(writer, timeline, rng)
        timeline, busy = Timeline(), Busy()
        async with idle_worker(url, factory, timeline, busy=busy):
            beside_busy = await measure(writer, timeline, rng)
            if busy.running != BUSY_ITEMS:
                raise RuntimeError(f"{busy.running} long items ran to the end, not {BUSY_ITEMS}")
    finally:
        await writer.close()
        await database.dispose()
    return idle, beside_busy


# The report ------------------------------------------------------------------------------------


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def _latency_rows(
    title: str, samples: list[Sample], target: float, setup: str
) -> list[dict[str, Any]]:
    started = [s.started for s in samples]
    median = statistics.median
    parts = (
        f"median parts: wake-up {median(s.woken for s in samples):.1f} ms, refill "
        f"{median(s.fetch_began - s.woken for s in samples):.1f} ms, claim "
        f"{median(s.fetched - s.fetch_began for s in samples):.1f} ms, dispatch "
        f"{median(s.started - s.fetched for s in samples):.1f} ms"
    )
    slowest = sorted(samples, key=lambda s: s.started)[-SLOWEST:]
    where = "; slowest: " + ", ".join(
        f"{s.started:.0f} = {s.woken:.0f} + {s.fetch_began - s.woken:.0f} + "
        f"{s.fetched - s.fetch_began:.0f} + {s.started - s.fetched:.0f}"
        for s in reversed(slowest)
    )
    worst = p99(started)
    return [
        row(
            f"{title}, p50",
            statistics.median(started),
            "ms",
            notes=f"{len(samples)} inserts, one every {GAP_S[0] * 1000:.0f}-"
            f"{GAP_S[1] * 1000:.0f} ms after the last started; {setup}; INSERT round trip "
            f"median {statistics.median(s.insert for s in samples):.1f} ms (not counted); "
            f"load average {os.getloadavg()[0]:.1f}",
        ),
        row(
            f"{title}, p99",
            worst,
            "ms",
            f"target < {target:.0f} ms",
            worst / target,
            f"max {max(started):.1f} ms; {parts}{where}",
        ),
    ]


def _report(
    database: str,
    samples: tuple[list[Sample], list[Sample]],
    target: float,
    mechanism: str,
    writer: str,
) -> list[dict[str, Any]]:
    idle, beside_busy = samples
    poll = format_timespan(DEFAULT_POLL_INTERVAL)
    title = f"{database} wake-up latency, INSERT by {writer} -> process starts"
    busy = (
        f"{BUSY_ITEMS} items of another handler running for the whole measurement, "
        f"MaxConcurrency {DEFAULT_MAX_CONCURRENCY}"
    )
    return [
        *_latency_rows(f"{title}, idle worker", idle, target, f"poll interval {poll}; {mechanism}"),
        *_latency_rows(f"{title}, beside a busy handler", beside_busy, target, busy),
    ]


async def run_async() -> list[dict[str, Any]]:
    rng = random.Random(11)
    url = await asyncio.to_thread(create_postgres_database)
    try:
        await upgrade_to_head(url)
        dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
        postgres = await measure_both(url, "postgresql", dsn, rng)
    finally:
        await asyncio.to_thread(drop_postgres_database, url)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "latency.db"
        sqlite_url = f"sqlite+aiosqlite:///{path}"
        await upgrade_to_head(sqlite_url)
        sqlite = await measure_both(sqlite_url, "sqlite", str(path), rng)
    return [
        *_report(
            "PostgreSQL",
            postgres,
            TARGET_PG_P99_MS,
            f"probe every {DEFAULT_PROBE_INTERVAL_S * 1000:.0f} ms",
            "another process (asyncpg)",
        ),
        *_report(
            "SQLite",
            sqlite,
            TARGET_SQLITE_P99_MS,
            f"PRAGMA data_version every {SQLITE_POLL_INTERVAL_S * 1000:.0f} ms",
            "another process (sqlite3)",
        ),
    ]


def run() -> list[dict[str, Any]]:
    logger.disable("myapp")  # a "fetched 1 work items" line per insert is noise here
    try:
        return asyncio.run(run_async())
    finally:
        logger.enable("myapp")


def main() -> None:
    print_table(run())


if __name__ == "__main__":
    main()
