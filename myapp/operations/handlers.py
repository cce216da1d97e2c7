"""Per registered handler: is it on, what waits, runs, finished and died in its table, which
workers run it and what it did in the last hour (`myapp status`, the dashboard's first page)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import ColumnElement, func, literal, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession

from myapp.data.models import HandlerOutcomeRow, WorkerRow
from myapp.operations.counting import capped_count, estimated_count, is_capped
from myapp.operations.outcomes import OutcomeTotals, outcome_windows
from myapp.operations.registry import RegisteredHandler
from myapp.operations.states import ItemState, expired_lease, in_state, not_deleted
from myapp.operations.tables import existing_tables
from myapp.operations.workers import live_worker_counts
from myapp.processing.claim_columns import UtcDateTime
from myapp.processing.claims import ClaimSpec
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
    database's now) bounds `dead_lettered_since`. Reads only, in few round trips: one
    statement per table (and an EXPLAIN for a count past the exact limit), one for the
    workers, one for the outcome counters."""
    tables = await existing_tables(session)
    workers = await live_worker_counts(session) if WorkerRow.__tablename__ in tables else None
    outcomes = None
    if HandlerOutcomeRow.__tablename__ in tables:
        outcomes = await outcome_windows(session, LAST_HOUR, since or DEFAULT_SINCE)
    statuses = []
    for handler in handlers:
        recent, dead = (outcomes or {}).get(handler.name, (OutcomeTotals(), OutcomeTotals()))
        status = HandlerStatus(
            name=handler.name,
            purpose=handler.purpose.name.lower(),
            enabled=handler.enabled,
            disabled_reason=handler.disabled_reason,
            table=handler.table,
            problem=handler.spec_error,
            live_workers=None if workers is None else workers.get(handler.name, 0),
            last_hour=None if outcomes is None else recent,
            dead_lettered_since=dead.dead_lettered,
        )
        if handler.spec is not None:
            if handler.table in tables:
                await _read_table(session, handler.spec, status)
            else:
                status.problem = f"table {handler.table} does not exist (run its migrations)"
        statuses.append(status)
    return statuses


async def _read_table(session: AsyncSession, spec: ClaimSpec[Any], status: HandlerStatus) -> None:
    """Counts, expired leases, the oldest queued row's age and the last dead letter's error:
    one statement."""
    model: Any = spec.model
    dialect = session.get_bind().dialect.name
    now = database_time(dialect)
    live = not_deleted(model)
    counts = {
        state: capped_count(dialect, model, in_state(spec, state), *live) for state in ItemState
    }
    expired = select(func.count()).select_from(model).where(expired_lease(spec, now), *live)
    oldest: Any = literal(None)
    if hasattr(model, "created_at"):
        oldest = (
            select(func.min(model.created_at))
            .where(in_state(spec, ItemState.QUEUED), *live)
            .scalar_subquery()
        )
    row = (
        await session.execute(
            select(
                now,
                type_coerce(oldest, UtcDateTime()),
                expired.scalar_subquery(),
                _last_error(spec, live),
                *counts.values(),
            )
        )
    ).one()
    moment, first_queued, expired_leases, last_error, *numbers = row
    result = StatusCounts()
    for state, number in zip(counts, numbers, strict=True):
        if is_capped(number):
            number = await estimated_count(session, model, in_state(spec, state), *live)
            result.estimated.append(state)
        setattr(result, state.value, number)
    status.counts = result
    status.expired_leases = expired_leases or 0
    status.last_error = last_error
    if first_queued is not None:
        status.oldest_queued_age_seconds = max((moment - first_queued).total_seconds(), 0.0)


def _last_error(spec: ClaimSpec[Any], live: tuple[ColumnElement[bool], ...]) -> Any:
    model: Any = spec.model
    latest = select(model.last_error).where(
        in_state(spec, ItemState.FAILED), model.last_error.is_not(None), *live
    )
    if hasattr(model, "updated_at"):
        latest = latest.order_by(model.updated_at.desc())
    return latest.limit(1).scalar_subquery()
