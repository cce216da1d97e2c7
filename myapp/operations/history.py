"""Outcomes over time, for the dashboard's charts: per minute over the last hour and per hour
over the last days, from the per-minute counters (`myapp_handler_outcomes`).

Every series is dense (a bucket for every minute or hour, zeros where nothing finished), oldest
first, so a chart draws it as it is. Hours are summed by the database; only the buckets leave it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from myapp.data.models import HandlerOutcomeRow

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
MINUTES_SHOWN = 60
DEFAULT_HISTORY_DAYS = 7
MAX_HISTORY_DAYS = 31
SQLITE_HOUR_FORMAT = "%Y-%m-%d %H:00:00"


class OutcomeBucket(BaseModel):
    start: datetime = Field(description="The bucket's first moment, UTC.")
    succeeded: int = 0
    failed: int = Field(0, description="Failed attempts that will be retried.")
    dead_lettered: int = Field(0, description="Failures that ended the item's attempts.")


class OutcomeHistory(BaseModel):
    handler: str
    per_minute: list[OutcomeBucket] = Field(description="The last hour, oldest first.")
    per_hour: list[OutcomeBucket] = Field(description="The last days, oldest first.")


async def outcome_history(
    session: AsyncSession,
    handlers: Sequence[str],
    now: datetime,
    days: int = DEFAULT_HISTORY_DAYS,
) -> list[OutcomeHistory]:
    """Each handler's outcomes up to `now`: the last 60 minutes and the last `days` * 24 hours."""
    minutes = _buckets(_floor(now, MINUTE), MINUTE, MINUTES_SHOWN)
    hours = _buckets(_floor(now, HOUR), HOUR, days * 24)
    per_minute = await _sums(session, handlers, minutes[0], HandlerOutcomeRow.minute)
    per_hour = await _sums(session, handlers, hours[0], _hour_of(session))
    return [
        OutcomeHistory(
            handler=name,
            per_minute=_dense(minutes, per_minute.get(name, {})),
            per_hour=_dense(hours, per_hour.get(name, {})),
        )
        for name in handlers
    ]


Sums = dict[str, dict[datetime, tuple[int, int, int]]]


async def _sums(
    session: AsyncSession,
    handlers: Sequence[str],
    since: datetime,
    bucket: ColumnElement[Any] | Any,
) -> Sums:
    row = HandlerOutcomeRow
    statement = (
        select(
            row.handler,
            bucket,
            func.sum(row.succeeded),
            func.sum(row.failed),
            func.sum(row.dead_lettered),
        )
        .where(row.minute >= since, row.handler.in_(list(handlers)))
        .group_by(row.handler, bucket)
    )
    sums: Sums = {}
    for handler, start, succeeded, failed, dead in (await session.execute(statement)).all():
        sums.setdefault(handler, {})[_as_utc(start)] = (
            int(succeeded or 0),
            int(failed or 0),
            int(dead or 0),
        )
    return sums


def _hour_of(session: AsyncSession) -> ColumnElement[Any]:
    minute = HandlerOutcomeRow.minute
    if session.get_bind().dialect.name == "postgresql":
        return func.date_trunc("hour", minute)
    return func.strftime(SQLITE_HOUR_FORMAT, minute)  # UtcDateTime is naive UTC text there


def _as_utc(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _floor(moment: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + (moment.astimezone(UTC) - epoch) // step * step


def _buckets(last: datetime, step: timedelta, count: int) -> list[datetime]:
    return [last - step * (count - 1 - index) for index in range(count)]


def _dense(
    starts: list[datetime], sums: dict[datetime, tuple[int, int, int]]
) -> list[OutcomeBucket]:
    buckets = []
    for start in starts:
        succeeded, failed, dead = sums.get(start, (0, 0, 0))
        buckets.append(
            OutcomeBucket(start=start, succeeded=succeeded, failed=failed, dead_lettered=dead)
        )
    return buckets
