"""What is waiting, running, done and dead in each claimable table (`python -m myapp status`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from myapp.data.models import ProcessingStatus, ProductPhoto, StagingBatch
from myapp.processing.sql_time import bound_time, database_time

CLAIMABLE_MODELS: tuple[type[StagingBatch] | type[ProductPhoto], ...] = (StagingBatch, ProductPhoto)


@dataclass(frozen=True)
class TableStatus:
    table: str
    counts: dict[ProcessingStatus, int]
    expired_leases: int
    """Started rows whose lease ran out: their worker died; the next claim takes them."""
    oldest_queued: datetime | None


async def table_statuses(session: AsyncSession, now: datetime | None = None) -> list[TableStatus]:
    """`now` decides which leases ran out; None (the default): the database's time, the one
    the claims use."""
    moment = bound_time(now) if now is not None else database_time(session.get_bind().dialect.name)
    return [await _table_status(session, model, moment) for model in CLAIMABLE_MODELS]


async def _table_status(
    session: AsyncSession,
    model: type[StagingBatch] | type[ProductPhoto],
    now: ColumnElement[datetime],
) -> TableStatus:
    live = model.deleted_at.is_(None)
    rows = await session.execute(
        select(model.status, func.count()).where(live).group_by(model.status)
    )
    counts = dict.fromkeys(ProcessingStatus, 0)
    counts.update({ProcessingStatus(status): count for status, count in rows.all()})
    expired = await session.scalar(
        select(func.count()).where(
            live, model.status == ProcessingStatus.STARTED, model.locked_until < now
        )
    )
    oldest = await session.scalar(
        select(func.min(model.created_at)).where(live, model.status == ProcessingStatus.QUEUED)
    )
    return TableStatus(model.__tablename__, counts, expired or 0, oldest)
