"""Helpers for the wake-up tests: a recording `on_wake`, plain SQL from another connection (not
the app's engine), and a user's own claimable table."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import String
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from myapp.processing import ClaimColumns, ClaimSpec, UtcDateTime

# Generous: timed assertions are flaky on a shared machine; the benchmark holds the real figures.
WAKE_TIMEOUT_S = 1.0
QUIET_S = 0.5
ANY_NAME = object()


class Wakes:
    """An `on_wake` that records (monotonic time, name) and lets a test wait for a call."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, str | None]] = []
        self._changed = asyncio.Event()

    def __call__(self, name: str | None) -> None:
        self.calls.append((time.monotonic(), name))
        self._changed.set()

    def since(self, moment: float, name: object = ANY_NAME) -> list[str | None]:
        return [n for at, n in self.calls if at >= moment and (name is ANY_NAME or n == name)]

    async def wait(
        self, moment: float, name: object = ANY_NAME, within: float = WAKE_TIMEOUT_S
    ) -> float:
        """Seconds from `moment` to the first call at or after it (with `name`, if given)."""
        async with asyncio.timeout(within):
            while True:
                for at, n in self.calls:
                    if at >= moment and (name is ANY_NAME or n == name):
                        return at - moment
                self._changed.clear()
                await self._changed.wait()


async def execute_plainly(db_url: str, *statements: str) -> None:
    """Run SQL on a connection of its own, as another program would: plain asyncpg on
    PostgreSQL, the stdlib sqlite3 module on SQLite; each statement commits."""
    url = make_url(db_url)
    if url.get_backend_name() == "postgresql":
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        connection = await asyncpg.connect(dsn)
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()
        return

    def run() -> None:
        connection = sqlite3.connect(url.database or "", isolation_level=None, timeout=30)
        try:
            for statement in statements:
                connection.execute(statement)
        finally:
            connection.close()

    await asyncio.to_thread(run)


def insert_photo(id: uuid.UUID, *, status: str = "Queued", **sql_values: str) -> str:
    """A product_photos INSERT both databases accept (the id in the form SQLite stores);
    `sql_values` are more columns, as SQL literals."""
    values = {
        "id": f"'{id.hex}'",
        "url": f"'https://images.test/{id.hex}.jpg'",
        "status": f"'{status}'",
        **sql_values,
    }
    return f"INSERT INTO product_photos ({', '.join(values)}) VALUES ({', '.join(values.values())})"


class UserBase(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime()}


class UserJob(ClaimColumns, UserBase):
    """A user's own claimable table: its own status column and values, no soft delete."""

    __tablename__ = "user_jobs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    state: Mapped[str] = mapped_column(String(20), default="new")


def user_job_spec(**options: Any) -> ClaimSpec[UserJob]:
    return ClaimSpec(
        model=UserJob,
        status=UserJob.state,
        queued="new",
        started="busy",
        completed="done",
        failed="dead",
        **options,
    )
