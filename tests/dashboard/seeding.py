"""Rows of the chores table in each state, as a worker would have left them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.dashboard.chores import Chore


@dataclass
class Seeded:
    completed: list[uuid.UUID] = field(default_factory=list)
    failed: dict[uuid.UUID, str] = field(default_factory=dict)
    queued: list[uuid.UUID] = field(default_factory=list)
    held: list[uuid.UUID] = field(default_factory=list)


async def seed_chores(
    engine: AsyncEngine,
    *,
    completed: int = 0,
    failed: list[str] | None = None,
    queued: int = 0,
    held: int = 0,
) -> Seeded:
    """`failed`: one dead-lettered row per error text. `held`: running rows a live lease holds."""
    now = datetime.now(UTC)
    seeded = Seeded()
    rows = []

    def row(status: str, **values: object) -> uuid.UUID:
        id = uuid.uuid4()
        defaults = {"attempts": 0, "last_error": None, "locked_by": None, "locked_until": None}
        name = f"chore {len(rows)}"
        times = {"created_at": now, "updated_at": now}
        rows.append({"id": id, "name": name, "status": status, **times, **defaults, **values})
        return id

    for _ in range(completed):
        seeded.completed.append(row("Completed", attempts=1))
    for error in failed or []:
        id = row("Failed", attempts=5, last_error=error)
        seeded.failed[id] = error
    for _ in range(queued):
        seeded.queued.append(row("Queued"))
    for _ in range(held):
        lease = {"locked_by": "other-worker", "locked_until": now + timedelta(minutes=10)}
        seeded.held.append(row("Started", attempts=1, **lease))
    async with engine.begin() as connection:
        if rows:
            await connection.execute(insert(Chore), rows)
    return seeded


async def seed_outcomes(engine: AsyncEngine, handler: str, now: datetime) -> None:
    """A day and a half of per-minute outcome counters with a daily rhythm and some failures,
    as the workers would have written them."""
    from myapp.data.models import HandlerOutcomeRow

    minute = now.replace(second=0, microsecond=0)
    rows = []
    for ago in range(0, 36 * 60, 3):
        at = minute - timedelta(minutes=ago)
        busy = 4 + (at.hour * 7 + at.minute) % 9
        failed = 1 if at.minute % 17 == 0 else 0
        dead = 1 if at.minute % 43 == 0 else 0
        rows.append(
            {
                "handler": handler,
                "minute": at,
                "succeeded": busy,
                "failed": failed,
                "dead_lettered": dead,
                "count": busy,
                "total_duration_ms": busy * 12.5,
                "max_duration_ms": 40.0,
            }
        )
    async with engine.begin() as connection:
        await connection.execute(insert(HandlerOutcomeRow), rows)


async def seed_stale_worker(engine: AsyncEngine) -> None:
    """A worker that died an hour ago without a graceful stop: its heartbeat is old."""
    from myapp.data.models import WorkerRow

    long_ago = datetime.now(UTC) - timedelta(hours=1)
    row = {
        "id": "vanished-host-4242-abcdef",
        "host": "vanished-host",
        "pid": 4242,
        "version": "0.1.0",
        "started_at": long_ago - timedelta(hours=5),
        "last_heartbeat_at": long_ago,
        "stopped_at": None,
        "handlers": '["Chores"]',
        "in_flight": 3,
        "heartbeat_seconds": 30.0,
    }
    async with engine.begin() as connection:
        await connection.execute(insert(WorkerRow), [row])
