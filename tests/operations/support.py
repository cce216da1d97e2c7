"""Rows for the operator tests: price checks in every state, workers and outcome counters, all
timed by the database's clock."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from myapp.data.models import HandlerOutcomeRow, WorkerRow
from myapp.operations.registry import RegisteredHandler
from myapp.processing.sql_time import database_time
from myapp.processing.work_item import ProcessorPurpose
from tests.operations.user_app import HANDLER_NAME, PriceCheck, price_check_spec

HEARTBEAT_SECONDS = 30.0


def price_checks() -> RegisteredHandler:
    return RegisteredHandler(
        name=HANDLER_NAME,
        purpose=ProcessorPurpose.EXPORT,
        enabled=True,
        disabled_reason=None,
        spec=price_check_spec(),
    )


async def database_now(factory: async_sessionmaker[AsyncSession]) -> datetime:
    async with factory() as session:
        dialect = session.get_bind().dialect.name
        now = await session.scalar(select(database_time(dialect)))
    assert now is not None
    return now


async def add_checks(
    factory: async_sessionmaker[AsyncSession], rows: Sequence[dict[str, Any]]
) -> list[uuid.UUID]:
    """Price checks with the given columns (each gets an id unless it has one)."""
    values = [{"id": uuid.uuid4(), **row} for row in rows]
    async with factory() as session:
        await session.execute(insert(PriceCheck), values)
        await session.commit()
    return [row["id"] for row in values]


async def add_worker(
    factory: async_sessionmaker[AsyncSession],
    worker_id: str,
    handlers: Sequence[str],
    *,
    heartbeat_age: timedelta = timedelta(0),
    stopped: bool = False,
) -> None:
    now = await database_now(factory)
    async with factory() as session:
        session.add(
            WorkerRow(
                id=worker_id,
                host="ops-host",
                pid=4242,
                version="1.0.0",
                started_at=now - timedelta(hours=1),
                last_heartbeat_at=now - heartbeat_age,
                stopped_at=now if stopped else None,
                handlers=json.dumps(list(handlers)),
                in_flight=3,
                heartbeat_seconds=HEARTBEAT_SECONDS,
            )
        )
        await session.commit()


async def add_outcomes(
    factory: async_sessionmaker[AsyncSession],
    handler: str,
    ago: timedelta,
    *,
    succeeded: int = 0,
    failed: int = 0,
    dead_lettered: int = 0,
    durations_ms: Sequence[float] = (),
) -> None:
    now = await database_now(factory)
    minute = (now - ago).replace(second=0, microsecond=0)
    async with factory() as session:
        await session.execute(
            insert(HandlerOutcomeRow),
            [
                {
                    "handler": handler,
                    "minute": minute,
                    "succeeded": succeeded,
                    "failed": failed,
                    "dead_lettered": dead_lettered,
                    "count": len(durations_ms),
                    "total_duration_ms": sum(durations_ms),
                    "max_duration_ms": max(durations_ms, default=0.0),
                }
            ],
        )
        await session.commit()
