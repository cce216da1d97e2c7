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
