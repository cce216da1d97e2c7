"""The body of an alembic `env.py`, ours and a user's: each history in a version table of its own,
each autogenerate looking at its own tables only.

A user's package keeps its own models and migrations next to ours in the same database with an
`env.py` of three lines (docs/your-own-tables.md):

    from myapp.data.alembic_env import run_env
    from pricewatch.models import Base
    run_env(Base.metadata, version_table="pricewatch_alembic_version")

`python -m myapp db upgrade` runs it on its own connection (`config.attributes["connection"]`,
inside the migration lock); the alembic CLI runs it on the URL in `sqlalchemy.url` or
MYAPP_DATABASE_URL.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from myapp.data.database import create_engine
from myapp.data.models import Base

DATABASE_URL_ENVIRONMENT_VARIABLE = "MYAPP_DATABASE_URL"
# Ours, not alembic's default `alembic_version`: that one stays free for a user's own alembic.
OUR_VERSION_TABLE = "myapp_alembic_version"
# Column types of ours that autogenerate writes by their importable name.
PORTABLE_TYPE_MODULES = ("myapp.data.types", "myapp.processing.claim_columns")

NameFilter = Callable[[str | None, str, Any], bool]


def run_env(target_metadata: MetaData, *, version_table: str) -> None:
    """Run the migrations of the script directory alembic is reading, recording them in
    `version_table`; autogenerate and `alembic check` compare `target_metadata`'s tables only,
    so the other histories' tables are never seen as drift."""
    if version_table == OUR_VERSION_TABLE and target_metadata is not Base.metadata:
        raise ValueError(f"{OUR_VERSION_TABLE} holds myapp's own history: name a table of yours")
    options: dict[str, Any] = {
        "target_metadata": target_metadata,
        "version_table": version_table,
        "include_name": only_tables_of(target_metadata),
        "render_item": render_portable_type,
        "render_as_batch": True,  # SQLite needs batch mode for ALTERs; harmless elsewhere
        "compare_type": True,
    }
    if context.is_offline_mode():
        context.configure(url=_url(), literal_binds=True, **options)
        with context.begin_transaction():
            context.run_migrations()
        return
    shared_connection = context.config.attributes.get("connection")
    if shared_connection is not None:
        _run(shared_connection, options)
    else:
        asyncio.run(_run_with_new_engine(_url(), options))


def only_tables_of(metadata: MetaData) -> NameFilter:
    """An alembic `include_name` filter: the database's tables that `metadata` declares."""

    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        return type_ != "table" or name in metadata.tables

    return include_name


def render_portable_type(
    type_: str, obj: Any, autogen_context: AutogenContext
) -> str | Literal[False]:
    """Our portable column types (UtcDateTime, ExactDecimal, ...) as `myapp.data.types.X()`."""
    if type_ == "type" and type(obj).__module__ in PORTABLE_TYPE_MODULES:
        autogen_context.imports.add("import myapp.data.types")
        return f"myapp.data.types.{type(obj).__name__}()"
    return False


def _run(connection: Connection, options: dict[str, Any]) -> None:
    context.configure(connection=connection, **options)
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_new_engine(url: str, options: dict[str, Any]) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run, options)
            await connection.commit()
    finally:
        await engine.dispose()


def _url() -> str:
    url = context.config.get_main_option("sqlalchemy.url") or os.environ.get(
        DATABASE_URL_ENVIRONMENT_VARIABLE
    )
    if not url:
        raise RuntimeError(f"no database URL: set {DATABASE_URL_ENVIRONMENT_VARIABLE}")
    return url
