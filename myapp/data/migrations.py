"""Apply the packaged alembic migrations programmatically (`python -m myapp db upgrade`), then a
user's own (`Database:Migrations`, myapp.data.user_migrations).

Our history is recorded in `myapp_alembic_version`, leaving alembic's default `alembic_version`
to a user's own alembic setup on the same database. A database migrated before that change holds
our revision in `alembic_version`; the first upgrade moves it (`_adopt_legacy_history`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from loguru import logger
from sqlalchemy import MetaData, event, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from myapp.data.alembic_env import OUR_VERSION_TABLE, only_tables_of
from myapp.data.database import create_engine, redact_url
from myapp.data.errors import DatabaseStartupError, UnversionedSchemaError
from myapp.data.models import Base
from myapp.data.user_migrations import UserMigrations, find_user_migrations

ALEMBIC_INI = Path(__file__).with_name("alembic.ini")
SCRIPT_LOCATION = Path(__file__).with_name("migrations")
# Where alembic records history unless told otherwise, and where ours was until it moved.
LEGACY_VERSION_TABLE = "alembic_version"
# Workers starting together on one PostgreSQL migrate one at a time (any constant will do).
MIGRATION_LOCK_KEY = 0x6D79617070  # "myapp"

T = TypeVar("T")


def alembic_config(url: str, script_location: Path = SCRIPT_LOCATION) -> Config:
    """Alembic's config for our scripts (or a user's, at `script_location`) on `url`."""
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(script_location))
    # configparser treats % as interpolation: a URL-encoded password must survive it.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str | None:
    return _scripts().get_current_head()


def known_revisions() -> set[str]:
    """Every revision of ours this code knows: one not among them was made by a newer myapp."""
    return {script.revision for script in _scripts().walk_revisions()}


def recorded_revision(connection: Connection) -> str | None:
    """The revision the database is at (read only, on an open connection); None if never
    migrated."""
    return _recorded_revision(connection)


async def upgrade_to_head(url: str, user_migrations: Sequence[str] = ()) -> None:
    """Bring the database at `url` to our newest revision (creating it from scratch if empty),
    then each package of `user_migrations` (`Database:Migrations`) to its own newest, in order,
    each in a transaction of its own.

    Our tables without migration history raise UnversionedSchemaError: upgrading would try to
    create them again. A package that cannot be found raises ConfigurationError first."""
    packages = [find_user_migrations(module) for module in user_migrations]
    engine = _migration_engine(url)
    try:
        await _in_transaction(engine, _upgrade, url)
        for package in packages:
            await _in_transaction(engine, _upgrade_user, url, package)
    finally:
        await engine.dispose()


async def stamp_head(url: str) -> str:
    """Record a database whose tables predate migrations as being at the newest revision, if
    they match it; returns that revision. Anything else raises DatabaseStartupError: tables that
    differ (UnversionedSchemaError), no tables, or history already there."""
    engine = _migration_engine(url)
    try:
        return await _in_transaction(engine, _stamp, url)
    finally:
        await engine.dispose()


async def current_revision(url: str) -> str | None:
    """The revision the database is at; None for a database never migrated. A database not
    upgraded since our history moved answers from `alembic_version`."""
    return await _run_sync(url, _recorded_revision)


async def schema_drift(url: str, metadata: MetaData = Base.metadata) -> list[Any]:
    """What `alembic check` would report: differences between the models of `metadata` (ours
    unless given) and their tables. Empty when the migrations create exactly what the models
    declare; tables `metadata` does not declare (a user's, the version tables) are not drift."""
    return await _run_sync(url, _compare, metadata)


async def _run_sync(url: str, work: Callable[..., T], *args: Any) -> T:
    """Run alembic's synchronous `work(connection, *args)` on a short-lived engine."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(work, *args)
    finally:
        await engine.dispose()


def _migration_engine(url: str) -> AsyncEngine:
    """A short-lived engine whose transactions hold DDL on SQLite too: Python's sqlite3 begins
    a transaction only before a data change, so a failing migration would stay half applied.
    BEGIN IMMEDIATE also takes SQLite's write lock first, so processes migrating one file
    together wait for each other (the busy timeout), as the advisory lock makes them on
    PostgreSQL."""
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _leave_transactions_to_sqlalchemy)
        event.listen(engine.sync_engine, "begin", _begin_immediate)
    return engine


def _leave_transactions_to_sqlalchemy(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def _begin_immediate(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


async def _in_transaction(engine: AsyncEngine, work: Callable[..., T], *args: Any) -> T:
    async with engine.begin() as connection:
        return await connection.run_sync(work, *args)


def _upgrade(connection: Connection, url: str) -> None:
    _lock(connection)
    _adopt_legacy_history(connection, url)
    tables = _our_tables(connection)
    if tables and _current_revision(connection) is None:
        raise UnversionedSchemaError(url, tables, matches_newest=not _differences(connection))
    logger.bind(database=redact_url(url)).info("Applying database migrations up to head")
    command.upgrade(_config_on(connection, url), "head")


def _upgrade_user(connection: Connection, url: str, package: UserMigrations) -> None:
    _lock(connection)
    logger.bind(database=redact_url(url)).info(
        "Applying the migrations of {} up to head", package.module
    )
    command.upgrade(_config_on(connection, url, package.directory), "head")


def _stamp(connection: Connection, url: str) -> str:
    _lock(connection)
    _adopt_legacy_history(connection, url)
    revision, head = _current_revision(connection), head_revision()
    if revision is not None:
        raise DatabaseStartupError(
            f"Database {redact_url(url)} already has migration history (revision {revision}); "
            "run `python -m myapp db upgrade` instead"
        )
    tables = _our_tables(connection)
    if not tables:
        raise DatabaseStartupError(
            f"Database {redact_url(url)} has none of our tables: run `python -m myapp db upgrade`"
        )
    if _differences(connection):
        raise UnversionedSchemaError(url, tables, matches_newest=False)
    command.stamp(_config_on(connection, url), "head")
    logger.bind(database=redact_url(url)).info("Recorded the tables as revision {}", head)
    return str(head)


def _adopt_legacy_history(connection: Connection, url: str) -> None:
    """Move our history from `alembic_version` to OUR_VERSION_TABLE, once; then drop the old
    table, so a user's own alembic may have it. Called under the migration lock, in the
    upgrade's transaction: a second worker waits, then finds nothing to move."""
    revisions = _legacy_history(connection)
    if not revisions:
        return
    command.stamp(_config_on(connection, url), list(revisions))
    connection.execute(text(f"DROP TABLE {LEGACY_VERSION_TABLE}"))
    logger.bind(database=redact_url(url)).info(
        "Moved our migration history (revision {}) from {} to {}",
        ", ".join(revisions),
        LEGACY_VERSION_TABLE,
        OUR_VERSION_TABLE,
    )


def _legacy_history(connection: Connection) -> tuple[str, ...]:
    """Our revisions in `alembic_version`, if the database was migrated before our history
    moved: nothing in our own table yet, our tables present, and only revisions of ours there.
    Anything else in `alembic_version` is someone else's (a user's alembic, whose revision ids
    may look like ours, on a database without our tables): left alone."""
    if _current_revision(connection) is not None or not _our_tables(connection):
        return ()
    revisions = MigrationContext.configure(connection).get_current_heads()
    known = {script.revision for script in _scripts().walk_revisions()}
    return revisions if revisions and set(revisions) <= known else ()


def _recorded_revision(connection: Connection) -> str | None:
    return _current_revision(connection) or next(iter(_legacy_history(connection)), None)


def _lock(connection: Connection) -> None:
    """Workers starting together migrate one at a time: on PostgreSQL by this advisory lock,
    on SQLite by the write lock its transaction took (`_migration_engine`)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})


def _our_tables(connection: Connection) -> list[str]:
    return sorted(set(inspect(connection).get_table_names()) & set(Base.metadata.tables))


def _differences(connection: Connection) -> list[Any]:
    """How our tables differ from our models."""
    return _compare(connection, Base.metadata)


def _current_revision(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": OUR_VERSION_TABLE})
    return context.get_current_revision()


def _compare(connection: Connection, metadata: MetaData) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_name": only_tables_of(metadata)}
    )
    return list(compare_metadata(context, metadata))


def _config_on(connection: Connection, url: str, script_location: Path = SCRIPT_LOCATION) -> Config:
    config = alembic_config(url, script_location)
    config.attributes["connection"] = connection
    return config


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(""))
