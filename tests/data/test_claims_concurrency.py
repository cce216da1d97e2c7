"""Many claimers on one PostgreSQL table at once: no row is handed out twice, none is missed."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.data.claim_helpers import Worker, add_photos
from tests.fixtures.clock import FakeClock

ROWS = 2_000
CLAIMERS = 8
BATCH = 25


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_concurrent_claimers_never_share_a_row(
    session_factory: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    ids = await add_photos(session_factory, clock, ROWS)

    async def drain(worker: Worker) -> list[uuid.UUID]:
        taken: list[uuid.UUID] = []
        while batch := await worker.claim(BATCH):
            assert all(row.locked_by == worker.id for row in batch)
            taken.extend(row.id for row in batch)
        return taken

    workers = [Worker(session_factory, clock, f"w{index}") for index in range(CLAIMERS)]
    results = await asyncio.gather(*(drain(worker) for worker in workers))

    counts = Counter(id for taken in results for id in taken)
    assert set(counts) == set(ids)
    assert max(counts.values()) == 1
    # SKIP LOCKED spreads the work: every claimer got some (no serialization behind one lock).
    assert sum(1 for taken in results if taken) > 1
