"""Which database errors mean "the database is away, try again later", and riding one out.

`is_database_unavailable` recognises connection-level failures, `is_transient_database_error`
also the conflicts a retry resolves (serialization failures, deadlocks). Both look through the
whole chain of an error (`__cause__`, `__context__`, SQLAlchemy's `.orig`) and import no driver:
PostgreSQL errors are recognised by their SQLSTATE (asyncpg and psycopg both carry it), closed
asyncpg connections and SQLite failures by their message.

`DatabaseOutage` is what a long-running loop keeps while the database is away: one warning when
the outage starts, one line when it ends, and a capped, jittered backoff between attempts.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator

from loguru import logger
from sqlalchemy import exc as sa_exc
from tenacity import RetryCallState, Retrying, wait_exponential, wait_random
from tenacity.wait import wait_base

# PostgreSQL SQLSTATEs: class 08 is "connection exception"; the others are the server shutting
# down, crashing, starting up, or full.
CONNECTION_EXCEPTION_CLASS = "08"
UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
# serialization_failure, deadlock_detected: the transaction lost a race; running it again works.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
# asyncpg raises a bare InterfaceError (no SQLSTATE) when a call meets a closed connection, and
# an InternalClientError when a call starts while the server's goodbye to a terminated backend
# is still being read ("cannot switch to state 12; another operation (2) is in progress").
CLOSED_CONNECTION_MESSAGES = ("connection is closed", "connection was closed")
INTERRUPTED_PROTOCOL_MESSAGE = "another operation"
# SQLite reports a missing or unreadable file, another writer's lock and a vanished disk with
# these; its other OperationalErrors ("no such table", syntax errors) are mistakes, not outages.
SQLITE_UNAVAILABLE_MESSAGES = (
    "unable to open database file",
    "database is locked",
    "disk i/o error",
)
# OSErrors about a path are not connection failures (a handler reading a missing local file).
FILESYSTEM_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)

# Where database errors are raised from: SQLAlchemy and the drivers it runs on.
DATABASE_PACKAGES = frozenset({"sqlalchemy", "asyncpg", "aiosqlite", "sqlite3", "psycopg"})

# Backoff between attempts while the database is away: 0.5 s, 1 s, 2 s ... capped at 30 s, each
# plus 0-1 s at random so that many workers do not all retry at the same instant.
FIRST_RETRY_DELAY_S = 0.5
MAX_RETRY_DELAY_S = 30.0
RETRY_JITTER_S = 1.0

_URL_PASSWORD = re.compile(r"(?P<keep>[a-z][a-z0-9+.-]*://[^/:@\s]*:)[^@\s]*@", re.IGNORECASE)


def is_database_unavailable(error: BaseException) -> bool:
    """True when `error` (or anything in its chain) says the database cannot be reached now:
    refused, reset or closed connections, a server shutting down or restarting, a terminated
    backend, DNS failures, timeouts, SQLAlchemy's invalidated connections and OperationalErrors,
    SQLite's "unable to open database file" and "database is locked"."""
    return any(_is_unavailable(link) for link in error_chain(error))


def is_transient_database_error(error: BaseException) -> bool:
    """`is_database_unavailable`, or a serialization failure or deadlock: a retry may succeed."""
    return is_database_unavailable(error) or any(
        sqlstate(link) in RETRYABLE_SQLSTATES for link in error_chain(error)
    )


def raised_by_database(error: BaseException) -> bool:
    """True when `error` came from the database: a SQLAlchemy or DB-API error is in its chain,
    or it was raised through a database driver (asyncpg's refused connection is a plain OSError,
    as is an HTTP client's, so its traceback tells them apart)."""
    return any(
        isinstance(link, sa_exc.SQLAlchemyError | sqlite3.Error)
        or sqlstate(link) is not None
        or _through_database_code(link)
        for link in error_chain(error)
    )


def database_away(error: BaseException) -> bool:
    """The database cannot be reached, and the error came from talking to it (an HTTP
    client's refused connection is an OSError too, but no outage of ours)."""
    return is_database_unavailable(error) and raised_by_database(error)


