"""What handlers finished over spans of minutes, from the per-minute outcome counters."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from myapp.data.models import HandlerOutcomeRow
from myapp.processing.sql_time import bound_time, database_time

MINUTE = timedelta(minutes=1)


class OutcomeTotals(BaseModel):
    succeeded: int = 0
    failed: int = 0
    """Failures that will be retried; those that ended the item are `dead_lettered` only."""
    dead_lettered: int = 0
    average_duration_ms: float | None = None
    max_duration_ms: float | None = None


async def outcome_windows(
    session: AsyncSession, recent: timedelta, since: datetime | timedelta
) -> dict[str, tuple[OutcomeTotals, OutcomeTotals]]:
    """Handler name -> (its totals over the last `recent`, over the time from `since`), by
    the database's clock, in one query. A minute counts when any of it is in the span. The
    counters table must exist."""
    dialect = session.get_bind().dialect.name
    t = HandlerOutcomeRow
    recent_from = database_time(dialect, -recent - MINUTE)
    since_from = (
        database_time(dialect, -since - MINUTE)
        if isinstance(since, timedelta)
        else bound_time(since - MINUTE)
    )
    columns = [*_totals(t.minute > recent_from), *_totals(t.minute > since_from)]
    rows = await session.execute(
        select(t.handler, *columns)
        .where((t.minute > recent_from) | (t.minute > since_from))
        .group_by(t.handler)
    )
    return {handler: (_read(values[:6]), _read(values[6:])) for handler, *values in rows.all()}


def _totals(within: ColumnElement[bool]) -> list[Any]:
    t = HandlerOutcomeRow

    def total(column: Any) -> Any:
        return func.sum(case((within, column), else_=0))

    return [
        total(t.succeeded),
        total(t.failed),
        total(t.dead_lettered),
        total(t.count),
        total(t.total_duration_ms),
        func.max(case((within, t.max_duration_ms), else_=None)),
    ]


def _read(values: list[Any]) -> OutcomeTotals:
    succeeded, failed, dead, count, total, longest = values
    return OutcomeTotals(
        succeeded=succeeded or 0,
        failed=failed or 0,
        dead_lettered=dead or 0,
        average_duration_ms=(total / count) if count else None,
        max_duration_ms=longest if count else None,
    )
