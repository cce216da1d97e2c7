"""Alembic environment: async engines for SQLite and PostgreSQL.

The URL comes from the config (`sqlalchemy.url`, set by myapp.data.migrations) or, for the
alembic CLI, from MYAPP_DATABASE_URL. When the API passes an open connection in
`config.attributes["connection"]`, migrations run on it.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection

from myapp.data.database import create_engine
from myapp.data.models import Base

DATABASE_URL_ENVIRONMENT_VARIABLE = "MYAPP_DATABASE_URL"

config = context.config
target_metadata = Base.metadata


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    # Our portable column types live in myapp.data.types; render them from there.
    module = type(obj).__module__
    if type_ == "type" and module in ("myapp.data.types", "myapp.processing.claim_columns"):
        autogen_context.imports.add("import myapp.data.types")
        return f"myapp.data.types.{type(obj).__name__}()"
    return False


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_item=_render_item,
        render_as_batch=True,  # SQLite needs batch mode for ALTERs; harmless elsewhere
        compare_type=True,
    )


def _run(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_new_engine(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get(
        DATABASE_URL_ENVIRONMENT_VARIABLE
    )
    if not url:
        raise RuntimeError(f"no database URL: set {DATABASE_URL_ENVIRONMENT_VARIABLE}")
    return url


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    shared_connection = config.attributes.get("connection")
    if shared_connection is not None:
        _run(shared_connection)
    else:
        asyncio.run(_run_with_new_engine(_url()))
