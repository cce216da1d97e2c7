"""Cookie files stored in plain text before encryption: revision 0002 erases those of finished
batches; a queued one is read once by the worker and erased when its batch completes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from alembic import command
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from myapp.data.database import create_engine, create_session_factory
from myapp.data.migrations import alembic_config, upgrade_to_head
from myapp.data.models import ProcessingStatus, StagingBatch
from tests.fixtures.clock import FakeClock
from tests.scraping.at_rest import database_dump, stored_contents
from tests.scraping.conftest import cookie_file_text
from tests.scraping.pages import sample_orders
from tests.scraping.server import FakeSite
from tests.scraping.test_shein_handler import call, load_batch, options, serve_orders

LEGACY_VALUE = "l3gacy-PLAIN-session-0a1b2c"


async def upgrade_to(url: str, revision: str) -> None:
    def upgrade(connection: Connection) -> None:
        config = alembic_config(url)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(upgrade)
    finally:
        await engine.dispose()


async def test_finished_batches_lose_their_plain_text_files_queued_ones_are_read_once(
    fresh_url: str, clock: FakeClock, site: FakeSite
) -> None:
    await upgrade_to(fresh_url, "0001")
    plain = cookie_file_text(session_value=LEGACY_VALUE)
    rows = {
        status: uuid.uuid4()
        for status in (
            ProcessingStatus.COMPLETED,
            ProcessingStatus.FAILED,
            ProcessingStatus.CANCELLED,
            ProcessingStatus.QUEUED,
        )
    }
    deleted = uuid.uuid4()
    engine = create_engine(fresh_url)
    factory = create_session_factory(engine)
    try:
        async with factory() as session:
            await session.execute(
                insert(StagingBatch),
                [
                    {
                        "id": batch_id,
                        "batch_processor_name": "Shein",
                        "file_hash": f"legacy-{n}",
                        "status": status,
                        "started_at": clock.now,
                        "file_contents": plain,
                    }
                    for n, (status, batch_id) in enumerate(rows.items())
                ]
                + [
                    {
                        "id": deleted,
                        "batch_processor_name": "Shein",
                        "file_hash": "legacy-deleted",
                        "status": ProcessingStatus.QUEUED,
                        "started_at": clock.now,
                        "deleted_at": datetime(2026, 1, 1, tzinfo=UTC),
                        "file_contents": plain,
                    }
                ],
            )
            await session.commit()
        await engine.dispose()

        await upgrade_to_head(fresh_url)

        contents = {status: await stored_contents(factory, rows[status]) for status in rows}
        assert contents == {
            ProcessingStatus.COMPLETED: None,
            ProcessingStatus.FAILED: None,
            ProcessingStatus.CANCELLED: None,
            ProcessingStatus.QUEUED: plain,
        }
        assert await stored_contents(factory, deleted) is None

        serve_orders(site, sample_orders(1))
        opts = options(site)
        (batch,) = await call(factory, clock, opts, "fetch_work_items", 5)
        assert batch.id == rows[ProcessingStatus.QUEUED]
        await call(factory, clock, opts, "process", batch)
        await call(factory, clock, opts, "complete", [batch])

        done = await load_batch(factory, batch.id)
        assert done.status == ProcessingStatus.COMPLETED
        assert all(r.cookies["sessionID_shein"] == LEGACY_VALUE for r in site.requests)
        async with factory() as session:
            left = (await session.scalars(select(StagingBatch.file_contents))).all()
        assert left == [None] * 5
        assert LEGACY_VALUE.encode() not in await database_dump(fresh_url)
    finally:
        await engine.dispose()
