"""What the operational data costs: no-op throughput on PostgreSQL with the outcome counters
and the workers heartbeat on, and off, alternating in one run.

    python -m tests.benchmarks.operational_bench

One worker process (`python -m myapp run`, per-item no-op handler) drains THROUGHPUT_ROWS rows,
ROUNDS times with `Metrics:Counters` and `Workers:Heartbeat` on and ROUNDS times off, in turn
(on, off, on, off, ...), so both see the same drift of this shared machine. The ratio is
on / off per adjacent pair, the median over the pairs: rows/s (target: cost < 5 %, so >= 0.95)
and the worker's CPU per row.
"""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import dataclass
from typing import Any

import asyncpg

from tests.benchmarks.claims_bench import PER_ITEM, Drain, Mode, drain
from tests.benchmarks.table import print_table, row
from tests.fixtures.database import drop_postgres_database
from tests.multiworker.support import connect, create_test_database

THROUGHPUT_ROWS = 20_000
ROUNDS = 5
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


async def pairs(url: str, db: asyncpg.Connection) -> list[tuple[Drain, Drain]]:
    await drain(url, db, OFF, THROUGHPUT_ROWS)  # warm-up: caches, the first connection
    measured = []
    for index in range(ROUNDS):
        first, second = (ON, OFF) if index % 2 == 0 else (OFF, ON)  # neither always goes first
        results = {first: await drain(url, db, first, THROUGHPUT_ROWS)}
        results[second] = await drain(url, db, second, THROUGHPUT_ROWS)
        measured.append((results[ON], results[OFF]))
    return measured


async def counted_outcomes(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT coalesce(sum(succeeded), 0) FROM myapp_handler_outcomes"))


def rows_of(measured: list[tuple[Drain, Drain]], counted: int) -> list[dict[str, Any]]:
    speed = [on.rows_per_second / off.rows_per_second for on, off in measured]
    cpu = [on.cpu_us_per_row / off.cpu_us_per_row for on, off in measured]
    on_rate = statistics.median(on.rows_per_second for on, _ in measured)
    off_rate = statistics.median(off.rows_per_second for _, off in measured)
    common = (
        f"{THROUGHPUT_ROWS:,} rows, 1 worker process, per-item no-op handler; "
        f"{len(measured)} on/off pairs alternating in one run"
    )
    return [
        row(
            "no-op throughput, outcome counters + workers heartbeat ON",
            on_rate,
            "rows/s",
            "the same with both OFF, same run",
            statistics.median(speed),
            f"{common}; median of the on/off ratios ({min(speed):.3f}-{max(speed):.3f}); "
            f"off: {off_rate:,.0f} rows/s; target >= {TARGET}; {counted:,} outcomes counted",
        ),
        row(
            "worker CPU per row, counters + heartbeat ON / OFF",
            statistics.median(on.cpu_us_per_row for on, _ in measured),
            "us/row",
            "the same with both OFF, same run",
            statistics.median(cpu),
            f"{common}; median of the ratios ({min(cpu):.3f}-{max(cpu):.3f}); off: "
            f"{statistics.median(off.cpu_us_per_row for _, off in measured):.0f} us/row",
        ),
    ]


async def run_async() -> list[dict[str, Any]]:
    url = await asyncio.to_thread(create_test_database, synchronous_commit=True)
    try:
        db = await connect(url)
        try:
            measured = await pairs(url, db)
            return rows_of(measured, await counted_outcomes(db))
        finally:
            await db.close()
    finally:
        await asyncio.to_thread(drop_postgres_database, url)


def run() -> list[dict[str, Any]]:
    return asyncio.run(run_async())


if __name__ == "__main__":
    print_table(run())
