"""What the operational data costs: no-op throughput on PostgreSQL with the outcome counters
and the workers heartbeat on, and off, alternating in one run.

    python -m tests.benchmarks.operational_bench

Each round, two worker processes (`python -m myapp run`, per-item no-op handler) drain
THROUGHPUT_ROWS rows AT THE SAME TIME, each from a database of its own: one with
`Metrics:Counters` and `Workers:Heartbeat` on, one with both off (which database gets which
alternates by round). Running side by side, both meet the same load from this shared machine's
neighbours, which drifts far more than 5 % between one drain and the next. The ratio is on / off
within a round, the median over ROUNDS rounds: rows/s (target: cost < 5 %, so >= 0.95) and the
worker's CPU per row. On a shared 2-core machine rows/s swings with the neighbours' load
far more than 5 %; the worker's CPU per row, and the engine alone in this process (CPU time of
no-op items with the counters observing and without, alternating), say what the work costs.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass
from typing import Any

import asyncpg

from myapp.data.database import create_engine
from myapp.data.outcome_counters import OutcomeCounters
from myapp.processing import WorkItemProcessingEngine
from myapp.processing.observers import ProcessingObserver, combine
from tests.benchmarks.claims_bench import PER_ITEM, Drain, Mode, drain
from tests.benchmarks.engine_bench import NoOpHandler, _registrations
from tests.benchmarks.table import print_table, row
from tests.fixtures.database import drop_postgres_database
from tests.multiworker.support import connect, create_test_database

THROUGHPUT_ROWS = 20_000
ROUNDS = 7
IN_PROCESS_ITEMS = 10_000
IN_PROCESS_ROUNDS = 16
TARGET = 0.95  # the issue: counters and heartbeat cost < 5 % of no-op throughput


@dataclass(frozen=True)
class Switched(Mode):
    """The per-item mode with the operational data on or off."""

    on: bool = True

    def settings(self) -> dict[str, str]:
        value = "true" if self.on else "false"
        return {**super().settings(), "Metrics__Counters": value, "Workers__Heartbeat": value}


ON = Switched(PER_ITEM.label, PER_ITEM.handler, PER_ITEM.workers, on=True)
OFF = Switched(PER_ITEM.label, PER_ITEM.handler, PER_ITEM.workers, on=False)


Database = tuple[str, asyncpg.Connection]


async def pairs(a: Database, b: Database) -> list[tuple[Drain, Drain]]:
    warm_up = (drain(*a, OFF, THROUGHPUT_ROWS), drain(*b, OFF, THROUGHPUT_ROWS))
    await asyncio.gather(*warm_up)
    measured = []
    for index in range(ROUNDS):
        on, off = (a, b) if index % 2 == 0 else (b, a)
        results = await asyncio.gather(
            drain(*on, ON, THROUGHPUT_ROWS), drain(*off, OFF, THROUGHPUT_ROWS)
        )
        measured.append((results[0], results[1]))
    return measured


async def counted_outcomes(*dbs: asyncpg.Connection) -> int:
    """Rows counted by the ON runs: ROUNDS x THROUGHPUT_ROWS if every item was counted."""
    query = "SELECT coalesce(sum(succeeded), 0) FROM myapp_handler_outcomes"
    return sum([int(await db.fetchval(query)) for db in dbs])


async def workers_seen(*dbs: asyncpg.Connection) -> int:
    """Stopped workers in the workers tables: one per ON run."""
    query = "SELECT count(*) FROM myapp_workers WHERE stopped_at IS NOT NULL"
    return sum([int(await db.fetchval(query)) for db in dbs])


def rows_of(
    measured: list[tuple[Drain, Drain]], counted: int, workers: int
) -> list[dict[str, Any]]:
    speed = [on.rows_per_second / off.rows_per_second for on, off in measured]
    cpu = [on.cpu_us_per_row / off.cpu_us_per_row for on, off in measured]
    on_rate = statistics.median(on.rows_per_second for on, _ in measured)
    off_rate = statistics.median(off.rows_per_second for _, off in measured)
    common = (
        f"{THROUGHPUT_ROWS:,} rows, per-item no-op handler; {len(measured)} rounds of an ON and "
        "an OFF worker process draining side by side, each from its own database"
    )
    return [
        row(
            "no-op throughput, outcome counters + workers heartbeat ON",
            on_rate,
            "rows/s",
            "the same with both OFF, side by side",
            statistics.median(speed),
            f"{common}; median of the on/off ratios ({min(speed):.3f}-{max(speed):.3f}); "
            f"off: {off_rate:,.0f} rows/s; target >= {TARGET}; the ON runs counted {counted:,} "
            f"outcomes and left {workers} stopped worker rows",
        ),
        row(
            "worker CPU per row, counters + heartbeat ON / OFF",
            statistics.median(on.cpu_us_per_row for on, _ in measured),
            "us/row",
            "the same with both OFF, side by side",
            statistics.median(cpu),
            f"{common}; median of the ratios ({min(cpu):.3f}-{max(cpu):.3f}); off: "
            f"{statistics.median(off.cpu_us_per_row for _, off in measured):.0f} us/row",
        ),
    ]


async def engine_cpu_seconds(url: str, observers: list[ProcessingObserver]) -> float:
    """CPU time of one cycle over IN_PROCESS_ITEMS no-op items (10 handlers)."""
    engine = WorkItemProcessingEngine(
        _registrations(NoOpHandler, 10, IN_PROCESS_ITEMS // 10), observer=combine(observers)
    )
    started = time.process_time()
    await engine.run_cycle()
    return time.process_time() - started


async def in_process_rows(url: str) -> list[dict[str, Any]]:
    """The engine alone, no-op items, with OutcomeCounters observing vs nothing, alternating;
    the counters flushed after each observed cycle (outside the timing: one statement)."""
    database = create_engine(url)
    try:
        ratios, on_us, off_us = [], [], []
        await engine_cpu_seconds(url, [])  # warm-up
        for index in range(IN_PROCESS_ROUNDS):
            counters = OutcomeCounters(database)
            order = [True, False] if index % 2 == 0 else [False, True]
            seconds = {on: await engine_cpu_seconds(url, [counters] if on else []) for on in order}
            await counters.flush()
            ratios.append(seconds[True] / seconds[False])
            on_us.append(seconds[True] * 1e6 / IN_PROCESS_ITEMS)
            off_us.append(seconds[False] * 1e6 / IN_PROCESS_ITEMS)
    finally:
        await database.dispose()
    on, off = statistics.median(on_us), statistics.median(off_us)
    return [
        row(
            "engine alone, CPU per no-op item, outcome counters observing",
            on,
            "us/item",
            "the same with no observer, same run",
            statistics.median(ratios),
            f"{IN_PROCESS_ITEMS:,} items per cycle, {IN_PROCESS_ROUNDS} cycles each, alternating; "
            f"median of the ratios ({min(ratios):.3f}-{max(ratios):.3f}); off: {off:.1f} us/item; "
            f"the observer's own cost: {on - off:.2f} us/item",
        )
    ]


async def run_async() -> list[dict[str, Any]]:
    urls = [await asyncio.to_thread(create_test_database, synchronous_commit=True)]
    try:
        urls.append(await asyncio.to_thread(create_test_database, synchronous_commit=True))
        a, b = [(url, await connect(url)) for url in urls]
        try:
            measured = await pairs(a, b)
            counted = await counted_outcomes(a[1], b[1])
            rows = rows_of(measured, counted, await workers_seen(a[1], b[1]))
            return rows + await in_process_rows(urls[0])
        finally:
            await a[1].close()
            await b[1].close()
    finally:
        for url in urls:
            await asyncio.to_thread(drop_postgres_database, url)


def run() -> list[dict[str, Any]]:
    return asyncio.run(run_async())


if __name__ == "__main__":
    print_table(run())
