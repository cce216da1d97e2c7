"""One fresh PostgreSQL database per test module (random name, dropped after); worker pools that
are always stopped."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.fixtures.database import drop_postgres_database
from tests.multiworker.support import WorkerPool, connect, create_test_database, reset_tables


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    url = create_test_database()  # fails (never skips) when PostgreSQL is down
    try:
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await connect(pg_url)
    try:
        await reset_tables(connection)
        yield connection
    finally:
        await connection.close()


@pytest.fixture
def workers(pg_url: str, tmp_path: Path) -> Iterator[WorkerPool]:
    pool = WorkerPool(pg_url, tmp_path)
    try:
        yield pool
    finally:
        pool.close()
