"""Claim benchmark on PostgreSQL: worker processes vs a raw asyncpg loop in the same run, a
worker's memory over a big backlog, and claim latency with a million finished rows.

    python -m tests.benchmarks.claims_bench
    python -m tests.benchmarks.claims_bench --modes per-item,batch --rounds 3 --baseline DIR

With `--baseline DIR` (a checkout of other code, e.g. `git archive main | tar -x -C DIR`;
repeatable) it runs only the throughput drains, each mode with each DIR's workers and then this
tree's, in turn in the same run, and prints each one's ratios to the raw loop and to the first.

Every framework figure is a ratio to the raw loop measured just before and just after it (this
machine's speed drifts with whatever else runs on it), the median over ROUNDS rounds.
Rows are dicts with "benchmark", "value", "unit", "ideal_or_anchor", "ratio", "notes".
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from myapp.data.claimable_watcher import APPLICATION_NAME as WAKEUP_APPLICATION_NAME
from myapp.data.database import create_engine, create_session_factory
from myapp.processing.claims import Claims
from tests.benchmarks.table import row
from tests.fixtures.database import drop_postgres_database
from tests.multiworker.handler import BATCH_HANDLER_NAME, HANDLER_NAME
from tests.multiworker.models import ROWS_TABLE
from tests.multiworker.support import (
    REPO_ROOT,
    WorkerPool,
    connect,
    create_test_database,
    reset_tables,
    seed_rows,
    wait_until,
)

ISSUE_RAW_ANCHOR = 43_000  # rows/s the issue measured for this loop on this kind of machine
THROUGHPUT_ROWS = 20_000
BACKLOG_ROWS = 200_000  # the memory run: peak RSS against a THROUGHPUT_ROWS run's
ROUNDS = 3
BATCH = 100
BIG_QUOTA = 500  # a bigger claim carries more rows per round trip
MAX_CONCURRENCY = 8
RAW_CONNECTIONS = 4
LATENCY_FINISHED_ROWS = 1_000_000
LATENCY_QUEUED_ROWS = 10_000
LATENCY_CLAIMS = 200
DRAIN_TIMEOUT_S = 300.0
SETTLE_S = 0.5  # after every worker is up, for their first (empty) fetches
SEED_DUE_S = 1.0  # seeded rows fall due this long after seeding starts, plus ...
SEEDED_ROWS_PER_S = 50_000  # ... their count at this (conservative) insert + vacuum rate
PER_ITEM_TARGET = 0.25  # of the raw loop
BATCH_TARGET = 0.50
MEMORY_TARGET = 1.10  # 200k-row backlog's peak RSS / 20k-row backlog's
RAW_ANCHOR = "raw asyncpg loop, same run (before and after)"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

RAW_CLAIM = f"""
UPDATE {ROWS_TABLE} SET status = 'Started', locked_by = $1,
       locked_until = now() + interval '5 minutes', attempts = attempts + 1
WHERE id = ANY(ARRAY(
    SELECT id FROM {ROWS_TABLE}
    WHERE status IN ('Queued', 'Started')
      AND (status = 'Queued'
           OR (status = 'Started' AND (locked_until IS NULL OR locked_until < now())))
      AND (next_attempt_at IS NULL OR next_attempt_at <= now()) AND deleted_at IS NULL
    ORDER BY created_at, id LIMIT $2 FOR UPDATE SKIP LOCKED))
RETURNING id
"""
RAW_COMPLETE = f"""
UPDATE {ROWS_TABLE} SET status = 'Completed', locked_by = NULL, locked_until = NULL,
       next_attempt_at = NULL, completions = completions + 1
