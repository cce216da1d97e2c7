"""The database's "now" as SQL, so every worker reads the one clock it shares: the database's.

`database_time(dialect, offset)` is the current time plus `offset`, evaluated by the database,
typed `UtcDateTime` (it compares with and is stored into `UtcDateTime` columns, and comes back
as an aware UTC datetime when selected).

- PostgreSQL: `statement_timestamp() + interval`. Not `now()`: that is the start of the
  transaction, and a caller's session may have opened its transaction long before (a handler's
  reads during `process`). `statement_timestamp()` is one value for the whole statement.
- SQLite: `strftime('%Y-%m-%d %H:%M:%f', 'now', '+N seconds') || '000'`. SQLite has no time
  type: `UtcDateTime` stores naive UTC text `YYYY-MM-DD HH:MM:SS.ffffff` and the comparisons
  are textual, so this must be that exact format (SQLite's `%f` gives milliseconds, hence the
  three zeros). `'now'` is one value for the whole statement. On SQLite the "database clock" is
  the clock of the machine holding the file, which every process using the file shares.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Dialect,
    Interval,
    String,
    bindparam,
    func,
    literal,
    type_coerce,
)
from sqlalchemy.types import TypeDecorator, TypeEngine

from myapp.processing.claim_columns import UtcDateTime

NO_OFFSET = timedelta(0)
SQLITE_TIME_FORMAT = "%Y-%m-%d %H:%M:%f"
SQLITE_MICROSECONDS_PAD = "000"  # %f has milliseconds; UtcDateTime text has microseconds


class TimeOffset(TypeDecorator[timedelta]):
    """A `timedelta` bound as what `database_time` adds: an interval on PostgreSQL, SQLite's
    "+300.000 seconds" modifier text (SQLite keeps time in whole milliseconds)."""

    impl = Interval
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(String() if dialect.name == "sqlite" else Interval())

    def process_bind_param(self, value: timedelta | None, dialect: Dialect) -> Any:
        if value is None or dialect.name != "sqlite":
            return value
        return f"{value.total_seconds():+.3f} seconds"


def offset_parameter(name: str) -> BindParameter[timedelta]:
    """A named offset for `database_time`, given at execution: a statement built once can be
    run with any offset (a claim's lease)."""
    return bindparam(name, type_=TimeOffset())


def database_time(
    dialect_name: str, offset: timedelta | BindParameter[timedelta] = NO_OFFSET
) -> ColumnElement[datetime]:
    """The database's current time plus `offset`, as SQL; `offset` is a bind parameter."""
    amount = offset if isinstance(offset, BindParameter) else literal(offset, TimeOffset())
    if dialect_name == "postgresql":
        return type_coerce(func.statement_timestamp() + amount, UtcDateTime())
    if dialect_name == "sqlite":
        text = func.strftime(SQLITE_TIME_FORMAT, "now", amount, type_=String())
        return type_coerce(text.concat(SQLITE_MICROSECONDS_PAD), UtcDateTime())
    raise ValueError(f"no SQL for the current time on the {dialect_name!r} database")


def bound_time(value: datetime) -> ColumnElement[datetime]:
    """A time given by the caller's clock, as a bind parameter typed like `database_time`."""
    return literal(value, UtcDateTime())
