"""The "anything claimable?" probe: one cheap statement that says, for each claim spec, whether a
claim made now would find a row.

It asks exactly what a claim asks (myapp.processing.claims: Queued, or Started with an expired
lease; due; not soft-deleted; the spec's own filters), as EXISTS over the table's partial claim
index, with the database's clock as `now` like the claim itself. So a row inserted by any
program, a requeue, a retry whose `next_attempt_at` came and a lease that ran out all answer
yes, and rows only another handler's filters accept do not.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, exists, select
from sqlalchemy.sql.expression import Executable

from myapp.processing import ClaimSpec, UtcDateTime
from myapp.processing.claims import claimable_conditions

NOW = "now"


def probe_statement(
    specs: Mapping[str, ClaimSpec[Any]], now: ColumnElement[datetime] | None = None
) -> Executable:
    """`SELECT EXISTS (...) AS "<name>", ...`: one boolean per spec, one round trip for all.
    `now` is the database's time (`sql_time.database_time`), as in the claim; without it the
    statement takes `{NOW: a datetime}` (tests that move time by hand)."""
    when = now if now is not None else bindparam(NOW, type_=UtcDateTime())
    return select(
        *(
            exists().where(*claimable_conditions(spec, when)).label(name)
            for name, spec in specs.items()
        )
    )