WHERE id = ANY($1::uuid[]) AND locked_by = $2 AND status = 'Started'
"""


@dataclass(frozen=True)
class Mode:
    """How the workers run: which registration, how many processes."""

    label: str
    handler: str
    workers: int
    quota: int = BATCH

    def settings(self) -> dict[str, str]:
        other = BATCH_HANDLER_NAME if self.handler == HANDLER_NAME else HANDLER_NAME
        section = f"BackgroundProcessing__{self.handler}"
        return {
            f"{section}__Enabled": "true",
            f"{section}__Journal": "false",
            f"{section}__MaxItemsPerCycle": str(self.quota),
            f"BackgroundProcessing__{other}__Enabled": "false",
            "BackgroundProcessing__MaxConcurrency": str(MAX_CONCURRENCY),
        }


PER_ITEM = Mode("1 worker process, per-item no-op process", HANDLER_NAME, 1)
BATCHED = Mode("1 worker process, batch protocol, no-op process_batch", BATCH_HANDLER_NAME, 1)
BIG_BATCHES = Mode(
    f"1 worker process, batch protocol, quota {BIG_QUOTA}", BATCH_HANDLER_NAME, 1, BIG_QUOTA
)
FOUR = Mode("4 worker processes, per-item no-op process", HANDLER_NAME, 4)


@dataclass(frozen=True)
class Drain:
    """One timed drain by worker processes."""

    rows_per_second: float
    cpu_us_per_row: float  # the workers' CPU from first claim to drained
    peak_rss_mb: float  # the largest worker's


async def verify_exactly_once(db: asyncpg.Connection, count: int) -> None:
    bad = await db.fetchval(
        f"SELECT count(*) FROM {ROWS_TABLE} WHERE status <> 'Completed' OR attempts <> 1 "
        "OR completions <> 1 OR locked_by IS NOT NULL"
    )
    total = await db.fetchval(f"SELECT count(*) FROM {ROWS_TABLE}")
    if bad or total != count:
        raise AssertionError(f"exactly-once violated: {bad} bad rows of {total}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set so far (VmHWM), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for process {pid}")


async def seed(db: asyncpg.Connection, count: int, *, due_in: float | None = None) -> None:
    """A fresh table of `count` Queued rows, vacuumed and analyzed; with `due_in`, claimable
    only that many seconds from now, and an error if seeding took longer than that."""
    await reset_tables(db)
    await seed_rows(db, count, due_in=due_in)
    await db.execute(f"VACUUM ANALYZE {ROWS_TABLE}")
    if due_in is not None:
        early = f"SELECT EXISTS (SELECT FROM {ROWS_TABLE} WHERE next_attempt_at <= now())"
        if await db.fetchval(early):
            raise AssertionError(f"seeding {count:,} rows took more than {due_in} s")


async def workers_up(db: asyncpg.Connection, count: int) -> bool:
    """`count` workers run on this database: each has its wake-up connection open, which a
    worker opens once its engine runs (whatever else it has turned off, its heartbeat too)."""
    query = (
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name = $1"
    )
    return bool(await db.fetchval(query, WAKEUP_APPLICATION_NAME) >= count)


async def drain(
    url: str, db: asyncpg.Connection, mode: Mode, count: int, root: Path = REPO_ROOT
) -> Drain:
    """Worker subprocesses (`python -m myapp ... run`, from the checkout at `root`) drain `count`
    rows; timed from the first claimed row until the table is drained. The workers start on an
    empty table, and the rows fall due only once every worker is up and asleep: start-up is not
    measured, and several workers are not measured while the others still start."""
    await reset_tables(db)
    with tempfile.TemporaryDirectory() as logs:
        pool = WorkerPool(url, Path(logs), mode.settings(), root=root)
        try:
            pids = [worker.pid for worker in pool.start(mode.workers)]
            up = functools.partial(workers_up, db, mode.workers)
            await wait_until(up, within=60, what="every worker up", workers=pool, interval=0.05)
            await asyncio.sleep(SETTLE_S)  # their first fetches found nothing: all asleep
            await seed(db, count, due_in=SEED_DUE_S + count / SEEDED_ROWS_PER_S)

            async def claimed() -> bool:
                query = f"SELECT EXISTS (SELECT FROM {ROWS_TABLE} WHERE attempts > 0)"
                return bool(await db.fetchval(query))

            async def drained() -> bool:
                query = f"SELECT EXISTS (SELECT FROM {ROWS_TABLE} WHERE status <> 'Completed')"
                return not await db.fetchval(query)

            await wait_until(claimed, within=60, what="a first claim", workers=pool, interval=0.01)
            cpu_before = sum(cpu_seconds(pid) for pid in pids)
            seconds = await wait_until(
                drained, within=DRAIN_TIMEOUT_S, what="drain", workers=pool, interval=0.02
            )
            cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_before
            rss = max(peak_rss_mb(pid) for pid in pids)
            codes = pool.terminate()
            if any(codes.values()):
                raise AssertionError(f"workers exited with {codes}\n{pool.logs()}")
        finally:
            pool.close()
    await verify_exactly_once(db, count)
    return Drain(count / seconds, cpu * 1e6 / count, rss)


async def raw_rows_per_second(
    url: str, db: asyncpg.Connection, *, synchronous_commit: bool = True
) -> float:
    """The same claim/complete SQL with no framework: 4 connections, batches of 100; with
    `synchronous_commit=False` its commits do not wait for the WAL flush, as the framework's
    claims and completions do not (a reference, not the anchor)."""
    await seed(db, THROUGHPUT_ROWS)
    connections = [await connect(url) for _ in range(RAW_CONNECTIONS)]
    if not synchronous_commit:
        for connection in connections:
            await connection.execute("SET synchronous_commit = off")

    async def loop(connection: asyncpg.Connection) -> None:
        worker_id = f"raw-{uuid.uuid4().hex[:6]}"
        while ids := [r["id"] for r in await connection.fetch(RAW_CLAIM, worker_id, BATCH)]:
            await connection.execute(RAW_COMPLETE, ids, worker_id)

    try:
        started = time.perf_counter()
        await asyncio.gather(*(loop(c) for c in connections))
        seconds = time.perf_counter() - started
    finally:
        for connection in connections:
            await connection.close()
    await verify_exactly_once(db, THROUGHPUT_ROWS)
    return THROUGHPUT_ROWS / seconds


@dataclass
class Rounds:
    """Each mode's drains, each with the raw loop measured just before and just after it."""

    raws: list[float]
    drains: dict[Mode, list[tuple[Drain, float]]]  # (drain, raw rows/s around it)
    unflushed_raws: list[float] = field(default_factory=list)  # synchronous_commit off

    def ratios(self, mode: Mode) -> list[float]:
        return [drain.rows_per_second / raw for drain, raw in self.drains[mode]]

    def median(self, mode: Mode, value: Callable[[Drain], float]) -> float:
        return statistics.median(value(drain) for drain, _ in self.drains[mode])


