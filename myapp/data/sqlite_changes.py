"""SqliteChangeWatcher: notice, within a poll interval, that another process committed to the
SQLite database (`shein submit`, a user's script), without running any handler's fetch.

A dedicated connection reads `PRAGMA data_version` every DEFAULT_POLL_INTERVAL_S: the value
changes when any OTHER connection commits a change to the file, this process's own engine
included. So while the worker itself writes (claims, acknowledgements) the watcher also wakes
it, at most once per interval; an idle database costs one PRAGMA per interval (figures in
docs/operations.md, "Wake-ups"). SQLite cannot say which table changed: every wake-up is
`on_wake(None)`.

The connection never holds a transaction open (autocommit), so it pins no WAL snapshot and
never delays a checkpoint; it opens the file read-write without creating it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import aiosqlite
from loguru import logger
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential,
    wait_random,
)

from myapp.data.database import normalize_url
from myapp.data.wakeups import OnWake, WakeSource

DEFAULT_POLL_INTERVAL_S = 0.1
REOPEN_MAX_S = 30.0
IN_MEMORY = ("", ":memory:")


class SqliteChangeWatcher(WakeSource):
    def __init__(
        self, url: str, on_wake: OnWake, *, interval: float = DEFAULT_POLL_INTERVAL_S
    ) -> None:
        super().__init__(on_wake)
        database = normalize_url(url).database or ""
        # An in-memory database has no other connection to notice.
        self._uri = None if database in IN_MEMORY else _read_write_uri(database)
        self._interval = interval

    async def _run(self) -> None:
        if self._uri is None:
            return
        while True:
            connection = await self._open(self._uri)
            try:
                await self._watch(connection)
            except Exception as error:  # sqlite3.Error, or aiosqlite's thread gone
                logger.warning("The SQLite change watcher failed ({}); reopening", error)
            finally:
                with contextlib.suppress(Exception):  # closing what may already be broken
                    await connection.close()
            await asyncio.sleep(self._interval)  # a file that keeps failing is not spun on

    async def _open(self, uri: str) -> aiosqlite.Connection:
        retrying = AsyncRetrying(
            wait=wait_exponential(multiplier=self._interval, max=REOPEN_MAX_S)
            + wait_random(0, self._interval),
            retry=retry_if_exception_type((sqlite3.Error, OSError)),
            before_sleep=_log_retry,
        )
        connection: aiosqlite.Connection = await retrying(_connect, uri)
        return connection

    async def _watch(self, connection: aiosqlite.Connection) -> None:
        version = await _data_version(connection)
        self._wake(None)  # catch up: commits before this baseline were not seen
        while True:
            await asyncio.sleep(self._interval)
            current = await _data_version(connection)
            if current != version:
                version = current
                self._wake(None)


async def _connect(uri: str) -> aiosqlite.Connection:
    # Awaited here: aiosqlite.connect returns an awaitable, not a coroutine, and tenacity
    # would hand it back unstarted.
    return await aiosqlite.connect(uri, uri=True, isolation_level=None)


async def _data_version(connection: aiosqlite.Connection) -> int:
    async with connection.execute("PRAGMA data_version") as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


def _read_write_uri(database: str) -> str:
    if database.startswith("file:"):
        return database
    return Path(database).expanduser().resolve().as_uri() + "?mode=rw"


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    delay = state.next_action.sleep if state.next_action else 0.0
    logger.warning(
        "Could not open the SQLite database to watch it (attempt {}): {}; retrying in {:.1f}s",
        state.attempt_number,
        error,
        delay,
    )
