"""Wake-up benchmark: what noticing new work costs writers and the database, and how fast a
commit reaches a worker, on PostgreSQL and SQLite.

    python -m tests.benchmarks.wakeup_bench

- Write cost: 8 asyncpg connections insert single rows (one transaction each) into
  `product_photos` for RUN_S at a time, with nothing watching ("off") and with 4 workers'
  ClaimableWatchers (in another process) probing every 50 ms ("probe", the mechanism in use),
  in alternating runs
  (this machine's load drifts; runs seconds apart compare fairly). Two NOTIFY triggers are
  measured against "off" the same way, as references: a coalesced one (at most one NOTIFY per
  25 ms, checked at commit) and a per-row one.
- Probe cost on the database: the server CPU one worker's probe uses, with an empty queue, a
  backlog, and many leased rows (which the probe's index scan has to step over).
- Latency: a stand-in for the engine, woken by the watcher, claims every visible due row at
  once; latency is INSERT sent (or `next_attempt_at` reached) -> row claimed. PostgreSQL:
  isolated inserts from a plain asyncpg connection, a burst, and retries coming due. SQLite:
  inserts by another process, and the watcher's CPU while nothing happens.

Rows are dicts with "benchmark", "value", "unit", "ideal_or_anchor", "ratio", "notes".
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from loguru import logger

from myapp.data.claimable_watcher import DEFAULT_PROBE_INTERVAL_S, ClaimableWatcher
from myapp.data.claiming import status_claim_spec
from myapp.data.migrations import upgrade_to_head
from myapp.data.models import ProductPhoto, StagingBatch
from myapp.data.sqlite_changes import DEFAULT_POLL_INTERVAL_S, SqliteChangeWatcher
from myapp.processing import ClaimSpec
from tests.benchmarks.table import print_table, row
from tests.fixtures.database import create_postgres_database, drop_postgres_database

CONNECTIONS = 8
WORKERS = 4
RUN_S = 1.5
ROUNDS = 10
REFERENCE_ROUNDS = 3
LATENCY_INSERTS = 50
ISOLATED_GAP_S = (0.05, 0.15)
BURST_GAP_S = 0.005
RETRY_DELAY_S = 0.3
SQLITE_GAP_S = (0.1, 0.2)
PROBE_COST_S = 4.0
LEASED_ROWS = (1_000, 10_000)
BACKLOG_ROWS = 10_000
IDLE_S = 15.0
CLAIM_TIMEOUT_S = 10.0
TARGET_WRITE_COST = 0.10
TARGET_PG_P99_MS = 100.0
TARGET_SQLITE_P99_MS = 500.0
PROBERS_COMMAND = "probers"
MODULE = "tests.benchmarks.wakeup_bench"

INSERT = (
    "INSERT INTO product_photos (id, url, status, next_attempt_at) "
    "VALUES ($1, 'https://images.test/x.jpg', 'Queued', $2)"
)
CLAIM = (
    "UPDATE product_photos SET status = 'Started' WHERE status = 'Queued' "
    "AND (next_attempt_at IS NULL OR next_attempt_at <= clock_timestamp()) RETURNING id"
)
SEED = (
    "INSERT INTO product_photos (id, url, status, locked_until) "
    "SELECT gen_random_uuid(), 'https://images.test/x.jpg', $2::varchar, "
    "CASE WHEN $2::varchar = 'Started' THEN now() + interval '1 hour' END "
    "FROM generate_series(1, $1)"
)
# The references: triggers that NOTIFY, with nothing probing.
REFERENCE_CHANNEL = "bench_claimable"
TRIGGERS = {
    "coalesced NOTIFY trigger": """
        CREATE UNLOGGED SEQUENCE IF NOT EXISTS bench_notified_at_ms;
        CREATE OR REPLACE FUNCTION bench_notify_coalesced() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            -- Runs at COMMIT: notify unless a notification went out in the last 25 ms.
            IF pg_sequence_last_value('bench_notified_at_ms')
               >= floor(extract(epoch FROM clock_timestamp()) * 1000) - 25 THEN
                RETURN NULL;
            END IF;
            PERFORM setval('bench_notified_at_ms',
                           floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint);
            PERFORM pg_notify('bench_claimable', TG_TABLE_NAME);
            RETURN NULL;
        END $$;
        CREATE CONSTRAINT TRIGGER bench_wakeup AFTER INSERT ON product_photos
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.status = 'Queued')
        EXECUTE FUNCTION bench_notify_coalesced();
    """,
    "per-row NOTIFY trigger": """
        CREATE OR REPLACE FUNCTION bench_notify_every_row() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_notify('bench_claimable', TG_TABLE_NAME); RETURN NULL; END $$;
        CREATE TRIGGER bench_wakeup AFTER INSERT ON product_photos
        FOR EACH ROW WHEN (NEW.status = 'Queued') EXECUTE FUNCTION bench_notify_every_row();
    """,
}
DROP_TRIGGER = "DROP TRIGGER IF EXISTS bench_wakeup ON product_photos"
SQLITE_WRITER = textwrap.dedent(
    """
    import json, random, sqlite3, sys, time, uuid
    path, count, low, high = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA busy_timeout=30000")
    rng = random.Random(7)
    for _ in range(count):
        time.sleep(rng.uniform(low, high))
        id = uuid.uuid4().hex
        sent = time.time()
        connection.execute("INSERT INTO rows (id, status) VALUES (?, 'Queued')", (id,))
        print(json.dumps([id, sent]), flush=True)
    """
)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def worker_specs() -> dict[str, ClaimSpec[Any]]:
    """What a worker with the built-in handlers probes (their claim specs' filters included)."""
    return {
        "Shein": status_claim_spec(
            StagingBatch, where=(StagingBatch.batch_processor_name == "Shein",)
        ),
        "ImageVectorization": status_claim_spec(
            ProductPhoto, where=(ProductPhoto.embedding.is_(None),)
        ),
    }


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


# Write cost -----------------------------------------------------------------------------------


async def _inserts_per_second(connections: list[asyncpg.Connection]) -> float:
    deadline = time.monotonic() + RUN_S
    counts = [0] * len(connections)

    async def insert(index: int, connection: asyncpg.Connection) -> None:
        while time.monotonic() < deadline:
            await connection.execute(INSERT, uuid.uuid4(), None)
            counts[index] += 1

    started = time.monotonic()
    await asyncio.gather(*(insert(i, c) for i, c in enumerate(connections)))
    return sum(counts) / (time.monotonic() - started)


async def _run(
    admin: asyncpg.Connection,
    connections: list[asyncpg.Connection],
    mode: str,
    probers: Probers,
) -> float:
    await admin.execute(DROP_TRIGGER)
    await admin.execute("TRUNCATE product_photos CASCADE")
    if mode in TRIGGERS:
        await admin.execute(TRIGGERS[mode])
    if mode != "probe":
        return await _inserts_per_second(connections)
    await probers.command("start")
    try:
        return await _inserts_per_second(connections)
    finally:
        await probers.command("stop")


class Probers:
    """WORKERS ClaimableWatchers in another process, as workers would be (not in this event
    loop, which drives the inserts), started and stopped on command."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process

    @classmethod
    async def spawn(cls, url: str) -> Probers:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            MODULE,
            PROBERS_COMMAND,
            url,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        return cls(process)

    async def command(self, word: str) -> None:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(f"{word}\n".encode())
        await self._process.stdin.drain()
        async with asyncio.timeout(CLAIM_TIMEOUT_S):
            answer = await self._process.stdout.readline()
        if answer.strip() != b"ok":
            raise RuntimeError(f"the probers process answered {answer!r} to {word!r}")

    async def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        await self._process.wait()


async def serve_probers(url: str) -> None:
    """The probers process: `start` / `stop` WORKERS watchers, answering `ok`, until EOF."""
    watchers: list[ClaimableWatcher] = []
    while line := await asyncio.to_thread(sys.stdin.readline):
        for watcher in watchers:
            await watcher.stop()
        watchers = []
        if line.strip() == "start":
            watchers = [
                ClaimableWatcher(url, worker_specs(), lambda _name: None) for _ in range(WORKERS)
            ]
            for watcher in watchers:
                await watcher.start()
            async with asyncio.timeout(CLAIM_TIMEOUT_S):
                for watcher in watchers:
                    await watcher.wait_until_watching()
        print("ok", flush=True)


async def write_cost(url: str) -> dict[str, list[float]]:
    """Inserts per second per run, by mode. A LISTEN connection runs throughout, as a worker's
    would with the trigger references."""
    admin = await asyncpg.connect(_dsn(url))
    listener = await asyncpg.connect(_dsn(url))
    await listener.add_listener(REFERENCE_CHANNEL, lambda *_: None)
    connections = [await asyncpg.connect(_dsn(url)) for _ in range(CONNECTIONS)]
    probers = await Probers.spawn(url)
    rates: dict[str, list[float]] = {"off": [], "probe": []}
    rates |= {f"off/{name}": [] for name in TRIGGERS} | {name: [] for name in TRIGGERS}
    try:
        for round_ in range(ROUNDS):
            for mode in ("off", "probe") if round_ % 2 == 0 else ("probe", "off"):
                rates[mode].append(await _run(admin, connections, mode, probers))
        for round_ in range(REFERENCE_ROUNDS):
            for name in TRIGGERS:
                pair = ("off", name) if round_ % 2 == 0 else (name, "off")
                for mode in pair:
                    rate = await _run(admin, connections, mode, probers)
                    rates[f"off/{name}" if mode == "off" else name].append(rate)
        await admin.execute(DROP_TRIGGER)
    finally:
        await probers.close()
        for connection in [admin, listener, *connections]:
            await connection.close()
    return rates


# Probe cost -----------------------------------------------------------------------------------


async def probe_cpu(url: str, admin: asyncpg.Connection) -> float:
    """% of one core the server spends on one worker's probes (its backend's CPU time)."""
    watcher = ClaimableWatcher(url, worker_specs(), lambda _name: None)
    async with watcher:
        async with asyncio.timeout(CLAIM_TIMEOUT_S):
            await watcher.wait_until_watching()
        pid = await admin.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'myapp-wakeups'"
        )
        before, started = _process_cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(PROBE_COST_S)
        used = _process_cpu_seconds(pid) - before
    return used / (time.monotonic() - started) * 100


def _process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def probe_costs(url: str) -> list[tuple[str, float]]:
    admin = await asyncpg.connect(_dsn(url))
    costs = []
    try:
        await admin.execute("TRUNCATE product_photos CASCADE")
        costs.append(("nothing queued", await probe_cpu(url, admin)))
        await admin.execute(SEED, BACKLOG_ROWS, "Queued")
        await admin.execute("VACUUM ANALYZE product_photos")
        costs.append((f"{BACKLOG_ROWS:,} queued", await probe_cpu(url, admin)))
        for leased in LEASED_ROWS:
            await admin.execute("TRUNCATE product_photos CASCADE")
            await admin.execute(SEED, leased, "Started")
            await admin.execute("VACUUM ANALYZE product_photos")
            costs.append((f"{leased:,} leased, nothing queued", await probe_cpu(url, admin)))
    finally:
        await admin.close()
    return costs


# Latency ---------------------------------------------------------------------------------------


class Claimer:
    """A stand-in for the engine: woken, it claims every visible due row at once (and goes
    again if woken meanwhile), noting when each id was claimed."""

    def __init__(self, claim: Callable[[], Awaitable[list[str]]]) -> None:
        self._claim = claim
        self._woken = asyncio.Event()
        self._claimed = asyncio.Event()
        self.claimed_at: dict[str, float] = {}
        self.wakes = 0

    def wake(self, _name: str | None) -> None:
        self.wakes += 1
        self._woken.set()

    async def run(self) -> None:
        while True:
            await self._woken.wait()
            self._woken.clear()
            for id in await self._claim():
                self.claimed_at.setdefault(id, time.time())
            self._claimed.set()

    async def wait_for(self, ids: list[str]) -> None:
        async with asyncio.timeout(CLAIM_TIMEOUT_S):
            while not all(id in self.claimed_at for id in ids):
                self._claimed.clear()
                await self._claimed.wait()


async def postgres_latency(
    url: str, gap: Callable[[], float], due_in: float | None = None
) -> list[float]:
    """Milliseconds from INSERT sent (or from `next_attempt_at`, rows due `due_in` s after
    their insert) to the row claimed after a wake-up."""
    writer = await asyncpg.connect(_dsn(url))
    fetcher = await asyncpg.connect(_dsn(url))
    await writer.execute("TRUNCATE product_photos CASCADE")
    claimer = Claimer(lambda: _claim_ids(fetcher))
    started: dict[str, float] = {}
    specs = {"ImageVectorization": worker_specs()["ImageVectorization"]}
    try:
        async with ClaimableWatcher(url, specs, claimer.wake) as watcher:
            async with asyncio.timeout(CLAIM_TIMEOUT_S):
                await watcher.wait_until_watching()
            claiming = asyncio.create_task(claimer.run())
            try:
                for _ in range(LATENCY_INSERTS):
                    await asyncio.sleep(gap())
                    id, now = uuid.uuid4(), time.time()
                    due = None if due_in is None else datetime.now(UTC) + timedelta(seconds=due_in)
                    started[str(id)] = now if due is None else due.timestamp()
                    await writer.execute(INSERT, id, due)
                await claimer.wait_for(list(started))
            finally:
                claiming.cancel()
                await asyncio.wait([claiming])
    finally:
        await writer.close()
        await fetcher.close()
    return [(claimer.claimed_at[id] - at) * 1000 for id, at in started.items()]


async def _claim_ids(connection: asyncpg.Connection) -> list[str]:
    return [str(record["id"]) for record in await connection.fetch(CLAIM)]


async def sqlite_latency(path: Path) -> tuple[list[float], int]:
    """Milliseconds from INSERT (in another process) to the row claimed after a wake-up; and
    how many wake-ups there were."""
    claimer = Claimer(lambda: asyncio.to_thread(_claim_sqlite, path))
    async with SqliteChangeWatcher(f"sqlite+aiosqlite:///{path}", claimer.wake):
        claiming = asyncio.create_task(claimer.run())
        try:
            writer = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                SQLITE_WRITER,
                str(path),
                str(LATENCY_INSERTS),
                *map(str, SQLITE_GAP_S),
                stdout=subprocess.PIPE,
            )
            output, _ = await writer.communicate()
            sent = dict(map(json.loads, output.decode().splitlines()))
            await claimer.wait_for(list(sent))
        finally:
            claiming.cancel()
            await asyncio.wait([claiming])
    return [(claimer.claimed_at[id] - at) * 1000 for id, at in sent.items()], claimer.wakes


def _claim_sqlite(path: Path) -> list[str]:
    connection = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        claim = "UPDATE rows SET status = 'Started' WHERE status = 'Queued' RETURNING id"
        return [id for (id,) in connection.execute(claim)]
    finally:
        connection.close()


async def sqlite_idle_cpu(path: Path) -> tuple[float, int, int]:
    """(% of one core, wake-ups, polls) of a watcher over IDLE_S with no commits."""
    wakes = [0]
    watcher = SqliteChangeWatcher(
        f"sqlite+aiosqlite:///{path}", lambda _name: wakes.__setitem__(0, wakes[0] + 1)
    )
    before, started = _own_cpu_seconds(), time.monotonic()
    async with watcher:
        await asyncio.sleep(IDLE_S)
    elapsed = time.monotonic() - started
    return (_own_cpu_seconds() - before) / elapsed * 100, wakes[0], round(elapsed / 0.1)


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _create_sqlite(path: Path) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE rows (id TEXT PRIMARY KEY, status TEXT NOT NULL)")
    finally:
        connection.close()


# The report ------------------------------------------------------------------------------------


def _latency_rows(title: str, ms: list[float], target: float, notes: str) -> list[dict[str, Any]]:
    p99 = percentile(ms, 0.99)
    return [
        row(f"{title}, p50", statistics.median(ms), "ms", notes=f"{len(ms)} rows; {notes}"),
        row(f"{title}, p99", p99, "ms", f"target < {target:.0f} ms", p99 / target, notes),
    ]


def _write_rows(rates: dict[str, list[float]]) -> list[dict[str, Any]]:
    off, probe = statistics.mean(rates["off"]), statistics.mean(rates["probe"])
    pairs = [p / o for p, o in zip(rates["probe"], rates["off"], strict=True)]
    context = f"{CONNECTIONS} connections, single-row INSERT transactions, synchronous_commit on"
    rows = [
        row(
            f"insert throughput, nothing watching ({context})",
            off,
            "rows/s",
            notes=f"{ROUNDS} runs of {RUN_S} s alternating with the next row; "
            f"runs {min(rates['off']):.0f}-{max(rates['off']):.0f}",
        ),
        row(
            f"insert throughput, {WORKERS} workers probing every "
            f"{DEFAULT_PROBE_INTERVAL_S * 1000:.0f} ms (in use)",
            probe,
            "rows/s",
            "nothing watching, same run",
            probe / off,
            f"target >= {1 - TARGET_WRITE_COST:.2f}; paired runs {min(pairs):.2f}-"
            f"{max(pairs):.2f}, median {statistics.median(pairs):.2f}",
        ),
    ]
    for name in TRIGGERS:
        reference = statistics.mean(rates[f"off/{name}"])
        rows.append(
            row(
                f"insert throughput, {name} (reference, not used)",
                statistics.mean(rates[name]),
                "rows/s",
                "nothing watching, same run",
                statistics.mean(rates[name]) / reference,
                f"{REFERENCE_ROUNDS} runs, each paired with one with nothing watching",
            )
        )
    return rows


async def run_async() -> list[dict[str, Any]]:
    url = await asyncio.to_thread(create_postgres_database)
    try:
        await upgrade_to_head(url)
        rates = await write_cost(url)
        costs = await probe_costs(url)
        rng = random.Random(11)
        isolated = await postgres_latency(url, lambda: rng.uniform(*ISOLATED_GAP_S))
        burst = await postgres_latency(url, lambda: BURST_GAP_S)
        retries = await postgres_latency(url, lambda: rng.uniform(0.05, 0.1), RETRY_DELAY_S)
    finally:
        await asyncio.to_thread(drop_postgres_database, url)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "wakeups.db"
        _create_sqlite(path)
        sqlite_ms, sqlite_wakes = await sqlite_latency(path)
        idle_cpu, idle_wakes, polls = await sqlite_idle_cpu(path)

    interval = f"probe every {DEFAULT_PROBE_INTERVAL_S * 1000:.0f} ms"
    return [
        *_write_rows(rates),
        *(
            row(
                f"probe cost on the PostgreSQL server, one worker, {state}",
                cpu,
                "% of a core",
                notes=f"{interval}; Shein + ImageVectorization specs in one statement; "
                f"backend CPU from /proc over {PROBE_COST_S:g} s "
                f"(resolution {1 / PROBE_COST_S:.2f} %)",
            )
            for state, cpu in costs
        ),
        *_latency_rows(
            "PostgreSQL wake-up latency, isolated inserts (INSERT sent -> row claimed)",
            isolated,
            TARGET_PG_P99_MS,
            f"one every 50-150 ms from a plain asyncpg connection; {interval}",
        ),
        *_latency_rows(
            "PostgreSQL wake-up latency, burst (INSERT sent -> row claimed)",
            burst,
            TARGET_PG_P99_MS,
            f"one every {BURST_GAP_S * 1000:.0f} ms; {interval}",
        ),
        *_latency_rows(
            "PostgreSQL wake-up latency, retry coming due (next_attempt_at -> row claimed)",
            retries,
            TARGET_PG_P99_MS,
            f"rows inserted due {RETRY_DELAY_S * 1000:.0f} ms later; no trigger sees time pass",
        ),
        *_latency_rows(
            "SQLite wake-up latency (INSERT in another process -> row claimed)",
            sqlite_ms,
            TARGET_SQLITE_P99_MS,
            f"one every {SQLITE_GAP_S[0] * 1000:.0f}-{SQLITE_GAP_S[1] * 1000:.0f} ms; "
            f"PRAGMA data_version every {DEFAULT_POLL_INTERVAL_S * 1000:.0f} ms; "
            f"{sqlite_wakes} wake-ups (the claimer's own commits wake it too)",
        ),
        row(
            f"SQLite watcher CPU while idle ({IDLE_S:.0f} s, no commits)",
            idle_cpu,
            "% of a core",
            notes=f"{polls} polls, {idle_wakes} wake-up(s) (the catch-up at start)",
        ),
    ]


def run() -> list[dict[str, Any]]:
    logger.disable("myapp")  # one "Watching ..." line per watcher start is noise here
    try:
        return asyncio.run(run_async())
    finally:
        logger.enable("myapp")


def main() -> None:
    if sys.argv[1:2] == [PROBERS_COMMAND]:
        logger.disable("myapp")
        asyncio.run(serve_probers(sys.argv[2]))
        return
    print_table(run())


if __name__ == "__main__":
    main()
