"""Many `python -m myapp run` worker processes on one PostgreSQL: nothing lost, nothing run twice
at once, crashed workers' rows reclaimed, poison rows dead-lettered, graceful stops release.

Sizes: 5,000 rows for the multi-worker test (as the issue says); 600 for the crash test, 200 for
the poison and 300 for the graceful-stop tests, so the directory runs in about a minute.
"""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from tests.multiworker.handler import POISON_MESSAGE
from tests.multiworker.journal import overlapping_calls
from tests.multiworker.models import ROWS_TABLE
from tests.multiworker.support import (
    SECTION,
    Worker,
    WorkerPool,
    drain,
    process_calls,
    seed_rows,
    status_counts,
    wait_until,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

STEP_TIMEOUT_S = 60.0


async def held_by(db: asyncpg.Connection, worker: Worker) -> set[uuid.UUID]:
    rows = await db.fetch(
        f"SELECT id, locked_by FROM {ROWS_TABLE} WHERE status = 'Started' AND locked_by LIKE $1",
        f"%-{worker.pid}-%",
    )
    return {row["id"] for row in rows}


async def worker_id_of(db: asyncpg.Connection, worker: Worker) -> str | None:
    value = await db.fetchval(
        "SELECT worker_id FROM process_calls WHERE worker_id LIKE $1 LIMIT 1", f"%-{worker.pid}-%"
    )
    return str(value) if value is not None else None


async def completed_by(db: asyncpg.Connection, worker: Worker) -> int:
    """Rows Completed after a call by `worker` finished."""
    return int(
        await db.fetchval(
            f"SELECT count(*) FROM process_calls c JOIN {ROWS_TABLE} r ON r.id = c.row_id "
            "WHERE c.event = 'finish' AND c.worker_id LIKE $1 AND r.status = 'Completed'",
            f"%-{worker.pid}-%",
        )
    )


async def test_four_workers_complete_every_row_exactly_once(
    db: asyncpg.Connection, workers: WorkerPool
) -> None:
    await seed_rows(db, 5000)
    workers.start(4)

    await drain(db, workers, "4 workers to complete 5,000 rows")
    workers.stop_cleanly()

    assert await status_counts(db) == {"Completed": 5000}
    leftovers = await db.fetchval(
        f"SELECT count(*) FROM {ROWS_TABLE} WHERE attempts <> 1 OR completions <> 1 "
        "OR locked_by IS NOT NULL OR locked_until IS NOT NULL OR last_error IS NOT NULL"
    )
    assert leftovers == 0
    calls = await process_calls(db)
    assert len(calls) == 5000
    assert len({call.row_id for call in calls}) == 5000
    assert {call.outcome for call in calls} == {"finish"}
    assert overlapping_calls(calls) == []
    assert len({call.worker_id for call in calls}) >= 2, "the rows were not shared by workers"


async def test_killed_worker_rows_are_reclaimed_and_finished_rows_not_rerun(
    db: asyncpg.Connection, workers: WorkerPool
) -> None:
    await seed_rows(db, 600)
    workers.settings.update(
        {
            f"{SECTION}__Lease": "00:00:03",
            f"{SECTION}__SleepPerItem": "00:00:00.04",
            "BackgroundProcessing__HeartbeatInterval": "00:00:01",
            "BackgroundProcessing__MaxConcurrency": "4",
            f"{SECTION}__MaxItemsPerCycle": "40",
        }
    )
    victim, *_ = workers.start(4)

    async def victim_mid_batch() -> bool:
        return await completed_by(db, victim) > 0 and len(await held_by(db, victim)) > 0

    await wait_until(victim_mid_batch, within=STEP_TIMEOUT_S, what="the victim", workers=workers)
    workers.kill(victim)
    killed_at = await db.fetchval("SELECT clock_timestamp()")
    held_at_kill = await held_by(db, victim)
    completed_at_kill = {
        row["id"]
        for row in await db.fetch(f"SELECT id FROM {ROWS_TABLE} WHERE status = 'Completed'")
    }
    victim_id = await worker_id_of(db, victim)
    assert held_at_kill and victim_id is not None

    await drain(db, workers, "the survivors to finish every row, the victim's included")
    workers.stop_cleanly(workers.workers[1:])

    assert await status_counts(db) == {"Completed": 600}
    assert await db.fetchval(f"SELECT count(*) FROM {ROWS_TABLE} WHERE completions <> 1") == 0
    calls = await process_calls(db)
    assert overlapping_calls(calls, {victim_id: killed_at}) == []
    assert {call.worker_id for call in calls if call.outcome is None} <= {victim_id}
    # The victim's rows were taken over after its lease ran out (one more attempt each) and
    # finished by a survivor.
    reclaimed = await db.fetch(
        f"SELECT id, attempts FROM {ROWS_TABLE} WHERE id = ANY($1::uuid[])", list(held_at_kill)
    )
    assert {row["attempts"] for row in reclaimed} == {2}
    last_call = {call.row_id: call for call in sorted(calls, key=lambda c: c.started_at)}
    assert all(
        last_call[id].worker_id != victim_id and last_call[id].outcome == "finish"
        for id in held_at_kill
    )
    # Rows the victim had completed before it died were not processed again.
    calls_per_row: dict[uuid.UUID, list[str]] = {}
    for call in calls:
        calls_per_row.setdefault(call.row_id, []).append(call.worker_id)
    victim_completed = [id for id in completed_at_kill if victim_id in calls_per_row[id]]
    assert victim_completed, "the victim completed nothing before it was killed"
    assert all(calls_per_row[id] == [victim_id] for id in victim_completed)
    assert all(len(calls_per_row[id]) == 1 for id in completed_at_kill)


async def test_poison_row_is_dead_lettered_and_others_complete(
    db: asyncpg.Connection, workers: WorkerPool
) -> None:
    await seed_rows(db, 200)
    await seed_rows(db, 1, max_attempts=3, poison=True)
    workers.settings[f"{SECTION}__RetryBase"] = "00:00:00.1"
    workers.start(2)

    await drain(db, workers, "the rows to complete and the poison row to be dead-lettered")
    workers.stop_cleanly()

    assert await status_counts(db) == {"Completed": 200, "Failed": 1}
    poison = await db.fetchrow(f"SELECT * FROM {ROWS_TABLE} WHERE poison")
    assert poison["status"] == "Failed"
    assert poison["attempts"] == 3
    assert poison["last_error"] == f"PoisonError: {POISON_MESSAGE}"
    assert poison["locked_by"] is None and poison["completions"] == 0
    calls = await process_calls(db)
    assert [c.outcome for c in calls if c.row_id == poison["id"]] == ["error"] * 3
    healthy = [c for c in calls if c.row_id != poison["id"]]
    assert len(healthy) == 200 and {c.outcome for c in healthy} == {"finish"}
    assert overlapping_calls(calls) == []
    assert await db.fetchval(f"SELECT max(attempts) FROM {ROWS_TABLE} WHERE NOT poison") == 1


async def test_sigterm_finishes_in_flight_items_and_releases_the_rest(
    db: asyncpg.Connection, workers: WorkerPool
) -> None:
    await seed_rows(db, 300)
    (worker,) = workers.start(
        1,
        **{
            f"{SECTION}__SleepPerItem": "00:00:00.2",
            "BackgroundProcessing__MaxConcurrency": "4",
            f"{SECTION}__Lease": "00:05:00",  # unreleased rows would stay stuck for minutes
        },
    )

    async def running_calls() -> set[uuid.UUID]:
        calls = await process_calls(db)
        return {c.call_id for c in calls if c.outcome is None and worker.owns(c.worker_id)}

    async def mid_batch() -> bool:
        return bool(await running_calls()) and len(await held_by(db, worker)) > 8

    await wait_until(mid_batch, within=STEP_TIMEOUT_S, what="the worker to start", workers=workers)
    running = await running_calls()
    held = await held_by(db, worker)
    workers.stop_cleanly([worker])

    # Items running at the stop ran to their end and were completed.
    calls = await process_calls(db)
    assert {c.outcome for c in calls if c.call_id in running} == {"finish"}
    assert {c.outcome for c in calls} == {"finish"}
    completed = {
        row["id"]
        for row in await db.fetch(f"SELECT id FROM {ROWS_TABLE} WHERE status = 'Completed'")
    }
    assert {c.row_id for c in calls} == completed
    # Items claimed but not started went back to Queued with their attempt given back.
    rows = {
        row["id"]: row
        for row in await db.fetch(f"SELECT * FROM {ROWS_TABLE} WHERE id = ANY($1::uuid[])", held)
    }
    released = {id for id, row in rows.items() if row["status"] == "Queued"}
    assert released, f"nothing released of {len(held)} held rows"
    assert held <= completed | released
    assert all(rows[id]["attempts"] == 0 and rows[id]["locked_by"] is None for id in released)
    assert await db.fetchval(f"SELECT count(*) FROM {ROWS_TABLE} WHERE status = 'Started'") == 0

    workers.start(1, **{f"{SECTION}__SleepPerItem": "00:00:00"})
    await drain(db, workers, "a second worker to finish the released rows")
    workers.stop_cleanly(workers.workers[1:])

    assert await status_counts(db) == {"Completed": 300}
    assert await db.fetchval(f"SELECT max(attempts) FROM {ROWS_TABLE}") == 1
    calls = await process_calls(db)
    assert len(calls) == 300 and len({c.row_id for c in calls}) == 300
    assert overlapping_calls(calls) == []


async def test_queued_items_keep_their_lease_while_a_slow_worker_works_through_them(
    db: asyncpg.Connection, workers: WorkerPool
) -> None:
    """A worker holds 20 claimed rows but runs one at a time, far longer than the lease: the
    heartbeat must renew the rows still waiting in its queue, or a second worker takes them."""
    await seed_rows(db, 20)
    (slow,) = workers.start(
        1,
        **{
            f"{SECTION}__MaxItemsPerCycle": "20",
            f"{SECTION}__MaxConcurrency": "1",
            f"{SECTION}__SleepPerItem": "00:00:00.3",
            f"{SECTION}__Lease": "00:00:01",
            "BackgroundProcessing__HeartbeatInterval": "00:00:00.3",
        },
    )

    async def slow_holds_everything() -> bool:
        return len(await held_by(db, slow)) == 20

    await wait_until(
        slow_holds_everything, within=STEP_TIMEOUT_S, what="the claim", workers=workers
    )
    workers.start(1)  # a fast worker that would take any row whose lease ran out

    await drain(db, workers, "both workers to finish 20 rows")
    workers.stop_cleanly()

    assert await db.fetchval(f"SELECT max(attempts) FROM {ROWS_TABLE}") == 1
    calls = await process_calls(db)
    assert overlapping_calls(calls) == []
    assert all(slow.owns(call.worker_id) for call in calls)
