"""The wake-up source each database gets, as the engine will use it: another program's commit
of a claimable row wakes the worker, on SQLite and PostgreSQL; stopping leaves nothing behind."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import asyncpg
from sqlalchemy.engine import make_url

from myapp.data.claimable_watcher import APPLICATION_NAME, ClaimableWatcher
from myapp.data.claiming import status_claim_spec
from myapp.data.database import create_engine
from myapp.data.models import ProductPhoto
from myapp.data.sqlite_changes import SqliteChangeWatcher
from myapp.data.wakeups import WakeSource, wakeup_source
from tests.data.wakeup_helpers import UserBase, Wakes, execute_plainly, insert_photo, user_job_spec

PHOTOS = "ImageVectorization"
SPECS = {PHOTOS: status_claim_spec(ProductPhoto)}


def _is_postgres(db_url: str) -> bool:
    return make_url(db_url).get_backend_name() == "postgresql"


async def _started(source: WakeSource, wakes: Wakes) -> None:
    await source.start()
    await wakes.wait(0, None, within=5)  # watching: the catch-up call


def test_each_database_gets_its_source(db_url: str) -> None:
    source = wakeup_source(db_url, SPECS, Wakes())
    expected = ClaimableWatcher if _is_postgres(db_url) else SqliteChangeWatcher
    assert type(source) is expected


async def test_an_insert_by_another_program_wakes_the_worker(db_url: str) -> None:
    wakes = Wakes()
    source = wakeup_source(db_url, SPECS, wakes)
    try:
        await _started(source, wakes)
        for _ in range(3):
            inserted = time.monotonic()
            await execute_plainly(db_url, insert_photo(uuid.uuid4()))
            await wakes.wait(inserted, PHOTOS if _is_postgres(db_url) else None)
    finally:
        await source.stop()


async def test_a_users_own_claimable_table_wakes_the_worker(db_url: str) -> None:
    wakes = Wakes()
    engine = create_engine(db_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(UserBase.metadata.create_all)
        async with wakeup_source(db_url, {"UserJobs": user_job_spec()}, wakes):
            await wakes.wait(0, None, within=5)
            inserted = time.monotonic()
            await execute_plainly(
                db_url, f"INSERT INTO user_jobs (id, state) VALUES ('{uuid.uuid4().hex}', 'new')"
            )
            await wakes.wait(inserted, "UserJobs" if _is_postgres(db_url) else None)
    finally:
        async with engine.begin() as connection:
            await connection.run_sync(UserBase.metadata.drop_all)
        await engine.dispose()


async def test_stopping_leaves_no_task_connection_or_thread(db_url: str) -> None:
    threads_before = set(threading.enumerate())
    wakes = Wakes()
    source = wakeup_source(db_url, SPECS, wakes)
    await _started(source, wakes)
    await source.stop()
    await source.stop()  # twice is harmless

    names = {"ClaimableWatcher", "SqliteChangeWatcher"}
    assert [t for t in asyncio.all_tasks() if t.get_name() in names] == []
    for thread in set(threading.enumerate()) - threads_before:
        thread.join(2)  # aiosqlite's thread ends just after close() returns
    assert set(threading.enumerate()) <= threads_before
    if _is_postgres(db_url):
        assert await _wakeup_connections(db_url) == 0


async def _wakeup_connections(db_url: str) -> int:
    dsn = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn)
    try:
        for _ in range(100):  # a closed backend leaves the list a moment later
            count = await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = $1 AND datname = current_database()",
                APPLICATION_NAME,
            )
            if not count:
                break
            await asyncio.sleep(0.05)
        return int(count)
    finally:
        await connection.close()
