"""SqliteChangeWatcher on a real SQLite file: a commit by another process is noticed, nothing
else is."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from myapp.data.database import create_engine
from myapp.data.sqlite_changes import SqliteChangeWatcher
from tests.data.wakeup_helpers import QUIET_S, WAKE_TIMEOUT_S, Wakes, insert_photo

sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

COMMITS = 3
WRITER = textwrap.dedent(
    """
    import sqlite3, sys, time
    connection = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
    for statement in sys.argv[2:]:
        time.sleep(0.3)
        connection.execute(statement)
        print(time.monotonic(), flush=True)
    """
)


@pytest.fixture
def wakes() -> Wakes:
    return Wakes()


@pytest.fixture
async def watcher(db_url: str, wakes: Wakes) -> AsyncIterator[SqliteChangeWatcher]:
    async with SqliteChangeWatcher(db_url, wakes) as source:
        await wakes.wait(0, None)  # watching: the catch-up call
        yield source


@sqlite_only
async def test_a_commit_by_another_process_is_noticed(
    db_url: str, watcher: SqliteChangeWatcher, wakes: Wakes
) -> None:
    statements = [insert_photo(uuid.uuid4()) for _ in range(COMMITS)]
    writer = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRITER,
        make_url(db_url).database or "",
        *statements,
        stdout=subprocess.PIPE,
    )
    output, _ = await writer.communicate()
    assert writer.returncode == 0
    # CLOCK_MONOTONIC is one clock for every process on Linux.
    for committed in map(float, output.decode().split()):
        assert await wakes.wait(committed, None) < WAKE_TIMEOUT_S


@sqlite_only
async def test_no_commit_no_wake(db_url: str, watcher: SqliteChangeWatcher, wakes: Wakes) -> None:
    started = time.monotonic()
    engine = create_engine(db_url)
    try:
        async with engine.connect() as connection:  # reading is not committing
            await connection.execute(text("SELECT count(*) FROM product_photos"))
    finally:
        await engine.dispose()
    await asyncio.sleep(QUIET_S)
    assert wakes.since(started) == []


async def test_an_in_memory_database_has_nothing_to_watch(wakes: Wakes) -> None:
    async with SqliteChangeWatcher("sqlite+aiosqlite:///:memory:", wakes):
        await asyncio.sleep(0.2)
    assert wakes.calls == []


async def test_a_missing_file_is_waited_for_not_created(tmp_path: Path, wakes: Wakes) -> None:
    path = tmp_path / "later.db"
    async with SqliteChangeWatcher(f"sqlite+aiosqlite:///{path}", wakes, interval=0.02):
        await asyncio.sleep(0.2)
        assert wakes.calls == []
        assert not path.exists()
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        try:
            async with engine.begin() as connection:
                await connection.execute(text("CREATE TABLE t (x INTEGER)"))
        finally:
            await engine.dispose()
        await wakes.wait(0, None, within=3)  # opened once it exists: the catch-up
    assert path.exists()
