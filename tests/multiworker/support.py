"""Shared by the multi-worker tests and the claim benchmark: a fresh PostgreSQL database with the
test tables, seeding, worker subprocesses (`python -m myapp ... run`) and journal queries."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from myapp.data.database import create_engine
from myapp.data.migrations import upgrade_to_head
from tests.fixtures.database import create_postgres_database, drop_postgres_database
from tests.multiworker.handler import HANDLER_NAME
from tests.multiworker.journal import Call, read_journal
from tests.multiworker.models import CALLS_TABLE, ROWS_TABLE, TestBase
from tests.multiworker.worker_container import CLOCK_OFFSET_VARIABLE

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKER_CONTAINER = "tests.multiworker.worker_container:Container"
SECTION = f"BackgroundProcessing__{HANDLER_NAME}"
STOP_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 120.0
LOG_TAIL_CHARS = 3000


# The database -------------------------------------------------------------------------------


def create_test_database(*, synchronous_commit: bool = False) -> str:
    """A new database with a random name, our tables and the test tables; its SQLAlchemy URL.

    The tests commit twice per item (the journal); without `synchronous_commit` a commit does
    not wait for its WAL flush. Visibility and locking are unchanged, only a server crash could
    lose the last commits, which no test does.
    """
    url = create_postgres_database()
    try:
        asyncio.run(_create_tables(url, synchronous_commit))
    except BaseException:
        drop_postgres_database(url)
        raise
    return url


async def _create_tables(url: str, synchronous_commit: bool) -> None:
    # Ours too, as a real worker's database has them (its workers table, its outcome counters):
    # the workers here start with Database:MigrateOnStartup off.
    await upgrade_to_head(url)
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(TestBase.metadata.create_all)
            if not synchronous_commit:
                name = make_url(url).database
                await connection.exec_driver_sql(
                    f'ALTER DATABASE "{name}" SET synchronous_commit = off'
                )
    finally:
        await engine.dispose()


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(asyncpg_dsn(url))


async def seed_rows(
    connection: asyncpg.Connection,
    count: int,
    *,
    status: str = "Queued",
    max_attempts: int = 5,
    poison: bool = False,
    due_in: float | None = None,
) -> None:
    """`count` rows in one statement, created one microsecond apart (a stable claim order);
    with `due_in`, none is claimable before that many seconds from now (`next_attempt_at`)."""
    await connection.execute(
        f"""
        INSERT INTO {ROWS_TABLE} (id, created_at, status, max_attempts, poison, attempts,
                                  next_attempt_at)
        SELECT gen_random_uuid(), now() + n * interval '1 microsecond', $2::varchar, $3, $4,
               CASE WHEN $2::varchar = 'Queued' THEN 0 ELSE 1 END,
               now() + $5::float8 * interval '1 second'
        FROM generate_series(1, $1) AS n
        """,
        count,
        status,
        max_attempts,
        poison,
        due_in,
    )


async def reset_tables(connection: asyncpg.Connection) -> None:
    await connection.execute(f"TRUNCATE {ROWS_TABLE}, {CALLS_TABLE}")


async def status_counts(connection: asyncpg.Connection) -> dict[str, int]:
    rows = await connection.fetch(f"SELECT status, count(*) AS n FROM {ROWS_TABLE} GROUP BY 1")
    return {row["status"]: row["n"] for row in rows}


async def wait_until(
    condition: Callable[[], Awaitable[bool]],
    *,
    within: float,
    what: str,
    workers: WorkerPool | None = None,
    interval: float = 0.1,
) -> float:
    """Poll `condition` until true; the seconds it took. Fails with the workers' logs if not."""
    started = time.monotonic()
    while not await condition():
        if time.monotonic() - started > within:
            logs = workers.logs() if workers else ""
            raise AssertionError(f"timed out after {within}s waiting for {what}\n{logs}")
        if workers:
            workers.assert_alive()
        await asyncio.sleep(interval)
    return time.monotonic() - started


async def not_finished(connection: asyncpg.Connection) -> int:
    """Rows neither Completed nor Failed."""
    return int(
        await connection.fetchval(
            f"SELECT count(*) FROM {ROWS_TABLE} WHERE status NOT IN ('Completed', 'Failed')"
        )
    )


async def drain(
    connection: asyncpg.Connection, workers: WorkerPool, what: str, within: float = DRAIN_TIMEOUT_S
) -> float:
    """Wait until every row is Completed or Failed; the seconds it took."""

    async def drained() -> bool:
        return await not_finished(connection) == 0

    return await wait_until(drained, within=within, what=what, workers=workers)


# The journal --------------------------------------------------------------------------------


async def process_calls(connection: asyncpg.Connection) -> list[Call]:
    """The calls in the `process_calls` table (stamped by the database's clock)."""
    rows = await connection.fetch(
        f"""
        SELECT s.call_id, s.row_id, s.worker_id, s.at AS started_at,
               e.at AS ended_at, e.event AS outcome
        FROM {CALLS_TABLE} s
        LEFT JOIN {CALLS_TABLE} e ON e.call_id = s.call_id AND e.event <> 'start'
        WHERE s.event = 'start'
        ORDER BY s.row_id, s.at
        """
    )
    return [Call(**dict(row)) for row in rows]