async def throughput_rounds(url: str, db: asyncpg.Connection) -> Rounds:
    modes = (PER_ITEM, BATCHED, BIG_BATCHES, FOUR)
    rounds = Rounds([await raw_rows_per_second(url, db)], {mode: [] for mode in modes})
    for _ in range(ROUNDS):
        rounds.unflushed_raws.append(await raw_rows_per_second(url, db, synchronous_commit=False))
        for mode in modes:
            drained = await drain(url, db, mode, THROUGHPUT_ROWS)
            rounds.raws.append(await raw_rows_per_second(url, db))
            rounds.drains[mode].append((drained, statistics.mean(rounds.raws[-2:])))
    return rounds


def throughput_rows(rounds: Rounds) -> list[dict[str, Any]]:
    raw = statistics.median(rounds.raws)
    rows = [
        row(
            f"raw asyncpg claim/complete loop ({RAW_CONNECTIONS} connections, batches of "
            f"{BATCH}), {THROUGHPUT_ROWS:,} rows",
            raw,
            "rows/s",
            "issue: ~43,000 rows/s on this kind of machine",
            raw / ISSUE_RAW_ANCHOR,
            f"median of {len(rounds.raws)} runs ({min(rounds.raws):,.0f}-{max(rounds.raws):,.0f}),"
            " one before and one after every framework run; exactly-once verified; "
            "ratio = this run's raw loop / the issue's figure",
        )
    ]
    unflushed = statistics.median(rounds.unflushed_raws)
    rows.append(
        row(
            "raw asyncpg loop as above, synchronous_commit off (reference, not the anchor)",
            unflushed,
            "rows/s",
            "the raw loop, same run",
            unflushed / raw,
            f"median of {len(rounds.unflushed_raws)} runs, one per round; the framework's "
            "claims and completions commit without waiting for the WAL flush, the anchor's do "
            "wait (the same SQL, the server's setting)",
        )
    )
    targets = {PER_ITEM: PER_ITEM_TARGET, BATCHED: BATCH_TARGET, BIG_BATCHES: BATCH_TARGET}
    for mode in rounds.drains:
        target = targets.get(mode)
        ratios = rounds.ratios(mode)
        rows.append(
            row(
                f"framework, {mode.label}, {THROUGHPUT_ROWS:,} rows",
                rounds.median(mode, lambda d: d.rows_per_second),
                "rows/s",
                RAW_ANCHOR,
                statistics.median(ratios),
                f"median of {len(ratios)} rounds (ratios {min(ratios):.3f}-{max(ratios):.3f}); "
                f"python -m myapp run, quota {mode.quota}, MaxConcurrency {MAX_CONCURRENCY}; timed "
                "first claim -> drained; exactly-once verified; worker CPU "
                f"{rounds.median(mode, lambda d: d.cpu_us_per_row):.0f} us/row; "
                f"{rounds.median(mode, lambda d: d.rows_per_second) / unflushed:.3f} of the "
                "raw loop with synchronous_commit off"
                + (f"; target >= {target} of raw" if target else ""),
            )
        )
    four_vs_one = [
        four.rows_per_second / one.rows_per_second
        for (four, _), (one, _) in zip(rounds.drains[FOUR], rounds.drains[PER_ITEM], strict=True)
    ]
    rows.append(
        row(
            "framework, 4 worker processes / 1 worker process (per-item)",
            statistics.median(four_vs_one),
            "x",
            "1 worker process, same round",
            statistics.median(four_vs_one),
            f"median of {len(four_vs_one)} rounds ({min(four_vs_one):.2f}-"
            f"{max(four_vs_one):.2f}); target >= 1.0 (no worse) on this 2-core machine",
        )
    )
    return rows


