"""Async engines and sessions for SQLite (one worker) and PostgreSQL (many workers)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import warnings
from collections.abc import Awaitable
from pathlib import Path
from threading import Thread
from typing import Any
from urllib.parse import quote

import aiosqlite
from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError, SAWarning
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_random

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/myapp.db"
# How long a SQLite writer waits for another writer's lock before "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 30_000
# How long a connection waits before trying again to put a new SQLite file in WAL mode (random
# in this range, so connections racing for the file spread out).
SQLITE_WAL_RETRY_WAIT_S = (0.001, 0.02)
# How long a failed SQLite connect waits for aiosqlite's worker thread to stop (it takes ~1 ms).
AIOSQLITE_STOP_WAIT_S = 5.0
# A pooled PostgreSQL connection idle longer than this is pinged before use; one used more
# recently is not (see _ping_idle_connections).
PING_AFTER_IDLE_S = 1.0
REDACTED = "***"
SECRET_QUERY_PARTS = ("password", "passwd", "pwd", "secret", "token", "key")

_SQLITE_DRIVER = "sqlite+aiosqlite"
_IGNORED_SQLITE_OPTIONS = "Query string argument"
_POSTGRES_DRIVER = "postgresql+asyncpg"
_POSTGRES_SCHEMES = ("postgres", "postgresql", "postgresql+asyncpg", "postgresql+psycopg2")


class UnsupportedDatabaseOptionError(ValueError):
    """The connection string has a query option the database driver does not take."""


def normalize_url(url: str) -> URL:
    """The URL with the async driver this app uses: `postgres://` and `postgresql://` become
    `postgresql+asyncpg://`, `sqlite://` becomes `sqlite+aiosqlite://`."""
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise ValueError(f"not a database URL: {redact_url(url)}") from error
    if parsed.drivername in _POSTGRES_SCHEMES:
        return _asyncpg_ssl(parsed.set(drivername=_POSTGRES_DRIVER))
    if parsed.drivername in ("sqlite", _SQLITE_DRIVER):
        return parsed.set(drivername=_SQLITE_DRIVER)
    raise ValueError(
        f"unsupported database URL {redact_url(url)}: expected sqlite+aiosqlite:// or postgresql://"
    )


def _asyncpg_ssl(url: URL) -> URL:
    """libpq's `?sslmode=require` as asyncpg's `?ssl=require` (same modes): asyncpg takes no
    `sslmode` argument, and URLs copied from other tools carry it."""
    if "sslmode" not in url.query or "ssl" in url.query:
        return url
    mode = url.query["sslmode"]
    return url.difference_update_query(["sslmode"]).update_query_dict({"ssl": mode})


def redact_url(url: str | URL) -> str:
    """The URL with its password masked, in the user part and in query parameters such as
    `?password=`, fit for logs and error messages."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except ArgumentError:
        # Unparseable: where a password would be is unknown, so show only the scheme.
        scheme, separator, _ = str(url).partition("://")
        return f"{scheme}://{REDACTED}" if separator else REDACTED
    query = {
        key: REDACTED if any(part in key.lower() for part in SECRET_QUERY_PARTS) else value
        for key, value in parsed.query.items()
    }
    rendered = parsed.set(query=query).render_as_string(hide_password=True)
    return rendered.replace(quote(REDACTED, safe=""), REDACTED)


def create_engine(url: str, **engine_options: Any) -> AsyncEngine:
    """An async engine for `url`. SQLite: the file's directory is created, WAL journaling, a busy
    timeout and foreign keys are switched on for every connection."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _create_sqlite_engine(parsed, **engine_options)
    engine = _create_async_engine(parsed, **engine_options)
    if not engine_options.get("pool_pre_ping"):
        _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: AsyncEngine) -> None:
    """SQLAlchemy's `pool_pre_ping` on asyncpg costs three round trips (BEGIN, `;`, ROLLBACK)
    at every checkout: a worker checks a connection out for each claim and acknowledgement, and
    the pings were as many round trips as the statements themselves. Only a connection idle for
    PING_AFTER_IDLE_S is pinged here (one a restarted server or a firewall may have dropped); a
    dead one is replaced before use, as pre-ping would. One that dies in the moment between two
    uses fails its statement: SQLAlchemy then renews the pool, a fetch backs off and tries again,
    and an acknowledgement, release or renewal is retried (processing/transient.py)."""

    @event.listens_for(engine.sync_engine, "connect")
    def _connected(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine.sync_engine.pool, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine.sync_engine.pool, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle = time.monotonic() - record.info.get("checked_in_at", 0.0)
        if idle < PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # the pool discards it and checks out another
            raise DisconnectionError(f"a pooled connection idle {idle:.1f}s was dead") from error


async def check_connection(engine: AsyncEngine) -> None:
    """Open a connection and run `SELECT 1`: the database is there and lets us in."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


