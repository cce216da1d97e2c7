"""Continuous workers woken by their database: a row inserted or requeued by another program, a
`trigger` (what `python -m myapp trigger` sends), and on PostgreSQL a wake-up connection killed
and restored. The poll interval is an hour: only a wake-up can explain a prompt start. On SQLite
and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from myapp.data.claimable_watcher import APPLICATION_NAME
from myapp.data.models import ProcessingStatus, ProductPhoto
from myapp.data.wakeups import EngineWakeups, wake_workers
from myapp.processing import HandlerRegistration, WorkItemProcessingEngine
from tests.data.claim_helpers import add_photos
from tests.data.test_engine_leases import Journal, PhotoHandler, engine_for
from tests.fixtures.clock import FakeClock

Factory = async_sessionmaker[AsyncSession]
ONE_HOUR = timedelta(hours=1)
WAKE_WITHIN_S = 5.0  # generous: a hang, not a speed, fails the test (figures: make bench)


@asynccontextmanager
async def running(
    engine: WorkItemProcessingEngine, url: str
) -> AsyncIterator[WorkItemProcessingEngine]:
    run = asyncio.create_task(engine.run_continuously(ONE_HOUR))
    wakeups = EngineWakeups(url, engine)
    await wakeups.start()
    await asyncio.sleep(0.3)  # the first fetches find nothing; the handlers sleep an hour
    try:
        yield engine
    finally:
        await wakeups.stop()
        engine.request_stop()
        await run


async def started(journal: Journal, ids: Sequence[uuid.UUID]) -> None:
    async with asyncio.timeout(WAKE_WITHIN_S):
        while not set(ids) <= {id for id, _ in journal.started}:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def photos_engine(factory: Factory, journal: Journal) -> WorkItemProcessingEngine:
    return engine_for(factory, type("Woken", (PhotoHandler,), {"journal": journal}))


async def test_a_row_inserted_by_another_program_wakes_the_worker(
    db_url: str, session_factory: Factory, clock: FakeClock
) -> None:
    journal = Journal()
    async with running(photos_engine(session_factory, journal), db_url):
        ids = await add_photos(session_factory, clock, 2)  # another connection's INSERT

        await started(journal, ids)


async def test_a_requeued_row_wakes_the_worker(
    db_url: str, session_factory: Factory, clock: FakeClock
) -> None:
    ids = await add_photos(session_factory, clock, 1, status=ProcessingStatus.FAILED)
    journal = Journal()
    async with running(photos_engine(session_factory, journal), db_url):
        async with session_factory() as session:
            await session.execute(
                update(ProductPhoto).values(status=ProcessingStatus.QUEUED, attempts=0)
            )
            await session.commit()

        await started(journal, ids)


@dataclass
class Inbox:
    """A source that is not a table: only `trigger` can tell the worker it has mail."""

    messages: list[uuid.UUID]
    handled: list[uuid.UUID]


class InboxHandler:
    inbox: Inbox

    async def fetch_work_items(self, max_items: int) -> Sequence[Any]:
        taken, self.inbox.messages[:] = self.inbox.messages[:max_items], []
        return [Message(id) for id in taken]

    async def process(self, item: Any) -> None:
        self.inbox.handled.append(item.id)


@dataclass(frozen=True)
class Message:
    id: uuid.UUID


async def test_trigger_from_another_process_wakes_a_handler_whose_source_is_not_a_table(
    db_url: str, db_engine: AsyncEngine
) -> None:
    inbox = Inbox([], [])
    handler = type("Inboxes", (InboxHandler,), {"inbox": inbox})
    engine = WorkItemProcessingEngine([HandlerRegistration(handler, name="Inbox")])
    async with running(engine, db_url):
        message = uuid.uuid4()
        inbox.messages.append(message)
        await asyncio.sleep(0.3)
        assert inbox.handled == []  # nothing tells the worker...

        await wake_workers(db_engine, "Inbox")  # ...until the CLI's `trigger Inbox`
        async with asyncio.timeout(WAKE_WITHIN_S):
            while inbox.handled != [message]:  # noqa: ASYNC110
                await asyncio.sleep(0.01)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite: no connection
async def test_a_killed_wakeup_connection_comes_back_and_wakes_again(
    session_factory: Factory, clock: FakeClock, db_url: str
) -> None:
    journal = Journal()
    admin = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
    async with running(photos_engine(session_factory, journal), db_url):
        connection = await asyncpg.connect(admin)
        try:
            killed = await connection.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = $1 AND datname = current_database()",
                APPLICATION_NAME,
            )
        finally:
            await connection.close()
        assert killed == 1
        await asyncio.sleep(0.5)  # it reconnects at once

        ids = await add_photos(session_factory, clock, 1)

        await started(journal, ids)
