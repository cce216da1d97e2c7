"""Apply the packaged alembic migrations programmatically (`python -m myapp db upgrade`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from loguru import logger
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from myapp.data.database import create_engine, redact_url
from myapp.data.errors import DatabaseStartupError, UnversionedSchemaError
from myapp.data.models import Base

ALEMBIC_INI = Path(__file__).with_name("alembic.ini")
SCRIPT_LOCATION = Path(__file__).with_name("migrations")
# Workers starting together on one PostgreSQL migrate one at a time (any constant will do).
MIGRATION_LOCK_KEY = 0x6D79617070  # "myapp"

T = TypeVar("T")


def alembic_config(url: str) -> Config:
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    # configparser treats % as interpolation: a URL-encoded password must survive it.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("")).get_current_head()


async def upgrade_to_head(url: str) -> None:
    """Bring the database at `url` to the newest revision (creating it from scratch if empty).

    Our tables without migration history raise UnversionedSchemaError: upgrading would try to
    create them again."""
    await _run_sync(url, _upgrade, url, transaction=True)


async def stamp_head(url: str) -> str:
    """Record a database whose tables predate migrations as being at the newest revision, if
    they match it; returns that revision. Anything else raises DatabaseStartupError: tables that
    differ (UnversionedSchemaError), no tables, or history already there."""
    return await _run_sync(url, _stamp, url, transaction=True)


async def current_revision(url: str) -> str | None:
    """The revision the database is at; None for a database never migrated."""
    return await _run_sync(url, _current_revision)


async def schema_drift(url: str) -> list[Any]:
    """What `alembic check` would report: differences between the models and the database.
    Empty when the migrations create exactly what the models declare."""
    return await _run_sync(url, _compare)


async def _run_sync(url: str, work: Callable[..., T], *args: Any, transaction: bool = False) -> T:
    """Run alembic's synchronous `work(connection, *args)` on a short-lived engine."""
    engine = create_engine(url)
    try:
        async with engine.begin() if transaction else engine.connect() as connection:
            return await connection.run_sync(work, *args)
    finally:
        await engine.dispose()


def _upgrade(connection: Connection, url: str) -> None:
    _lock(connection)
    tables = _our_tables(connection)
    if tables and _current_revision(connection) is None:
        raise UnversionedSchemaError(url, tables, matches_newest=not _differences(connection))
    logger.bind(database=redact_url(url)).info("Applying database migrations up to head")
    config = alembic_config(url)
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _stamp(connection: Connection, url: str) -> str:
    _lock(connection)
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
    config = alembic_config(url)
    config.attributes["connection"] = connection
    command.stamp(config, "head")
    logger.bind(database=redact_url(url)).info("Recorded the tables as revision {}", head)
    return str(head)


def _lock(connection: Connection) -> None:
    """Workers starting together on one PostgreSQL migrate one at a time."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})


def _our_tables(connection: Connection) -> list[str]:
    return sorted(set(inspect(connection).get_table_names()) & set(Base.metadata.tables))


def _differences(connection: Connection) -> list[Any]:
    """How our tables differ from the models; other applications' tables are not ours to judge."""
    ours = set(Base.metadata.tables)
    return [
        diff
        for diff in _compare(connection)
        if not (isinstance(diff, tuple) and diff[0] == "remove_table" and diff[1].name not in ours)
    ]


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _compare(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))
