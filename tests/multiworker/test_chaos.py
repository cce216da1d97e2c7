"""Chaos on PostgreSQL: worker processes SIGKILLed and restarted, their database connections
terminated, one worker's clock off by seconds; every execution journaled in files that survive
all of it (journal.py). At the end: 0 rows lost, 0 acknowledged twice, 0 executions of one row
overlapping in time.

The schedule of kills and terminations is seeded and the seed printed: MYAPP_CHAOS_SEED=<seed>
replays it (the workers' own timing still varies);
MYAPP_CHAOS_CLOCK_SKEW_SECONDS=0 runs the chaos test with every clock right.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import signal
import time
import uuid
from dataclasses import dataclass

import asyncpg
import pytest

from tests.multiworker.journal import Overlap, describe, overlapping_calls, runs_per_row
from tests.multiworker.models import ROWS_TABLE
from tests.multiworker.support import (
    SECTION,
    WorkerPool,
    drain,
    not_finished,
    seed_rows,
    wait_until,
)
from tests.multiworker.worker_container import CLOCK_OFFSET_VARIABLE

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SEED_VARIABLE = "MYAPP_CHAOS_SEED"
SKEW_VARIABLE = "MYAPP_CHAOS_CLOCK_SKEW_SECONDS"
SKEW_SECONDS = 10.0
LEASE = "00:00:02"

CHAOS_WORKERS = 4
# Enough rows to outlast the chaos window: continuous workers drain about 250 rows/s here.
CHAOS_ROWS = 10_000
POISON_ROWS = 4
POISON_ATTEMPTS = 3
# A SIGKILL costs every row its worker held an attempt (by design: it may have crashed on it);
# the budget is high so that the test counts rows lost, not attempt budgets spent by the test.
CHAOS_ATTEMPTS = 50
CHAOS_SECONDS = 40.0  # counted from when every worker has started working
START_TIMEOUT_S = 60.0
CHAOS_KILLS = 8
CHAOS_TERMINATIONS = 16
CHAOS_SETTINGS = {
    f"{SECTION}__Lease": LEASE,
    f"{SECTION}__SleepJitter": "00:00:00.05",  # 0-50 ms of work per row
    f"{SECTION}__Journal": "false",  # the journal files say it all
    f"{SECTION}__MaxItemsPerCycle": "20",
    "BackgroundProcessing__MaxConcurrency": "2",
}

SKEW_ROWS = 300
SKEW_SETTINGS = {
    f"{SECTION}__Lease": LEASE,
    f"{SECTION}__SleepPerItem": "00:00:00.5",
    f"{SECTION}__Journal": "false",
}
SHOWN_ROWS = 20

KILL = "SIGKILL a worker"
TERMINATE = "pg_terminate_backend"


@dataclass(frozen=True)
class Verdict:
    """What the rows and the journal files say after the workers have stopped."""

    rows: int
    executions: int
    rows_run_more_than_once: int
    lost: list[uuid.UUID]  # neither Completed nor a planted poison row dead-lettered
    acknowledged_twice: list[uuid.UUID]  # `completions` > 1
    unjournaled: list[uuid.UUID]  # Completed with no finished execution in the journal
    overlapping: list[Overlap]  # pairs of executions of one row that ran at the same time

    @property
    def clean(self) -> bool:
        return not (self.lost or self.acknowledged_twice or self.unjournaled or self.overlapping)

    def summary(self) -> str:
        return (
            f"{self.rows} rows, {self.executions} executions, "
            f"{self.rows_run_more_than_once} rows run more than once; "
            f"lost {len(self.lost)}, acknowledged twice {len(self.acknowledged_twice)}, "
            f"unjournaled {len(self.unjournaled)}, overlapping pairs {len(self.overlapping)}"
        )

    def details(self) -> str:
        """The summary, every overlapping pair, and the first rows of each other problem."""
        lines = [self.summary()]
        lines += [f"overlapping: {describe(overlap)}" for overlap in self.overlapping]
        for name in ("lost", "acknowledged_twice", "unjournaled"):
            ids = getattr(self, name)
            lines += [f"{name}: row {id}" for id in ids[:SHOWN_ROWS]]
            if len(ids) > SHOWN_ROWS:
                lines.append(f"{name}: ... and {len(ids) - SHOWN_ROWS} more")
        return "\n".join(lines)


async def judge(db: asyncpg.Connection, workers: WorkerPool) -> Verdict:
    calls = workers.executions()
    rows = await db.fetch(f"SELECT id, status, poison, completions FROM {ROWS_TABLE}")
    finished = {call.row_id for call in calls if call.outcome == "finish"}
    runs = runs_per_row(calls)
    return Verdict(
        rows=len(rows),
        executions=len(calls),
        rows_run_more_than_once=sum(1 for count in runs.values() if count > 1),
        lost=[r["id"] for r in rows if r["status"] != ("Failed" if r["poison"] else "Completed")],
        acknowledged_twice=[r["id"] for r in rows if r["completions"] > 1],
        unjournaled=[
            r["id"] for r in rows if r["status"] == "Completed" and r["id"] not in finished
        ],
        overlapping=overlapping_calls(calls),
    )


def assert_clean(verdict: Verdict, workers: WorkerPool) -> None:
    assert verdict.clean, f"{verdict.details()}\n{workers.logs()}"


# Chaos ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChaosPlan:
    seed: int
    skew_seconds: float
    # (seconds after the start, KILL or TERMINATE), in time order
    events: tuple[tuple[float, str], ...]


def chaos_plan() -> ChaosPlan:
    seed = int(os.environ.get(SEED_VARIABLE) or secrets.randbits(32))
    skew = float(os.environ.get(SKEW_VARIABLE, SKEW_SECONDS))
    rng = random.Random(seed)
    events = [(rng.uniform(0, CHAOS_SECONDS), KILL) for _ in range(CHAOS_KILLS)]
    events += [(rng.uniform(0, CHAOS_SECONDS), TERMINATE) for _ in range(CHAOS_TERMINATIONS)]
    return ChaosPlan(seed, skew, tuple(sorted(events)))


async def terminate_a_backend(db: asyncpg.Connection, rng: random.Random) -> bool:
    """pg_terminate_backend on one of the workers' connections (never this one), preferring one
    in the middle of a statement or transaction."""
    backends = await db.fetch(
        "SELECT pid, state FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND backend_type = 'client backend' ORDER BY pid"
    )
    busy = [b["pid"] for b in backends if b["state"] != "idle"]
    candidates = busy or [b["pid"] for b in backends]
    if not candidates:
        return False
    return bool(await db.fetchval("SELECT pg_terminate_backend($1)", rng.choice(candidates)))


async def unleash(plan: ChaosPlan, db: asyncpg.Connection, workers: WorkerPool) -> dict[str, int]:
    """Carry out the plan while rows remain; how many of each event happened."""
    rng = random.Random(plan.seed)
    done = {KILL: 0, TERMINATE: 0}
    started = time.monotonic()
    for at, event in plan.events:
        await asyncio.sleep(max(0.0, started + at - time.monotonic()))
        workers.assert_alive()
        if await not_finished(db) == 0:
            break
        if event == KILL:
            workers.restart(rng.choice(workers.alive()))
            done[KILL] += 1
        elif await terminate_a_backend(db, rng):
            done[TERMINATE] += 1
    return done


def stop_after_chaos(workers: WorkerPool) -> None:
    """SIGTERM: each must exit 0, except one restarted so late that it is still starting: the
    signal's default action ends it (exit -SIGTERM) before its host could take any work (the host
    handles the signal before it starts processing), so it has journaled nothing."""
    codes = workers.terminate(workers.alive())
    for worker in workers.workers:
        code = codes.get(worker.pid)
        never_worked = not worker.executions()
        assert code in (None, 0) or (code == -signal.SIGTERM and never_worked), (
            f"worker {worker.pid} exited with {code}\n{worker.log()}"
        )


@pytest.mark.timeout(240)
async def test_chaos(db: asyncpg.Connection, workers: WorkerPool) -> None:
    plan = chaos_plan()
    print(f"chaos seed {plan.seed} ({SEED_VARIABLE}), clock skew {plan.skew_seconds:+g} s")
    started = time.monotonic()
    await seed_rows(db, CHAOS_ROWS, max_attempts=CHAOS_ATTEMPTS)
    await seed_rows(db, POISON_ROWS, max_attempts=POISON_ATTEMPTS, poison=True)
    workers.journal_files = True
    workers.settings.update(CHAOS_SETTINGS)
    workers.start(CHAOS_WORKERS - 1)
    workers.start(1, **{CLOCK_OFFSET_VARIABLE: str(plan.skew_seconds)})

    async def all_working() -> bool:
        return all(w.journal_path and w.journal_path.exists() for w in workers.workers)

    await wait_until(all_working, within=START_TIMEOUT_S, what="the workers", workers=workers)
    chaos_started = time.monotonic()
    done = await unleash(plan, db, workers)
    chaos_seconds = time.monotonic() - chaos_started
    await drain(db, workers, "every row to be finished after the chaos")
    stop_after_chaos(workers)

    verdict = await judge(db, workers)
    print(
        f"chaos: {done[KILL]} SIGKILLs, {done[TERMINATE]} terminated backends in "
        f"{chaos_seconds:.0f} s, {time.monotonic() - started:.0f} s in all; {verdict.summary()}"
    )
    assert verdict.rows == CHAOS_ROWS + POISON_ROWS
    # The chaos happened while there was work to hit, not after the rows ran out.
    assert done[KILL] >= CHAOS_KILLS // 2 and done[TERMINATE] >= CHAOS_TERMINATIONS // 2, done
    assert_clean(verdict, workers)


# Skewed clocks -------------------------------------------------------------------------------


@pytest.mark.parametrize("skew_seconds", [SKEW_SECONDS, -SKEW_SECONDS], ids=["ahead", "behind"])
async def test_skewed_clocks_never_overlap(
    db: asyncpg.Connection, workers: WorkerPool, skew_seconds: float
) -> None:
    """Two workers, one's clock 10 s off: leases must not depend on it. Every row runs once."""
    await seed_rows(db, SKEW_ROWS)
    workers.journal_files = True
    workers.settings.update(SKEW_SETTINGS)
    workers.start(1)
    workers.start(1, **{CLOCK_OFFSET_VARIABLE: str(skew_seconds)})

    await drain(db, workers, f"two workers, one {skew_seconds:+g} s off, to finish the rows")
    workers.stop_cleanly()

    verdict = await judge(db, workers)
    print(f"skew {skew_seconds:+g} s: {verdict.summary()}")
    assert verdict.rows == SKEW_ROWS
    assert_clean(verdict, workers)
    assert verdict.rows_run_more_than_once == 0, verdict.details()
