"""The "anything claimable?" probe: one cheap statement that says, for each claim spec, whether a
claim made now would find a row.

It asks exactly what a claim asks (myapp.processing.claims: Queued, or Started with an expired
lease; due; not soft-deleted; the spec's own filters), as EXISTS over the table's partial claim
index, with the caller's clock as `now` like the claim itself. So a row inserted by any
program, a requeue, a retry whose `next_attempt_at` came and a lease that ran out all answer
yes, and rows only another handler's filters accept do not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, exists, or_, select
from sqlalchemy.sql.expression import Executable

from myapp.processing.claims import ClaimSpec, UtcDateTime

NOW = "now"


def claimable_now(spec: ClaimSpec[Any], now: Any) -> list[ColumnElement[bool]]:
    """The conditions a row must meet to be claimed at `now` (a datetime or a bind parameter).
    Mirrors `Claims._eligible`; tests/data/test_claimable_probe.py holds the two together."""
    t: Any = spec.model
    conditions = [
        spec.status.in_([spec.queued, spec.started]),
        or_(
            spec.status == spec.queued,
            and_(
                spec.status == spec.started,
                or_(t.locked_until.is_(None), t.locked_until < now),
            ),
        ),
        or_(t.next_attempt_at.is_(None), t.next_attempt_at <= now),
        *spec.where,
    ]
    if hasattr(t, "deleted_at"):
        conditions.append(t.deleted_at.is_(None))
    return conditions


def probe_statement(specs: Mapping[str, ClaimSpec[Any]]) -> Executable:
    """`SELECT EXISTS (...) AS "<name>", ...`: one boolean per spec, one round trip for all.
    Execute it with `{NOW: clock()}`."""
    now = bindparam(NOW, type_=UtcDateTime())
    return select(
        *(exists().where(*claimable_now(spec, now)).label(name) for name, spec in specs.items())
    )
