"""What handlers finished over a span of minutes, from the per-minute outcome counters."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from myapp.data.models import HandlerOutcomeRow
from myapp.operations.tables import table_exists


class OutcomeTotals(BaseModel):
    succeeded: int = 0
    failed: int = 0
    """Failures that will be retried; those that ended the item are `dead_lettered` only."""
    dead_lettered: int = 0
    average_duration_ms: float | None = None
    max_duration_ms: float | None = None


async def outcome_totals(session: AsyncSession, since: datetime) -> dict[str, OutcomeTotals] | None:
    """Handler name -> its totals over the minutes from `since`'s minute on; None when the
    counters table is not there yet."""
    if not await table_exists(session, HandlerOutcomeRow):
        return None
    t = HandlerOutcomeRow
    minute = since.replace(second=0, microsecond=0)
    rows = await session.execute(
        select(
            t.handler,
            func.sum(t.succeeded),
            func.sum(t.failed),
            func.sum(t.dead_lettered),
            func.sum(t.count),
            func.sum(t.total_duration_ms),
            func.max(t.max_duration_ms),
        )
        .where(t.minute >= minute)
        .group_by(t.handler)
    )
    return {
        handler: OutcomeTotals(
            succeeded=succeeded or 0,
            failed=failed or 0,
            dead_lettered=dead or 0,
            average_duration_ms=(total / count) if count else None,
            max_duration_ms=longest if count else None,
        )
        for handler, succeeded, failed, dead, count, total, longest in rows.all()
    }