def worth_retrying(error: BaseException) -> bool:
    """A database error that the same write may not meet again moments later."""
    return is_transient_database_error(error) and raised_by_database(error)


def error_chain(error: BaseException) -> Iterator[BaseException]:
    """`error` and every error behind it: `.orig` (SQLAlchemy), `__cause__`, `__context__`."""
    seen: set[int] = set()
    pending = [error]
    while pending:
        link = pending.pop(0)
        if id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        for behind in (getattr(link, "orig", None), link.__cause__, link.__context__):
            if isinstance(behind, BaseException):
                pending.append(behind)


def sqlstate(error: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE an error carries (asyncpg: `sqlstate`, psycopg: `pgcode`)."""
    code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    return code if isinstance(code, str) else None


def describe_database_error(error: BaseException) -> str:
    """One line for logs: the driver's own error type and message, without the SQL statement
    and parameters SQLAlchemy adds, and with any URL password masked."""
    cause = error
    while True:
        behind = getattr(cause, "orig", None)
        if behind is None and type(cause).__module__.startswith("sqlalchemy"):
            behind = cause.__cause__
        if not isinstance(behind, BaseException):
            break
        cause = behind
    message = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    text = f"{type(cause).__name__}: {message}" if message else type(cause).__name__
    return _URL_PASSWORD.sub(r"\g<keep>***@", text)


def _is_unavailable(error: BaseException) -> bool:
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, sa_exc.DisconnectionError):
        return True
    if isinstance(error, sqlite3.Error):
        return any(part in str(error).lower() for part in SQLITE_UNAVAILABLE_MESSAGES)
    if isinstance(error, sa_exc.OperationalError):
        # DB-API: "errors related to the database's operation". SQLite's are judged above.
        return not isinstance(error.orig, sqlite3.Error)
    code = sqlstate(error)
    if code is not None:
        return code.startswith(CONNECTION_EXCEPTION_CLASS) or code in UNAVAILABLE_SQLSTATES
    if type(error).__name__ == "InterfaceError":
        return any(part in str(error).lower() for part in CLOSED_CONNECTION_MESSAGES)
    if type(error).__name__ == "InternalClientError":
        return INTERRUPTED_PROTOCOL_MESSAGE in str(error).lower()
    return isinstance(error, OSError) and not isinstance(error, FILESYSTEM_ERRORS)


def _through_database_code(error: BaseException) -> bool:
    frame = error.__traceback__
    while frame is not None:
        module = str(frame.tb_frame.f_globals.get("__name__", ""))
        if module.partition(".")[0] in DATABASE_PACKAGES:
            return True
        frame = frame.tb_next
    return False


def _retry_wait() -> wait_base:
    return wait_exponential(multiplier=FIRST_RETRY_DELAY_S, max=MAX_RETRY_DELAY_S) + wait_random(
        0, RETRY_JITTER_S
    )


class DatabaseOutage:
    """The state of a loop whose database may go away: say so once, back off, say when it is
    back. Not thread-safe; one per loop."""

    def __init__(self, wait: wait_base | None = None) -> None:
        self._wait = wait or _retry_wait()
        self._attempts = 0
        self._since: float | None = None

    @property
    def down(self) -> bool:
        return self._since is not None

    def failed(self, error: BaseException) -> None:
        """Record a failed attempt: the first one of an outage logs a warning, later ones
        only a debug line."""
        self._attempts += 1
        if self._since is None:
            self._since = time.monotonic()
            logger.warning(
                "Database unreachable: {}; retrying with backoff", describe_database_error(error)
            )
        else:
            logger.debug(
                "Database still unreachable (attempt {}): {}",
                self._attempts,
                describe_database_error(error),
            )

    def recovered(self) -> None:
        """An attempt worked: if the database was away, log how long for, and reset."""
        if self._since is None:
            return
        seconds = time.monotonic() - self._since
        logger.info(
            "Database reachable again after {:.1f} s ({} failed attempts)", seconds, self._attempts
        )
        self._since = None
        self._attempts = 0

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt: grows with each failure of this outage."""
        state = RetryCallState(Retrying(wait=self._wait), fn=None, args=(), kwargs={})
        state.attempt_number = max(self._attempts, 1)
        return float(self._wait(state))