async def memory_rows(url: str, db: asyncpg.Connection, rounds: Rounds) -> list[dict[str, Any]]:
    """Peak RSS of one worker draining a 200,000-row backlog against the 20,000-row drains."""
    small = rounds.median(PER_ITEM, lambda d: d.peak_rss_mb)
    big = await drain(url, db, PER_ITEM, BACKLOG_ROWS)
    return [
        row(
            f"peak RSS, 1 worker process draining {THROUGHPUT_ROWS:,} rows",
            small,
            "MB",
            notes=f"VmHWM, median of {ROUNDS} drains (per-item, quota {BATCH})",
        ),
        row(
            f"peak RSS, 1 worker process draining {BACKLOG_ROWS:,} rows",
            big.peak_rss_mb,
            "MB",
            f"the {THROUGHPUT_ROWS:,}-row drain",
            big.peak_rss_mb / small,
            f"VmHWM; {big.rows_per_second:,.0f} rows/s; target <= {MEMORY_TARGET} "
            "(memory does not grow with the backlog)",
        ),
    ]


async def claim_latency(url: str, db: asyncpg.Connection) -> tuple[list[float], str]:
    """claim(100) through `Claims` with 1M Completed + 10k Queued rows; each claimed batch is then
    completed and replaced by 100 new Queued rows (untimed), so the queue stays at 10k."""
    from tests.multiworker.models import work_row_spec

    await reset_tables(db)
    await seed_rows(db, LATENCY_FINISHED_ROWS, status="Completed")
    await seed_rows(db, LATENCY_QUEUED_ROWS)
    await db.execute(f"VACUUM ANALYZE {ROWS_TABLE}")
    engine = create_engine(url)
    captured: list[tuple[str, Any]] = []

    from sqlalchemy import event

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _capture(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE") and "SKIP LOCKED" in statement:
            captured.append((statement, parameters))

    sessions = create_session_factory(engine)
    spec = work_row_spec(300, 10)
    timings = []
    try:
        for _ in range(LATENCY_CLAIMS):
            async with sessions() as session:
                claims = Claims(session, spec, worker_id="bench")  # the database's clock
                started = time.perf_counter()
                claimed = await claims.claim(BATCH)
                timings.append(time.perf_counter() - started)
                await claims.complete([item.id for item in claimed])
            await seed_rows(db, BATCH)
        statement, parameters = captured[-1]
        async with engine.connect() as connection:
            plan = await connection.exec_driver_sql("EXPLAIN " + statement, parameters)
            explain = "\n".join(line for (line,) in plan.all())
    finally:
        await engine.dispose()
    return timings, explain


def latency_rows(timings: list[float], explain: str) -> list[dict[str, Any]]:
    ms = sorted(t * 1000 for t in timings)
    uses_index = "ix_multiworker_rows_claimable" in explain
    plan_nodes = [line.strip().lstrip("-> ").split("  (")[0] for line in explain.splitlines()]
    plan_summary = " ; ".join(node for node in plan_nodes if "Scan" in node or "Sort" in node)
    context = f"{LATENCY_FINISHED_ROWS:,} Completed + {LATENCY_QUEUED_ROWS:,} Queued rows"
    return [
        row(
            f"claim({BATCH}) latency, median, {context}",
            statistics.median(ms),
            "ms",
            notes=f"{len(ms)} claims via Claims.claim",
        ),
        row(
            f"claim({BATCH}) latency, p95, {context}",
            ms[int(len(ms) * 0.95) - 1],
            "ms",
            notes="partial index used" if uses_index else "partial index NOT used",
        ),
        row(
            "claim plan (EXPLAIN)",
            1.0 if uses_index else 0.0,
            "uses partial index",
            notes=plan_summary,
        ),
    ]


async def run_async() -> list[dict[str, Any]]:
    url = await asyncio.to_thread(create_test_database, synchronous_commit=True)
    try:
        db = await connect(url)
        try:
            rounds = await throughput_rounds(url, db)
            rows = throughput_rows(rounds)
            rows += await memory_rows(url, db, rounds)
            rows += latency_rows(*await claim_latency(url, db))
        finally:
            await db.close()
    finally:
        await asyncio.to_thread(drop_postgres_database, url)
    return rows


def run() -> list[dict[str, Any]]:
    return asyncio.run(run_async())


MODES = {"per-item": PER_ITEM, "batch": BATCHED, "batch-500": BIG_BATCHES, "four": FOUR}


async def compare_async(modes: list[Mode], rounds: int, checkouts: list[Path]) -> None:
    """Each mode with each checkout's workers in turn, the raw loop between every run."""
    url = await asyncio.to_thread(create_test_database, synchronous_commit=True)
    runs: dict[tuple[Mode, Path], list[tuple[Drain, float]]] = {}
    try:
        db = await connect(url)
        try:
            raws = [await raw_rows_per_second(url, db)]
            for _ in range(rounds):
                for mode in modes:
                    for root in checkouts:
                        drained = await drain(url, db, mode, THROUGHPUT_ROWS, root)
                        raws.append(await raw_rows_per_second(url, db))
                        raw = statistics.mean(raws[-2:])
                        runs.setdefault((mode, root), []).append((drained, raw))
                        print(
                            f"{mode.label} [{root.name}]: {drained.rows_per_second:,.0f} rows/s, "
                            f"{drained.rows_per_second / raw:.3f} of raw, "
                            f"{drained.cpu_us_per_row:.0f} us CPU/row",
                            flush=True,
                        )
        finally:
            await db.close()
    finally:
        await asyncio.to_thread(drop_postgres_database, url)
    print(f"raw loop: median {statistics.median(raws):,.0f} rows/s over {len(raws)} runs")
    for mode in modes:
        first = [d.rows_per_second / raw for d, raw in runs[mode, checkouts[0]]]
        for root in checkouts:
            ratios = [d.rows_per_second / raw for d, raw in runs[mode, root]]
            gains = [a / b for a, b in zip(ratios, first, strict=True)]
            cpu = statistics.median(d.cpu_us_per_row for d, _ in runs[mode, root])
            print(
                f"{mode.label} [{root.name}]: of raw {statistics.median(ratios):.3f} "
                f"{[round(r, 3) for r in ratios]}; / {checkouts[0].name} "
                f"{statistics.median(gains):.2f}; CPU {cpu:.0f} us/row"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default=",".join(MODES), help=f"of {', '.join(MODES)}")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument(
        "--baseline", type=Path, action="append", help="a checkout to compare against (repeatable)"
    )
    args = parser.parse_args()
    if not args.baseline:
        for result in run():
            print(result)
        return
    modes = [MODES[name] for name in args.modes.split(",")]
    checkouts = [path.resolve() for path in args.baseline] + [REPO_ROOT]
    asyncio.run(compare_async(modes, args.rounds, checkouts))


if __name__ == "__main__":
    main()
