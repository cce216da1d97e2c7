"""When a worker counts as alive: stopped workers never do; others while their heartbeat is
recent.

A worker refreshes its row every `heartbeat_seconds` (myapp.data.worker_heartbeat), with the
database's clock. It is stale once STALE_AFTER_HEARTBEATS refreshes in a row are missing: the
margin a lease gets (renewed three times within its length). Compare with the database's time
too (`database_now` below, or `myapp.processing.sql_time.database_time` in a query), never a
worker's own clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from myapp.processing.sql_time import database_time

STALE_AFTER_HEARTBEATS = 3


def stale_after(heartbeat_interval: timedelta) -> timedelta:
    """How old a heartbeat may be before its worker counts as gone."""
    return heartbeat_interval * STALE_AFTER_HEARTBEATS


def worker_is_live(
    last_heartbeat_at: datetime,
    stopped_at: datetime | None,
    now: datetime,
    heartbeat_interval: timedelta,
) -> bool:
    """True for a worker that has not stopped and whose last heartbeat is recent enough.
    Pass a row's `timedelta(seconds=row.heartbeat_seconds)` as `heartbeat_interval`."""
    return stopped_at is None and now - last_heartbeat_at <= stale_after(heartbeat_interval)


async def database_now(connection: AsyncConnection) -> datetime:
    """The database's time: what `last_heartbeat_at` is written with and compared against."""
    query = select(database_time(connection.dialect.name))
    now: datetime = (await connection.execute(query)).scalar_one()
    return now
