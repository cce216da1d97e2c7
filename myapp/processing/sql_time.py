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

from sqlalchemy import ColumnElement, Interval, String, func, literal, type_coerce

from myapp.processing.claim_columns import UtcDateTime

NO_OFFSET = timedelta(0)
SQLITE_TIME_FORMAT = "%Y-%m-%d %H:%M:%f"
SQLITE_MICROSECONDS_PAD = "000"  # %f has milliseconds; UtcDateTime text has microseconds


def database_time(dialect_name: str, offset: timedelta = NO_OFFSET) -> ColumnElement[datetime]:
    """The database's current time plus `offset`, as SQL; `offset` is a bind parameter."""
    if dialect_name == "postgresql":
        moment = func.statement_timestamp() + literal(offset, Interval())
        return type_coerce(moment, UtcDateTime())
    if dialect_name == "sqlite":
        # "+300.000 seconds": SQLite keeps time in whole milliseconds.
        modifier = literal(f"{offset.total_seconds():+.3f} seconds", String())
        text = func.strftime(SQLITE_TIME_FORMAT, "now", modifier, type_=String())
        return type_coerce(text.concat(SQLITE_MICROSECONDS_PAD), UtcDateTime())
    raise ValueError(f"no SQL for the current time on the {dialect_name!r} database")


def bound_time(value: datetime) -> ColumnElement[datetime]:
    """A time given by the caller's clock, as a bind parameter typed like `database_time`."""
    return literal(value, UtcDateTime())
