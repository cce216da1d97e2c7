"""A database that cannot be used at start-up, told in one line that names it (password masked).

`database_startup(url)` wraps the first connection a command makes (the migration, or a
`SELECT 1`): a failure to reach, enter or open the database becomes `DatabaseUnavailableError`;
any other error passes through untouched, traceback and all.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence

from myapp.data.database import UnsupportedDatabaseOptionError, redact_url
from myapp.processing.transient import (
    FILESYSTEM_ERRORS,
    describe_database_error,
    error_chain,
    is_database_unavailable,
    sqlstate,
)

# PostgreSQL refusing us: class 28 is "invalid authorization specification" (unknown role, wrong
# password, no pg_hba entry), 3D000 "invalid catalog name" (no such database).
AUTHORIZATION_SQLSTATE_CLASS = "28"
NO_SUCH_DATABASE_SQLSTATE = "3D000"
# asyncpg raises a TypeError from connect() for a URL option it does not know.
UNKNOWN_OPTION_MESSAGE = "connect() got an unexpected keyword argument"
# asyncpg's error for an option it knows with a value it does not (e.g. `?sslmode=bogus`).
BAD_OPTION_ERRORS = ("ClientConfigurationError",)


class DatabaseStartupError(Exception):
    """The database cannot be used; the message is one line fit for the terminal and logs."""


class DatabaseUnavailableError(DatabaseStartupError):
    """The database cannot be reached, refused us, cannot be opened, or its URL has an option
    the driver refuses."""

    def __init__(self, url: str, problem: str, cause: str) -> None:
        self.url = redact_url(url)
        self.problem = problem
        self.cause = cause
        super().__init__(f"Database {self.url} {problem}: {cause}")


class UnversionedSchemaError(DatabaseStartupError):
    """Our tables exist but alembic has no record of them: upgrading would create them again."""

    def __init__(self, url: str, tables: Sequence[str], *, matches_newest: bool) -> None:
        self.url = redact_url(url)
        self.tables = tuple(tables)
        self.matches_newest = matches_newest
        found = (
            f"Database {self.url} has tables ({', '.join(self.tables)}) but no migration history"
        )
        if matches_newest:
            advice = (
                "they match the newest schema: back up the database, then record them as "
                "migrated with `python -m myapp db stamp`"
            )
        else:
            advice = (
                "they differ from the newest schema: back up the database, drop those tables, "
                "run `python -m myapp db upgrade`, then copy the rows you need back"
            )
        super().__init__(f"{found}; {advice}")


@contextlib.contextmanager
def database_startup(url: str) -> Iterator[None]:
    """Inside, errors that say the database at `url` cannot be used become
    `DatabaseUnavailableError` (chained to the original); the rest pass through."""
    try:
        yield
    except DatabaseStartupError:
        raise
    except Exception as error:
        problem = startup_problem(error)
        if problem is None:
            raise
        raise DatabaseUnavailableError(url, problem, describe_database_error(error)) from error


def startup_problem(error: BaseException) -> str | None:
    """What is wrong, in a few words, if `error` means the database cannot be used at all."""
    chain = list(error_chain(error))
    codes = {sqlstate(link) for link in chain} - {None}
    if any(code == NO_SUCH_DATABASE_SQLSTATE for code in codes):
        return "does not exist"
    if any(code and code.startswith(AUTHORIZATION_SQLSTATE_CLASS) for code in codes):
        return "refused the credentials"
    if any(_is_bad_option(link) for link in chain):
        return "has a connection option the driver refuses"
    if any(isinstance(link, FILESYSTEM_ERRORS) for link in chain):
        return "cannot be opened"
    if is_database_unavailable(error):
        local = any(isinstance(link, sqlite3.Error) for link in chain)  # a file, not a server
        return "cannot be opened" if local else "is unreachable"
    return None


def _is_bad_option(error: BaseException) -> bool:
    return (
        isinstance(error, UnsupportedDatabaseOptionError)
        or type(error).__name__ in BAD_OPTION_ERRORS
        or (isinstance(error, TypeError) and UNKNOWN_OPTION_MESSAGE in str(error))
    )
