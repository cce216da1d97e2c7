"""Per-minute, per-handler outcome counters: tallied in memory as items finish, written in
batches.

`OutcomeCounters` is a processing observer (the engine tells it every finished item) and a
hosted service: every `flush_interval` (and on stop) it adds what it tallied to
`myapp_handler_outcomes` in ONE statement (`INSERT ... ON CONFLICT (handler, minute) DO UPDATE
SET succeeded = succeeded + excluded.succeeded, ...`), so every worker adds to the same row of a
minute and an item costs a dict lookup and a few additions, never a write. A flush that fails
(the database is away) keeps its tallies for the next one. At most once an hour a flush also
deletes the minutes older than the retention.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from loguru import logger
from sqlalchemy import delete, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from myapp.data.models import HandlerOutcomeRow
from myapp.processing.observers import Outcome
from myapp.processing.transient import describe_database_error

DEFAULT_FLUSH_INTERVAL = timedelta(seconds=10)
DEFAULT_RETENTION_DAYS = 14
PRUNE_EVERY = timedelta(hours=1)
# SQLite allows 32,766 bind parameters per statement; a row takes 8.
ROWS_PER_STATEMENT = 1000

Clock = Callable[[], float]
"""Seconds since the epoch (`time.time`); tests give their own."""


@dataclass(slots=True)
class Tally:
    succeeded: int = 0
    failed: int = 0
    dead_lettered: int = 0
    count: int = 0
    total_duration_ms: float = 0.0
    max_duration_ms: float = 0.0

    def add(self, other: Tally) -> None:
        self.succeeded += other.succeeded
        self.failed += other.failed
        self.dead_lettered += other.dead_lettered
        self.count += other.count
        self.total_duration_ms += other.total_duration_ms
        self.max_duration_ms = max(self.max_duration_ms, other.max_duration_ms)


class OutcomeCounters:
    """The engine's observer that tallies outcomes, and the hosted service that writes them."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        flush_interval: timedelta = DEFAULT_FLUSH_INTERVAL,
        retention: timedelta = timedelta(days=DEFAULT_RETENTION_DAYS),
        clock: Clock = time.time,
    ) -> None:
        self._engine = engine
        self._flush_interval = flush_interval
        self.retention = retention
        self._clock = clock
        self._pending: dict[int, dict[str, Tally]] = {}  # epoch minute -> handler -> tally
        # The current minute's tallies, and its bounds (epoch seconds): an item looks up only
        # its handler, and the minute is worked out again only when it is over.
        self._minute: dict[str, Tally] = {}
        self._minute_start = self._minute_end = 0.0
        self._pruned_at: float | None = None
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # The observer: the engine's hot path.

    def item_finished(self, handler: str, outcome: Outcome, duration_s: float | None) -> None:
        now = self._clock()
        if not self._minute_start <= now < self._minute_end:
            self._enter_minute(now)
        tally = self._minute.get(handler)
        if tally is None:
            tally = self._minute[handler] = Tally()
        if outcome is Outcome.SUCCEEDED:
            tally.succeeded += 1
        elif outcome is Outcome.FAILED:
            tally.failed += 1
        else:
            tally.dead_lettered += 1
        if duration_s is not None:
            ms = duration_s * 1000.0
            tally.count += 1
            tally.total_duration_ms += ms
            if ms > tally.max_duration_ms:
                tally.max_duration_ms = ms

    def _enter_minute(self, now: float) -> None:
        minute = int(now // 60)
        self._minute_start, self._minute_end = minute * 60.0, minute * 60.0 + 60.0
        self._minute = self._pending.setdefault(minute, {})

    def fetched(self, handler: str, count: int, seconds: float) -> None:
        pass

    def fetch_failed(self, handler: str) -> None:
        pass

    # The hosted service.

    async def start(self) -> None:
        self._task = asyncio.create_task(self._flush_every_interval(), name="outcome-counters")

    async def stop(self) -> None:
        """Stop flushing on a timer and write what is left (started before the processing
        service, so stopped after it: its last items are counted). A flush under way is let
        finish, never cancelled halfway (its counts would be lost)."""
        self._stopping.set()
        if self._task is not None:
            await self._task
        await self.flush()

    async def _flush_every_interval(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._flush_interval.total_seconds()):
                    await self._stopping.wait()
            await self.flush()

    async def flush(self) -> int:
        """Write the tallies (one statement per ROWS_PER_STATEMENT rows); prune at most once
        per PRUNE_EVERY. Returns the rows written; a failure keeps them for the next flush."""
        async with self._lock:
            pending, self._pending = self._pending, {}
            self._minute_end = self._minute_start  # the next item starts the minute afresh
            try:
                await self._write(pending)
            except Exception as error:
                self._keep(pending)
                logger.warning(
                    "Could not write the outcome counters: {}", describe_database_error(error)
                )
                return 0
            await self._prune_if_due()
            return sum(len(tallies) for tallies in pending.values())

    async def _write(self, pending: dict[int, dict[str, Tally]]) -> None:
        rows = [
            _row(handler, minute, tally)
            for minute, tallies in pending.items()
            for handler, tally in tallies.items()
        ]
        if not rows:
            return
        async with self._engine.begin() as connection:
            for start in range(0, len(rows), ROWS_PER_STATEMENT):
                chunk = rows[start : start + ROWS_PER_STATEMENT]
                await connection.execute(upsert(connection.dialect.name, chunk))

    def _keep(self, pending: dict[int, dict[str, Tally]]) -> None:
        for minute, tallies in pending.items():
            kept = self._pending.setdefault(minute, {})
            for handler, tally in tallies.items():
                kept.setdefault(handler, Tally()).add(tally)

    async def _prune_if_due(self) -> None:
        now = self._clock()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY.total_seconds():
            return
        self._pruned_at = now
        try:
            await self.prune(datetime.fromtimestamp(now, UTC) - self.retention)
        except Exception as error:
            logger.warning(
                "Could not prune the outcome counters: {}", describe_database_error(error)
            )

    async def prune(self, before: datetime) -> int:
        """Delete the minutes that start before `before`; how many rows went."""
        statement = delete(HandlerOutcomeRow).where(HandlerOutcomeRow.minute < before)
        async with self._engine.begin() as connection:
            result = await connection.execute(statement)
        return int(result.rowcount)


def _row(handler: str, minute: int, tally: Tally) -> dict[str, Any]:
    return {
        "handler": handler,
        "minute": datetime.fromtimestamp(minute * 60, UTC),
        "succeeded": tally.succeeded,
        "failed": tally.failed,
        "dead_lettered": tally.dead_lettered,
        "count": tally.count,
        "total_duration_ms": tally.total_duration_ms,
        "max_duration_ms": tally.max_duration_ms,
    }


def upsert(dialect_name: str, rows: list[dict[str, Any]]) -> Any:
    """One INSERT ... VALUES (...), (...) ON CONFLICT (handler, minute) DO UPDATE: sums add, the
    maximum stays the largest (GREATEST on PostgreSQL, SQLite's two-argument max)."""
    t = HandlerOutcomeRow
    insert = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
    statement = insert(t).values(rows)
    new = statement.excluded
    larger = func.greatest if dialect_name == "postgresql" else func.max
    summed = ("succeeded", "failed", "dead_lettered", "count", "total_duration_ms")
    changes: dict[str, Any] = {name: getattr(t, name) + new[name] for name in summed}
    changes["max_duration_ms"] = larger(t.max_duration_ms, new.max_duration_ms)
    return statement.on_conflict_do_update(index_elements=["handler", "minute"], set_=changes)