class LazyAsyncSession(AsyncSession):
    """An `AsyncSession` that builds its `Session` on first use.

    Every work-item scope gets a session, and most no-op or HTTP-only handler calls never touch
    it: creating the `Session` (about 50 us) and closing it was a quarter of the engine's
    per-item CPU with a no-op handler on PostgreSQL. Until something reads any of its state this
    is one small object, and closing it does nothing. It is an `AsyncSession` in every other way
    (isinstance, typing, every method).
    """

    def __init__(self, bind: AsyncEngine | None = None, **options: Any) -> None:
        # AsyncSession.__init__ runs on first use (see __getattr__), with these arguments.
        self._deferred_init: tuple[AsyncEngine | None, dict[str, Any]] | None = (bind, options)

    def __getattr__(self, name: str) -> Any:
        # Python calls this only for an attribute the instance does not have: before first
        # use, that is everything AsyncSession.__init__ sets (sync_session, _proxied, ...).
        deferred = self.__dict__.get("_deferred_init")
        if deferred is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        self._deferred_init = None
        bind, options = deferred
        super().__init__(bind, **options)
        return getattr(self, name)

    @property
    def started(self) -> bool:
        """Whether the `Session` was built (anything used it)."""
        return self._deferred_init is None

    async def close(self) -> None:
        if self.started:
            await super().close()


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: objects stay readable after commit, so fetched items can leave
    # their session (the engine processes them in another scope).
    return async_sessionmaker(engine, class_=LazyAsyncSession, expire_on_commit=False)


def close_session(session: AsyncSession) -> Awaitable[None] | None:
    """Close a work item's session at the end of its scope (rolling back what was not committed);
    None when there is nothing to close, so the scope awaits nothing.

    Nothing to close: a lazy session nothing used, or one that never began a transaction and
    holds no objects (a handler that did not touch the database pays no close).
    """
    if isinstance(session, LazyAsyncSession) and not session.started:
        return None
    if session.in_transaction() or session.identity_map or session.new:
        return session.close()
    return None


def _create_sqlite_engine(url: URL, **engine_options: Any) -> AsyncEngine:
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    connect_args = engine_options.setdefault("connect_args", {})
    connect_args.setdefault("async_creator_fn", _open_aiosqlite)
    with warnings.catch_warnings():
        # SQLAlchemy ignores URL options pysqlite does not take, with a warning: refuse them
        # instead, as asyncpg does, so a misspelt option is seen at start-up.
        warnings.filterwarnings("error", _IGNORED_SQLITE_OPTIONS, SAWarning)
        try:
            engine = _create_async_engine(url, **engine_options)
        except SAWarning as warning:
            refused = str(warning).partition(" and are being ignored")[0]
            raise UnsupportedDatabaseOptionError(refused) from None

    @event.listens_for(engine.sync_engine, "connect")
    def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            # Deleted and overwritten values are zeroed on disk, not left in free space: an
            # erased cookie file must not be readable from the file afterwards.
            cursor.execute("PRAGMA secure_delete=ON")
        finally:
            cursor.close()

    return engine


async def _open_aiosqlite(*args: Any, **kwargs: Any) -> Any:
    """`aiosqlite.connect`, waiting on failure for the worker thread it leaves stopping: else
    that thread may end after the event loop has closed and print a traceback ("Event loop is
    closed") under the one line a command prints for a file it cannot open."""
    connection = aiosqlite.connect(*args, **kwargs)
    # aiosqlite < 0.22: the connection is the thread. Daemon, as SQLAlchemy makes it.
    thread = connection if isinstance(connection, Thread) else connection._thread
    thread.daemon = True
    try:
        opened = await connection
    except Exception:
        await asyncio.to_thread(thread.join, AIOSQLITE_STOP_WAIT_S)
        raise
    try:
        await _use_write_ahead_log(opened)
    except BaseException:
        await opened.close()
        raise
    return opened


async def _use_write_ahead_log(connection: aiosqlite.Connection) -> None:
    """Put the file in WAL mode (a property of the file: only its first connection changes it).

    While another connection holds the write lock (one changing the mode holds it), SQLite
    refuses the change at once instead of waiting with its busy handler: this connection already
    holds a read lock, and waiting could deadlock. So processes opening a new file together got
    "database is locked"; each tries again instead, for as long as a writer waits for a lock."""
    retrying = AsyncRetrying(
        retry=retry_if_exception(_is_busy),
        stop=stop_after_delay(SQLITE_BUSY_TIMEOUT_MS / 1000),
        wait=wait_random(*SQLITE_WAL_RETRY_WAIT_S),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            async with connection.execute("PRAGMA journal_mode=WAL"):
                pass


def _is_busy(error: BaseException) -> bool:
    """SQLITE_BUSY or one of its extended codes (the primary code is the low byte)."""
    code = getattr(error, "sqlite_errorcode", 0) if isinstance(error, sqlite3.Error) else 0
    return code & 0xFF == sqlite3.SQLITE_BUSY
