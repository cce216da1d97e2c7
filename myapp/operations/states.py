"""The four states every claimable table has, whatever its own status column calls them.

A `ClaimSpec` names its table's values for queued, started (shown as running), completed and
failed (dead-lettered); a table may hold other values too (ours: Cancelled), shown as other.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_

from myapp.processing.claims import ClaimSpec


class ItemState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    OTHER = "other"


def state_value(spec: ClaimSpec[Any], state: ItemState) -> Any:
    """The table's own status value for a state (not OTHER)."""
    values = {
        ItemState.QUEUED: spec.queued,
        ItemState.RUNNING: spec.started,
        ItemState.COMPLETED: spec.completed,
        ItemState.FAILED: spec.failed,
    }
    return values[state]


def state_of(spec: ClaimSpec[Any], value: Any) -> ItemState:
    for state in (ItemState.QUEUED, ItemState.RUNNING, ItemState.COMPLETED, ItemState.FAILED):
        if value == state_value(spec, state):
            return state
    return ItemState.OTHER


def in_state(spec: ClaimSpec[Any], state: ItemState) -> ColumnElement[bool]:
    if state is ItemState.OTHER:
        known = [state_value(spec, s) for s in ItemState if s is not ItemState.OTHER]
        condition: ColumnElement[bool] = spec.status.not_in(known)
    else:
        condition = spec.status == state_value(spec, state)
    return condition


def not_deleted(model: Any) -> tuple[ColumnElement[bool], ...]:
    """`deleted_at IS NULL` for a table with soft deletes (its rows are never claimed)."""
    return (model.deleted_at.is_(None),) if hasattr(model, "deleted_at") else ()


def not_held(model: Any, now: ColumnElement[datetime]) -> ColumnElement[bool]:
    """No live lease on the row: never leased, or its lease ran out (by `now`)."""
    return or_(model.locked_until.is_(None), model.locked_until <= now)


def expired_lease(spec: ClaimSpec[Any], now: ColumnElement[datetime]) -> ColumnElement[bool]:
    """Running with a lease that ran out: its worker died; the next claim takes it."""
    return and_(spec.status == spec.started, spec.model.locked_until < now)
