"""Per registered handler: is it on, what waits, runs, finished and died in its table, which
workers run it and what it did in the last hour (`myapp status`, the dashboard's first page)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from myapp.operations.counting import count_rows
from myapp.operations.outcomes import OutcomeTotals, outcome_totals
from myapp.operations.registry import RegisteredHandler
from myapp.operations.states import ItemState, expired_lease, in_state, not_deleted
from myapp.operations.tables import table_exists
from myapp.operations.workers import live_worker_counts
from myapp.processing.sql_time import database_time

LAST_HOUR = timedelta(hours=1)
DEFAULT_SINCE = timedelta(hours=24)


class StatusCounts(BaseModel):
    queued: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    other: int = 0
    """Rows in a status the claim spec does not name (ours: Cancelled)."""
    estimated: list[ItemState] = []
    """States whose count is PostgreSQL's planner estimate (past 10,000 rows): see counting."""


class HandlerStatus(BaseModel):
    name: str
    purpose: str
    enabled: bool
    disabled_reason: str | None = None
    table: str | None = None
    """None for a handler without a claimable table (BlobCleanup)."""
    problem: str | None = None
    """Why the table could not be read: it does not exist, or the handler cannot be built."""
    counts: StatusCounts | None = None
    oldest_queued_age_seconds: float | None = None
    """How long the oldest queued row has waited (from `created_at`; None without one)."""
    expired_leases: int = 0
    live_workers: int | None = None
    """Live workers running this handler; None when the workers table is not there yet."""
    last_hour: OutcomeTotals | None = None
    dead_lettered_since: int = 0
    """Dead letters recorded by the outcome counters since the `since` asked for."""
    last_error: str | None = None
    """The error of the most recently dead-lettered row."""


async def handler_statuses(
    session: AsyncSession,
    handlers: Sequence[RegisteredHandler],
    *,
    since: datetime | None = None,
) -> list[HandlerStatus]:
    """One status per handler, in registration order. `since` (default: 24 hours before the
    database's now) bounds `dead_lettered_since`. Reads only."""
    dialect = session.get_bind().dialect.name
    now = await session.scalar(select(database_time(dialect)))
    assert now is not None
    workers = await live_worker_counts(session)
    last_hour = await outcome_totals(session, now - LAST_HOUR)
    dead = await outcome_totals(session, since or now - DEFAULT_SINCE)
    statuses = []
    for handler in handlers:
        status = HandlerStatus(
            name=handler.name,
            purpose=handler.purpose.name.lower(),
            enabled=handler.enabled,
            disabled_reason=handler.disabled_reason,
            table=handler.table,
            problem=handler.spec_error,
            live_workers=None if workers is None else workers.get(handler.name, 0),
            last_hour=None if last_hour is None else last_hour.get(handler.name, OutcomeTotals()),
            dead_lettered_since=0
            if dead is None
            else dead.get(handler.name, OutcomeTotals()).dead_lettered,
        )
        if handler.spec is not None:
            await _read_table(session, handler, status, now)
        statuses.append(status)
    return statuses


async def _read_table(
    session: AsyncSession, handler: RegisteredHandler, status: HandlerStatus, now: datetime
) -> None:
    spec = handler.spec
    assert spec is not None
    model: Any = spec.model
    if not await table_exists(session, model):
        status.problem = f"table {handler.table} does not exist (run its migrations)"
        return
    live = not_deleted(model)
    counts = StatusCounts()
    for state in ItemState:
        count = await count_rows(session, model, in_state(spec, state), *live)
        setattr(counts, state.value, count.value)
        if not count.exact:
            counts.estimated.append(state)
    status.counts = counts
    moment = database_time(session.get_bind().dialect.name)
    status.expired_leases = (
        await session.scalar(
            select(func.count()).select_from(model).where(expired_lease(spec, moment), *live)
        )
        or 0
    )
    if hasattr(model, "created_at"):
        oldest = await session.scalar(
            select(func.min(model.created_at)).where(in_state(spec, ItemState.QUEUED), *live)
        )
        if oldest is not None:
            status.oldest_queued_age_seconds = max((now - oldest).total_seconds(), 0.0)
    status.last_error = await _last_error(session, handler, live)


async def _last_error(session: AsyncSession, handler: RegisteredHandler, live: Any) -> str | None:
    spec = handler.spec
    assert spec is not None
    model: Any = spec.model
    latest = select(model.last_error).where(
        in_state(spec, ItemState.FAILED), model.last_error.is_not(None), *live
    )
    if hasattr(model, "updated_at"):
        latest = latest.order_by(model.updated_at.desc())
    result: str | None = await session.scalar(latest.limit(1))
    return result
