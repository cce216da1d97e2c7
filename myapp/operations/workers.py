"""The workers table, with each worker's liveness by the database's clock (`myapp workers`)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from myapp.data.models import WorkerRow
from myapp.data.worker_liveness import worker_is_live
from myapp.operations.tables import table_exists
from myapp.processing.sql_time import database_time


class WorkerState(StrEnum):
    LIVE = "live"
    STALE = "stale"
    """No heartbeat for several intervals and no graceful stop: it died or cannot reach us."""
    STOPPED = "stopped"


class WorkerInfo(BaseModel):
    id: str
    host: str
    pid: int
    version: str
    state: WorkerState
    started_at: datetime
    last_heartbeat_at: datetime
    heartbeat_age_seconds: float
    stopped_at: datetime | None
    handlers: list[str]
    in_flight: int


async def list_workers(session: AsyncSession) -> list[WorkerInfo] | None:
    """Every worker row, newest start first; None when the table is not there yet (a database
    behind our schema)."""
    if not await table_exists(session, WorkerRow):
        return None
    return await _workers(session)


async def live_worker_counts(session: AsyncSession) -> dict[str, int]:
    """Handler name -> how many live workers run it. The workers table must exist."""
    counts: dict[str, int] = {}
    for worker in await _workers(session):
        if worker.state is WorkerState.LIVE:
            for name in worker.handlers:
                counts[name] = counts.get(name, 0) + 1
    return counts


async def _workers(session: AsyncSession) -> list[WorkerInfo]:
    now = database_time(session.get_bind().dialect.name)
    rows = await session.execute(select(WorkerRow, now).order_by(WorkerRow.started_at.desc()))
    return [_info(row, moment) for row, moment in rows.all()]


def _info(row: WorkerRow, now: datetime) -> WorkerInfo:
    live = worker_is_live(
        row.last_heartbeat_at, row.stopped_at, now, timedelta(seconds=row.heartbeat_seconds)
    )
    if row.stopped_at is not None:
        state = WorkerState.STOPPED
    else:
        state = WorkerState.LIVE if live else WorkerState.STALE
    return WorkerInfo(
        id=row.id,
        host=row.host,
        pid=row.pid,
        version=row.version,
        state=state,
        started_at=row.started_at,
        last_heartbeat_at=row.last_heartbeat_at,
        heartbeat_age_seconds=max((now - row.last_heartbeat_at).total_seconds(), 0.0),
        stopped_at=row.stopped_at,
        handlers=_handler_names(row.handlers),
        in_flight=row.in_flight,
    )


def _handler_names(text: str) -> list[str]:
    try:
        names = json.loads(text)
    except ValueError:
        return []
    return [str(name) for name in names] if isinstance(names, list) else []
