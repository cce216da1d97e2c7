"""The whole `myapp status` answer: the schema, every handler's status, and what needs an
operator's attention (the command exits non-zero when anything does)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from myapp.operations.handlers import HandlerStatus, handler_statuses
from myapp.operations.registry import RegisteredHandler
from myapp.operations.schema import SchemaState


class StatusReport(BaseModel):
    database: str
    """The connection string, password masked."""
    database_schema: SchemaState
    since: datetime
    handlers: list[HandlerStatus]
    attention: list[str]
    """Empty when all is well."""


async def status_report(
    session: AsyncSession,
    handlers: Sequence[RegisteredHandler],
    *,
    database: str,
    schema: SchemaState,
    since: datetime,
) -> StatusReport:
    statuses = await handler_statuses(session, handlers, since=since)
    return StatusReport(
        database=database,
        database_schema=schema,
        since=since,
        handlers=statuses,
        attention=attention(schema, statuses, since),
    )


def attention(schema: SchemaState, statuses: Sequence[HandlerStatus], since: datetime) -> list[str]:
    """What an operator must look at: a schema not at head, dead letters since `since`, expired
    leases that no live worker will take over, an enabled handler whose table cannot be read."""
    reasons = [] if schema.at_head else [f"Database {schema.describe()}"]
    for status in statuses:
        if status.dead_lettered_since:
            reasons.append(
                f"{status.name}: {status.dead_lettered_since} dead-lettered since "
                f"{since:%Y-%m-%d %H:%M} UTC"
            )
        if status.expired_leases and not status.live_workers:
            reasons.append(
                f"{status.name}: {status.expired_leases} expired leases and no live worker "
                "to take them over"
            )
        if status.enabled and status.problem:
            reasons.append(f"{status.name}: {status.problem}")
    return reasons
