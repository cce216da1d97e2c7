"""A handler's rows, page by page, with what the claim protocol knows of each (`myapp items`).

Only the claim columns are read (id, status, attempts, next attempt, holder, lease end, last
error): a table's own columns may hold secrets (a Shein batch's sealed cookie file) and never
leave it here. Pages follow the id (keyset pagination: `after` is the last id of the page
before), so a page costs the same however deep it is and rows changing status between pages
are neither repeated nor skipped by an offset.
"""

from __future__ import annotations

import string
import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from myapp.operations.registry import RegisteredHandler
from myapp.operations.states import ItemState, in_state, not_deleted, state_of

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
UUID_HEX_DIGITS = 32


class NoTableError(LookupError):
    """The handler claims no table (or it could not be built): it has no items to list."""

    def __init__(self, handler: RegisteredHandler) -> None:
        why = f": {handler.spec_error}" if handler.spec_error else ""
        super().__init__(f"Handler {handler.name} has no claimable table{why}")


class Item(BaseModel):
    id: uuid.UUID
    state: ItemState
    status: str
    """The table's own status value."""
    attempts: int
    max_attempts: int
    next_attempt_at: datetime | None
    locked_by: str | None
    locked_until: datetime | None
    last_error: str | None


class ItemPage(BaseModel):
    handler: str
    table: str
    items: list[Item]
    next_cursor: str | None
    """Pass as `after` for the next page; None on the last page."""


async def list_items(
    session: AsyncSession,
    handler: RegisteredHandler,
    status: ItemState | None = None,
    search: str | None = None,
    limit: int = DEFAULT_LIMIT,
    after: uuid.UUID | str | None = None,
) -> ItemPage:
    """Up to `limit` rows in id order, after the id `after`. `search` matches an id (whole, or
    its first hex digits, dashes optional) or a substring of the last error, case-insensitively."""
    spec = handler.spec
    if spec is None or handler.table is None:
        raise NoTableError(handler)
    t: Any = spec.model
    limit = max(1, min(limit, MAX_LIMIT))
    conditions: list[ColumnElement[bool]] = [*not_deleted(t)]
    if status is not None:
        conditions.append(in_state(spec, status))
    if search:
        conditions.append(_matches(t, search))
    if after is not None:
        conditions.append(t.id > (after if isinstance(after, uuid.UUID) else uuid.UUID(after)))
    columns = (
        t.id,
        spec.status,
        t.attempts,
        t.max_attempts,
        t.next_attempt_at,
        t.locked_by,
        t.locked_until,
        t.last_error,
    )
    rows = (
        await session.execute(select(*columns).where(*conditions).order_by(t.id).limit(limit + 1))
    ).all()
    page = [_item(spec, row) for row in rows[:limit]]
    more = len(rows) > limit
    return ItemPage(
        handler=handler.name,
        table=handler.table,
        items=page,
        next_cursor=str(page[-1].id) if more and page else None,
    )


def _matches(t: Any, search: str) -> ColumnElement[bool]:
    text = search.strip()
    found = [t.last_error.icontains(text, autoescape=True)]
    digits = text.replace("-", "").lower()
    if 0 < len(digits) <= UUID_HEX_DIGITS and all(c in string.hexdigits for c in digits):
        # An id prefix is a range of ids: both databases order UUIDs by their hex digits, and
        # the primary key's index answers it.
        low = uuid.UUID(digits.ljust(UUID_HEX_DIGITS, "0"))
        high = uuid.UUID(digits.ljust(UUID_HEX_DIGITS, "f"))
        found.append(and_(t.id >= low, t.id <= high))
    return or_(*found)


def _item(spec: Any, row: Any) -> Item:
    value = row[1]
    return Item(
        id=row[0],
        state=state_of(spec, value),
        status=str(getattr(value, "value", value)),
        attempts=row[2],
        max_attempts=row[3],
        next_attempt_at=row[4],
        locked_by=row[5],
        locked_until=row[6],
        last_error=row[7],
    )
