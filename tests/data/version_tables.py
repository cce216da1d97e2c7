"""Reading alembic's version tables, and making a database as the code before
`myapp_alembic_version` left it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from myapp.data.alembic_env import OUR_VERSION_TABLE
from myapp.data.database import create_engine
from myapp.data.migrations import LEGACY_VERSION_TABLE, alembic_config

T = TypeVar("T")


async def on_connection(url: str, work: Callable[[Connection], T]) -> T:
    """`work(connection)` in one committed transaction."""
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            return await connection.run_sync(work)
    finally:
        await engine.dispose()


async def version_rows(url: str, table: str) -> list[str] | None:
    """The revisions `table` records; None when there is no such table."""

    def read(connection: Connection) -> list[str] | None:
        if not inspect(connection).has_table(table):
            return None
        rows = connection.execute(text(f"SELECT version_num FROM {table}"))
        return sorted(row[0] for row in rows)

    return await on_connection(url, read)


async def table_names(url: str) -> set[str]:
    return await on_connection(url, lambda connection: set(inspect(connection).get_table_names()))


async def migrate_the_old_way(url: str, revision: str) -> None:
    """Our migrations up to `revision`, recorded where the code before this change recorded
    them: alembic's default `alembic_version`, written by alembic itself."""

    def migrate(connection: Connection) -> None:
        config = alembic_config(url)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        old = MigrationContext.configure(connection)  # version_table: alembic_version
        old.stamp(ScriptDirectory.from_config(config), revision)
        connection.execute(text(f"DROP TABLE {OUR_VERSION_TABLE}"))

    await on_connection(url, migrate)
    assert await version_rows(url, LEGACY_VERSION_TABLE) == [revision]


async def record_their_revision(url: str, revision: str) -> None:
    """A user's own alembic history in the default `alembic_version` table, as alembic makes it."""

    def record(connection: Connection) -> None:
        connection.execute(
            text(
                f"CREATE TABLE {LEGACY_VERSION_TABLE} (version_num VARCHAR(32) NOT NULL, "
                f"CONSTRAINT {LEGACY_VERSION_TABLE}_pkc PRIMARY KEY (version_num))"
            )
        )
        connection.execute(
            text(f"INSERT INTO {LEGACY_VERSION_TABLE} (version_num) VALUES (:revision)"),
            {"revision": revision},
        )

    await on_connection(url, record)
