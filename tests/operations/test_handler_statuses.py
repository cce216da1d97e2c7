"""`handler_statuses` over a user's table with its own status values, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import String
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from myapp.operations import counting
from myapp.operations.handlers import handler_statuses
from myapp.operations.registry import RegisteredHandler
from myapp.operations.states import ItemState
from myapp.processing.claim_columns import ClaimColumns
from myapp.processing.claims import ClaimSpec
from myapp.processing.work_item import ProcessorPurpose
from tests.operations.support import (
    add_checks,
    add_outcomes,
    add_worker,
    database_now,
    price_checks,
)
from tests.operations.user_app import DONE, GAVE_UP, HANDLER_NAME, WAITING, WORKING


async def test_counts_ages_leases_workers_and_outcomes_of_a_users_table(
    user_engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    now = await database_now(session_factory)
    await add_checks(
        session_factory,
        [
            {"state": WAITING},
            {"state": WAITING, "last_error": "ValueError: retry me"},
            {"state": WORKING, "locked_by": "w1", "locked_until": now + timedelta(minutes=5)},
            {"state": WORKING, "locked_by": "gone", "locked_until": now - timedelta(minutes=1)},
            {"state": DONE},
            {"state": DONE},
            {"state": DONE},
            {"state": GAVE_UP, "last_error": "PermanentError: no such product"},
            {"state": "paused"},
        ],
    )
    await add_worker(session_factory, "w1", [HANDLER_NAME, "Shein"])
    await add_worker(session_factory, "w2", [HANDLER_NAME], heartbeat_age=timedelta(minutes=5))
    await add_worker(session_factory, "w3", [HANDLER_NAME], stopped=True)
    await add_outcomes(
        session_factory, HANDLER_NAME, timedelta(minutes=10), succeeded=7, durations_ms=[10, 30]
    )
    await add_outcomes(session_factory, HANDLER_NAME, timedelta(minutes=20), failed=2)
    await add_outcomes(session_factory, HANDLER_NAME, timedelta(hours=3), dead_lettered=4)

    async with session_factory() as session:
        (status,) = await handler_statuses(session, [price_checks()])
        (lately,) = await handler_statuses(
            session, [price_checks()], since=now - timedelta(hours=1)
        )

    assert status.table == "ops_price_checks" and status.problem is None
    assert status.counts is not None
    assert status.counts.model_dump() == {
        "queued": 2,
        "running": 2,
        "completed": 3,
        "failed": 1,
        "other": 1,
        "estimated": [],
    }
    assert status.expired_leases == 1
    assert status.live_workers == 1  # w2's heartbeat is stale, w3 stopped
    assert status.last_hour is not None
    assert (status.last_hour.succeeded, status.last_hour.failed) == (7, 2)
    assert status.last_hour.dead_lettered == 0  # three hours ago
    assert status.last_hour.average_duration_ms == 20.0
    assert status.last_hour.max_duration_ms == 30.0
    assert status.dead_lettered_since == 4  # since: the last 24 hours by default
    assert lately.dead_lettered_since == 0
    assert status.last_error == "PermanentError: no such product"
    assert status.oldest_queued_age_seconds is None  # the user's table has no created_at


async def test_built_in_table_oldest_queued_age_from_created_at_soft_deleted_rows_left_out(
    user_engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    from myapp.data.claiming import status_claim_spec
    from myapp.data.models import ProductPhoto

    now = await database_now(session_factory)
    async with session_factory() as session:
        session.add(ProductPhoto(url="https://x.test/1.jpg", created_at=now - timedelta(hours=2)))
        session.add(ProductPhoto(url="https://x.test/2.jpg", created_at=now - timedelta(hours=1)))
        deleted = now - timedelta(days=9)
        session.add(ProductPhoto(url="https://x.test/3.jpg", created_at=deleted, deleted_at=now))
        await session.commit()
    photos = RegisteredHandler(
        name="ImageVectorization",
        purpose=ProcessorPurpose.INTERNAL,
        enabled=False,
        disabled_reason="not configured",
        spec=status_claim_spec(ProductPhoto),
    )

    async with session_factory() as session:
        (status,) = await handler_statuses(session, [photos])

    assert status.counts is not None and status.counts.queued == 2
    assert status.oldest_queued_age_seconds is not None
    assert 2 * 3600 - 60 < status.oldest_queued_age_seconds < 2 * 3600 + 60


class NeverMigratedBase(DeclarativeBase):
    pass


class NeverMigrated(ClaimColumns, NeverMigratedBase):
    __tablename__ = "ops_never_migrated"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    state: Mapped[str] = mapped_column(String(20))


async def test_a_missing_table_is_a_problem_not_an_error(
    db_engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    spec = ClaimSpec(
        model=NeverMigrated,
        status=NeverMigrated.state,
        queued="q",
        started="s",
        completed="c",
        failed="f",
    )
    handler = replace(price_checks(), spec=spec)
    async with session_factory() as session:
        (status,) = await handler_statuses(session, [handler])

    assert status.counts is None
    assert status.problem == "table ops_never_migrated does not exist (run its migrations)"


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_past_the_exact_limit_postgresql_gives_the_planners_estimate(
    user_engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(counting, "EXACT_COUNT_LIMIT", 20)
    await add_checks(session_factory, [{"state": DONE}] * 500 + [{"state": WAITING}] * 3)
    async with user_engine.connect() as connection:
        await connection.exec_driver_sql("ANALYZE ops_price_checks")
        await connection.commit()

    async with session_factory() as session:
        (status,) = await handler_statuses(session, [price_checks()])

    assert status.counts is not None
    assert status.counts.estimated == [ItemState.COMPLETED]
    assert 400 <= status.counts.completed <= 600  # the planner's figure, from ANALYZE
    assert status.counts.queued == 3  # under the limit: exact
