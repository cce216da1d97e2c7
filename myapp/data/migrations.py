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
from sqlalchemy import text
from sqlalchemy.engine import Connection

from myapp.data.database import create_engine, redact_url
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
    """Bring the database at `url` to the newest revision (creating it from scratch if empty)."""
    logger.bind(database=redact_url(url)).info("Applying database migrations up to head")
    await _run_sync(url, _upgrade, alembic_config(url), transaction=True)


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


def _upgrade(connection: Connection, config: Config) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _compare(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))
