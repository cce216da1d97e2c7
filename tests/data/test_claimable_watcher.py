"""ClaimableWatcher on a real PostgreSQL: what wakes a worker, what does not, and that the
connection survives being killed."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from loguru import logger
from sqlalchemy.engine import make_url
from tenacity import wait_fixed

from myapp.data.claimable_watcher import APPLICATION_NAME, ClaimableWatcher, send_wakeup
from myapp.data.claiming import status_claim_spec
from myapp.data.database import create_engine
from myapp.data.models import ProductPhoto, StagingBatch
from tests.data.wakeup_helpers import (
    QUIET_S,
    WAKE_TIMEOUT_S,
    UserBase,
    Wakes,
    execute_plainly,
    insert_photo,
    user_job_spec,
)

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)

PHOTOS = "ImageVectorization"
SHEIN = "Shein"
INSERTS = 24
SPECS: dict[str, Any] = {
    PHOTOS: status_claim_spec(ProductPhoto, where=(ProductPhoto.embedding.is_(None),)),
    SHEIN: status_claim_spec(StagingBatch, where=(StagingBatch.batch_processor_name == "Shein",)),
}


@pytest.fixture
def wakes() -> Wakes:
    return Wakes()


@pytest.fixture
async def watcher(db_url: str, wakes: Wakes) -> AsyncIterator[ClaimableWatcher]:
    async with ClaimableWatcher(db_url, SPECS, wakes, reconnect_wait=wait_fixed(0.05)) as source:
        async with asyncio.timeout(5):
            await source.wait_until_watching()
        yield source


async def _admin(db_url: str) -> asyncpg.Connection:
    dsn = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
    return await asyncpg.connect(dsn)


async def test_an_insert_from_a_plain_connection_wakes_its_handler(
    db_url: str, watcher: ClaimableWatcher, wakes: Wakes
) -> None:
    assert wakes.since(0) == [None]  # the catch-up on connecting
    latencies = []
    for _ in range(INSERTS):
        id = uuid.uuid4()
        inserted = time.monotonic()
        await execute_plainly(db_url, insert_photo(id))
        latencies.append(await wakes.wait(inserted, PHOTOS))
        await execute_plainly(
            db_url, f"UPDATE product_photos SET status = 'Completed' WHERE id = '{id}'"
        )
        await asyncio.sleep(0.1)  # let a probe that saw the row before its update go by
    assert max(latencies) < WAKE_TIMEOUT_S
    assert SHEIN not in wakes.since(0)


async def test_a_requeue_wakes(db_url: str, watcher: ClaimableWatcher, wakes: Wakes) -> None:
    id = uuid.uuid4()
    await execute_plainly(db_url, insert_photo(id, status="Failed"))
    requeued = time.monotonic()
    await execute_plainly(
        db_url,
        f"UPDATE product_photos SET status = 'Queued', attempts = 0 WHERE id = '{id}'",
    )
    await wakes.wait(requeued, PHOTOS)


async def test_a_worker_whose_handlers_are_all_busy_skips_its_probes(
    db_url: str, wakes: Wakes
) -> None:
    """While `wanted()` is false nothing is probed (a claimable row wakes no one); the first
    probe after it turns true finds the row."""
    wanted = False
    async with ClaimableWatcher(db_url, SPECS, wakes, wanted=lambda: wanted) as watcher:
        async with asyncio.timeout(5):
            await watcher.wait_until_watching()
        inserted = time.monotonic()
        await execute_plainly(db_url, insert_photo(uuid.uuid4()))
        await asyncio.sleep(QUIET_S)
        assert wakes.since(inserted) == []
        wanted = True
        await wakes.wait(time.monotonic(), PHOTOS)


async def test_changes_that_leave_nothing_claimable_do_not_wake(
    db_url: str, watcher: ClaimableWatcher, wakes: Wakes
) -> None:
    started = time.monotonic()
    await execute_plainly(
        db_url,
        insert_photo(uuid.uuid4(), status="Completed"),
        insert_photo(uuid.uuid4(), status="Started", locked_until="now() + interval '5 minutes'"),
        insert_photo(uuid.uuid4(), next_attempt_at="now() + interval '1 hour'"),  # a retry, later
        insert_photo(uuid.uuid4(), deleted_at="now()"),
        # Another processor's batch: the Shein spec's filter leaves it out.
        "INSERT INTO staging_batches (id, batch_processor_name, file_hash, status) "
        f"VALUES ('{uuid.uuid4()}', 'Other', 'h', 'Queued')",
        "UPDATE product_photos SET caption = 'edited'",
    )
    await asyncio.sleep(QUIET_S)
    assert wakes.since(started) == []


async def test_a_retry_wakes_when_it_comes_due_not_before(
    db_url: str, watcher: ClaimableWatcher, wakes: Wakes
) -> None:
    started = time.monotonic()
    await execute_plainly(
        db_url, insert_photo(uuid.uuid4(), next_attempt_at="now() + interval '600 milliseconds'")
    )
    waited = await wakes.wait(started, PHOTOS, within=0.6 + WAKE_TIMEOUT_S)
    assert waited >= 0.5


async def test_an_expired_lease_wakes(db_url: str, watcher: ClaimableWatcher, wakes: Wakes) -> None:
    started = time.monotonic()
    await execute_plainly(
        db_url,
        insert_photo(uuid.uuid4(), status="Started", locked_until="now() - interval '1 second'"),
    )
    await wakes.wait(started, PHOTOS)


async def test_a_users_own_table_wakes_its_handler(db_url: str, wakes: Wakes) -> None:
    engine = create_engine(db_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(UserBase.metadata.create_all)
        specs = {"UserJobs": user_job_spec()}
        async with ClaimableWatcher(db_url, specs, wakes) as source:
            async with asyncio.timeout(5):
                await source.wait_until_watching()
            busy = time.monotonic()
            await execute_plainly(
                db_url,
                "INSERT INTO user_jobs (id, state, locked_until) "
                f"VALUES ('{uuid.uuid4()}', 'busy', now() + interval '5 minutes')",
            )
            await asyncio.sleep(QUIET_S)
            assert wakes.since(busy) == []
            new = time.monotonic()
            await execute_plainly(
                db_url, f"INSERT INTO user_jobs (id, state) VALUES ('{uuid.uuid4()}', 'new')"
            )
            await wakes.wait(new, "UserJobs")
    finally:
        async with engine.begin() as connection:
            await connection.run_sync(UserBase.metadata.drop_all)
        await engine.dispose()


async def test_send_wakeup_wakes_a_name_or_everything(
    db_url: str, watcher: ClaimableWatcher, wakes: Wakes
) -> None:
    engine = create_engine(db_url)
    try:
        sent = time.monotonic()
        await send_wakeup(engine, "BlobCleanup")
        await wakes.wait(sent, "BlobCleanup")
        sent = time.monotonic()
        await send_wakeup(engine)
        await wakes.wait(sent, None)
    finally:
        await engine.dispose()


async def test_a_killed_connection_reconnects_and_catches_up(
    db_url: str, watcher: ClaimableWatcher, wakes: Wakes
) -> None:
    admin = await _admin(db_url)
    try:
        for _ in range(2):
            killed = time.monotonic()
            assert await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = $1 AND datname = current_database()",
                APPLICATION_NAME,
            )
            await wakes.wait(killed, None, within=5)  # the catch-up: reconnected
            assert watcher.watching
        inserted = time.monotonic()
        await execute_plainly(db_url, insert_photo(uuid.uuid4()))
        await wakes.wait(inserted, PHOTOS)
    finally:
        await admin.close()


async def test_a_failing_probe_is_reported_and_retried(db_url: str, wakes: Wakes) -> None:
    messages: list[str] = []
    sink = logger.add(lambda message: messages.append(str(message)), level="WARNING")
    specs = {"UserJobs": user_job_spec()}  # its table does not exist yet
    engine = create_engine(db_url)
    try:
        async with ClaimableWatcher(db_url, specs, wakes) as source:
            async with asyncio.timeout(5):
                await source.wait_until_watching()
            await asyncio.sleep(0.3)
            assert any("user_jobs" in message for message in messages)
            async with engine.begin() as connection:
                await connection.run_sync(UserBase.metadata.create_all)
            created = time.monotonic()
            await execute_plainly(
                db_url, f"INSERT INTO user_jobs (id, state) VALUES ('{uuid.uuid4()}', 'new')"
            )
            await wakes.wait(created, "UserJobs", within=3)  # failing probes retry each second
            assert source.watching
    finally:
        logger.remove(sink)
        async with engine.begin() as connection:
            await connection.run_sync(UserBase.metadata.drop_all)
        await engine.dispose()


async def test_the_password_never_reaches_the_logs(db_url: str, wakes: Wakes) -> None:
    messages: list[str] = []
    sink = logger.add(lambda message: messages.append(str(message)), level="DEBUG")
    url = make_url(db_url).set(password="s3cret-pw", port=1).render_as_string(hide_password=False)
    try:
        async with ClaimableWatcher(url, SPECS, wakes, reconnect_wait=wait_fixed(0.05)):
            await asyncio.sleep(0.5)  # a few failed connection attempts, each logged
    finally:
        logger.remove(sink)
    assert any("Could not open the wake-up connection" in message for message in messages)
    assert not any("s3cret-pw" in message for message in messages)
