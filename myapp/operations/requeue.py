"""Back to queued: a handler's failed rows, or rows picked by id (`myapp requeue`).

One UPDATE per call (per IDS_PER_STATEMENT ids) whose WHERE holds the guard: no live lease
(`locked_until` empty or past, by the database's clock). A worker claiming or holding a row at
that moment keeps it: on PostgreSQL the UPDATE waits for a claim in progress and then sees the
lease; on SQLite writes take turns. The rows go back with their attempts at 0, due now, no
holder; `last_error` (and a domain error column) is kept, so `items` still says why each one
failed until it fails again or finishes. Then the workers are woken for the handler.

Soft-deleted rows are never touched. A row picked by id may be in any state but held: a
completed row is run again.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from myapp.data.wakeups import wake_workers
from myapp.operations.items import NoTableError
from myapp.operations.registry import RegisteredHandler
from myapp.operations.states import ItemState, in_state, not_deleted, not_held
from myapp.processing.sql_time import database_time

IDS_PER_STATEMENT = 1000


class RequeueError(ValueError):
    """The request cannot be done as asked (no selection, or `--since` on a table without
    `updated_at`)."""


class RequeueResult(BaseModel):
    handler: str
    requeued: list[uuid.UUID]
    held: list[uuid.UUID] = []
    """Ids asked for that a live lease holds: left untouched."""
    not_found: list[uuid.UUID] = []
    """Ids asked for that are not in the table (or soft-deleted)."""


async def requeue(
    session: AsyncSession,
    handler: RegisteredHandler,
    ids: Sequence[uuid.UUID] | None = None,
    failed_since: datetime | None = None,
    *,
    failed: bool = False,
    wake: bool = True,
) -> RequeueResult:
    """Requeue the rows `ids`, or the failed (dead-lettered) rows (`failed=True`, or since
    `failed_since` by `updated_at`); commits, then wakes the workers (`wake`)."""
    spec = handler.spec
    if spec is None:
        raise NoTableError(handler)
    t: Any = spec.model
    failed = failed or failed_since is not None
    if (ids is None) == (not failed):
        raise RequeueError("give ids, or ask for the failed rows, not both")
    now = database_time(session.get_bind().dialect.name)
    guard = [not_held(t, now), *not_deleted(t)]
    changes = {
        spec.status: spec.queued,
        t.attempts: 0,
        t.next_attempt_at: now,
        t.locked_by: None,
        t.locked_until: None,
    }
    if ids is None:
        selection = [in_state(spec, ItemState.FAILED), *_since(t, failed_since)]
        requeued = await _update(session, t, changes, [*selection, *guard])
        result = RequeueResult(handler=handler.name, requeued=requeued)
    else:
        wanted = list(dict.fromkeys(ids))
        requeued = []
        for start in range(0, len(wanted), IDS_PER_STATEMENT):
            chunk = wanted[start : start + IDS_PER_STATEMENT]
            requeued += await _update(session, t, changes, [t.id.in_(chunk), *guard])
        result = await _explain_left(session, handler, wanted, requeued)
    await session.commit()
    if wake and result.requeued:
        await wake_workers(_engine(session), handler.name)
    return result


def _since(t: Any, failed_since: datetime | None) -> list[ColumnElement[bool]]:
    if failed_since is None:
        return []
    if not hasattr(t, "updated_at"):
        raise RequeueError(
            f"table {t.__tablename__} has no updated_at column: requeue all its failed rows, "
            "or pick them by id"
        )
    return [t.updated_at >= failed_since]


async def _update(
    session: AsyncSession, t: Any, changes: dict[Any, Any], where: list[ColumnElement[bool]]
) -> list[uuid.UUID]:
    statement = update(t).where(*where).values(changes).returning(t.id)
    result = await session.execute(statement, execution_options={"synchronize_session": False})
    return list(result.scalars().all())


async def _explain_left(
    session: AsyncSession,
    handler: RegisteredHandler,
    wanted: list[uuid.UUID],
    requeued: list[uuid.UUID],
) -> RequeueResult:
    """Why each id asked for and not requeued was left: held, or not there."""
    t: Any = handler.spec.model if handler.spec else None
    done = set(requeued)
    left = [id for id in wanted if id not in done]
    present: set[uuid.UUID] = set()
    for start in range(0, len(left), IDS_PER_STATEMENT):
        chunk = left[start : start + IDS_PER_STATEMENT]
        rows = await session.scalars(select(t.id).where(t.id.in_(chunk), *not_deleted(t)))
        present.update(rows.all())
    return RequeueResult(
        handler=handler.name,
        requeued=requeued,
        held=[id for id in left if id in present],
        not_found=[id for id in left if id not in present],
    )


def _engine(session: AsyncSession) -> AsyncEngine:
    bind = session.bind
    if not isinstance(bind, AsyncEngine):
        raise TypeError("requeue needs a session bound to an AsyncEngine to wake the workers")
    return bind
