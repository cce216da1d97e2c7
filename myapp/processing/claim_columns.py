"""The columns that make a table claimable, and a UTC datetime type that behaves the same on
PostgreSQL and SQLite."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import DateTime, Dialect, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

DEFAULT_MAX_ATTEMPTS = 5
WORKER_ID_LENGTH = 200


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database.

    PostgreSQL stores `timestamptz`; SQLite has no time zones, so values are stored as naive UTC
    text (which sorts and compares correctly) and come back aware. Naive values are refused:
    a naive datetime is a bug waiting to compare wrongly.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: store timezone-aware UTC datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is UTC:  # asyncpg's timestamptz: nothing to convert
            return value  # type: ignore[no-any-return]
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


class ClaimColumns:
    """Declarative mixin: the lease and retry bookkeeping of a claimable table.

    The status column stays the domain's own; these columns say who holds a row, until when,
    how many attempts were made and why the last one failed. The table needs a UUID `id`
    primary key; a `deleted_at` column, if present, keeps soft-deleted rows from being claimed.
    """

    if TYPE_CHECKING:
        id: Mapped[uuid.UUID]

    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0", sort_order=5)
    max_attempts: Mapped[int] = mapped_column(
        Integer,
        default=DEFAULT_MAX_ATTEMPTS,
        server_default=str(DEFAULT_MAX_ATTEMPTS),
        sort_order=5,
    )
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), sort_order=5)
    locked_by: Mapped[str | None] = mapped_column(String(WORKER_ID_LENGTH), sort_order=5)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), sort_order=5)
    last_error: Mapped[str | None] = mapped_column(Text, sort_order=5)
