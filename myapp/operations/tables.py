"""Which tables are there: a read-only command may meet a database whose schema is behind
ours, or a user's table whose migrations have not run, and says so instead of failing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession


async def existing_tables(session: AsyncSession) -> set[str]:
    """The names of the tables in the connection's default schema (one query)."""
    connection = await session.connection()
    names: list[str] = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    return set(names)


async def table_exists(session: AsyncSession, model: Any) -> bool:
    table = inspect(model).local_table
    connection = await session.connection()
    exists: bool = await connection.run_sync(
        lambda sync: inspect(sync).has_table(table.name, schema=table.schema)
    )
    return exists