# Workers ------------------------------------------------------------------------------------


def worker_environment(url: str, **settings: str) -> dict[str, str]:
    """The environment of a worker process; `settings` are `Section__Key` overrides."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.lower().startswith(("connectionstrings__", "backgroundprocessing__"))
        and key != CLOCK_OFFSET_VARIABLE
    }
    env.update(
        {
            "ConnectionStrings__Database": url,
            "Database__MigrateOnStartup": "false",
            "IngestionService__PollInterval": "00:00:01",
            "Logging__LogLevel__Default": "Warning",
            "BackgroundProcessing__MaxConcurrency": "8",
            f"{SECTION}__MaxItemsPerCycle": "100",
            f"{SECTION}__Lease": "00:00:30",
            "PYTHONPATH": str(REPO_ROOT),
        }
    )
    env.update(settings)
    return env


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log_path: Path
    overrides: dict[str, str]  # the settings it was started with beyond the pool's
    journal_path: Path | None = None
    stopped_by_test: bool = False
    killed_at: float | None = None  # time.time() once its SIGKILL is done

    @property
    def pid(self) -> int:
        return self.process.pid

    def owns(self, worker_id: str) -> bool:
        """Worker ids are `<host>-<pid>-<suffix>`."""
        return f"-{self.pid}-" in worker_id

    def log(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-LOG_TAIL_CHARS:]

    def executions(self) -> list[Call]:
        """The calls in its journal file; those it was killed in end at its death."""
        if self.journal_path is None:
            raise ValueError(f"worker {self.pid} was started without a journal file")
        return read_journal(self.journal_path, self.killed_at)


@dataclass
class WorkerPool:
    """Worker subprocesses; always stopped (SIGKILL as a last resort) when the test ends.

    With `journal_files`, each worker journals its calls in a file of its own (journal.py).
    """

    url: str
    log_dir: Path
    settings: dict[str, str] = field(default_factory=dict)
    workers: list[Worker] = field(default_factory=list)
    journal_files: bool = False
    root: Path = REPO_ROOT  # the checkout the workers run (a benchmark compares two)

    def start(self, count: int = 1, **settings: str) -> list[Worker]:
        command = [sys.executable, "-m", "myapp", "--container", WORKER_CONTAINER, "run"]
        started = []
        for _ in range(count):
            name = f"worker-{len(self.workers)}"
            log_path = self.log_dir / f"{name}.log"
            journal_path = self.log_dir / f"{name}.journal" if self.journal_files else None
            journal = {f"{SECTION}__JournalFile": str(journal_path)} if journal_path else {}
            env = worker_environment(self.url, **{**self.settings, **journal, **settings})
            env["PYTHONPATH"] = str(self.root)
            with log_path.open("wb") as log:
                process = subprocess.Popen(
                    command, cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT
                )
            worker = Worker(process, log_path, dict(settings), journal_path)
            self.workers.append(worker)
            started.append(worker)
        return started

    def alive(self) -> list[Worker]:
        """The workers the test has not stopped (a crashed one is here: see assert_alive)."""
        return [worker for worker in self.workers if not worker.stopped_by_test]

    def assert_alive(self) -> None:
        for worker in self.workers:
            code = worker.process.poll()
            if code is not None and not worker.stopped_by_test:
                raise AssertionError(f"worker {worker.pid} exited with {code}\n{worker.log()}")

    def kill(self, worker: Worker) -> None:
        worker.stopped_by_test = True
        worker.process.send_signal(signal.SIGKILL)
        worker.process.wait(STOP_TIMEOUT_S)
        worker.killed_at = time.time()

    def restart(self, worker: Worker) -> Worker:
        """SIGKILL `worker` and start another with the same settings."""
        self.kill(worker)
        (replacement,) = self.start(1, **worker.overrides)
        return replacement

    def terminate(self, workers: list[Worker] | None = None) -> dict[int, int]:
        """SIGTERM, then wait: {pid: exit code}."""
        chosen = self.workers if workers is None else workers
        for worker in chosen:
            worker.stopped_by_test = True
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        return {w.pid: w.process.wait(STOP_TIMEOUT_S) for w in chosen}

    def stop_cleanly(self, workers: list[Worker] | None = None) -> None:
        """SIGTERM; every one must exit 0."""
        codes = self.terminate(workers)
        assert all(code == 0 for code in codes.values()), f"exit codes {codes}\n{self.logs()}"

    def executions(self) -> list[Call]:
        """Every call journaled by every worker the pool started (journal files)."""
        return [call for worker in self.workers for call in worker.executions()]

    def logs(self) -> str:
        return "\n".join(f"--- worker {w.pid} ---\n{w.log()}" for w in self.workers)

    def close(self) -> None:
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait(STOP_TIMEOUT_S)
