"""The database goes away while the service runs, and comes back: one warning, no traceback per
cycle, one line when it is back, and every row queued before or during the outage ends
Completed (items in flight when it went are processed again: at-least-once).

PostgreSQL goes away for real: the service reaches it through a TCP proxy on loopback that
cuts every connection and stops listening (reset connections, then refused ones), then listens
again on the same port. SQLite goes away as it does in practice: another process holds the
write lock (a backup, a script) for longer than the busy timeout, so writes fail with
"database is locked" until it lets go.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import pytest
import sqlalchemy
from sqlalchemy import func, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from tenacity import wait_fixed

from myapp.data import database
from myapp.data.database import close_session, create_engine, create_session_factory
from myapp.data.models import ProcessingStatus, ProductPhoto
from myapp.processing import (
    ClaimingHandler,
    ClaimSpec,
    HandlerRegistration,
    WorkItemProcessingEngine,
    scoped,
)
from myapp.processing.hosting import BackgroundProcessingService
from myapp.processing.transient import DatabaseOutage
from tests.data.claim_helpers import add_photos, photo_spec
from tests.fixtures.clock import FakeClock
from tests.fixtures.logs import LogCapture

# Short enough that an item whose acknowledgement was lost is claimed again within the test.
LEASE = timedelta(seconds=1)
POLL_INTERVAL = timedelta(milliseconds=50)
RETRY_WAIT_S = 0.1
SQLITE_BUSY_TIMEOUT_MS = 100
FAILED_ATTEMPTS_DURING_OUTAGE = 3
GUARD_S = 30
UNREACHABLE = "Database unreachable"
BACK = "Database reachable again"
FETCH_ERROR = "Error fetching work items from handler Photos"
CYCLE_ERROR = "Error during background processing cycle"


class Work:
    """What every PhotoHandler instance did; `gate` holds `process` while it is clear."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        self.started: list[uuid.UUID] = []
        self.processed: list[uuid.UUID] = []


class PhotoHandler(ClaimingHandler[ProductPhoto]):
    def __init__(self, *, work: Work, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.work = work

    def claim_spec(self) -> ClaimSpec[ProductPhoto]:
        return photo_spec(lease=LEASE)

    async def process(self, item: ProductPhoto) -> None:
        self.work.started.append(item.id)
        await self.work.gate.wait()
        self.work.processed.append(item.id)


class Outage(Protocol):
    """Takes the service's database away and brings it back; queues rows meanwhile."""

    service_url: str

    async def begin(self) -> None: ...

    async def queue(self, count: int) -> list[uuid.UUID]: ...

    async def end(self) -> None: ...


# --- PostgreSQL: a proxy that cuts and refuses connections ------------------------------------


class TcpProxy:
    """Forwards a loopback port to the server. `stop()` aborts every connection through it (a
    reset, as when a server or a network goes) and closes the port; `start()` listens again on
    the same port."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._forwarding: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._open):
            writer.transport.abort()
        await asyncio.gather(*self._forwarding, return_exceptions=True)
        await self._server.wait_closed()

    async def _forward(self, client: asyncio.StreamReader, to_client: asyncio.StreamWriter) -> None:
        self._open.add(to_client)
        try:
            server, to_server = await asyncio.open_connection(*self.target)
        except OSError:
            to_client.transport.abort()
            self._open.discard(to_client)
            return
        self._open.add(to_server)
        pipes = asyncio.gather(_pipe(client, to_server), _pipe(server, to_client))
        self._forwarding.add(pipes)
        try:
            await pipes
        except OSError:
            pass  # a reset: the other side is aborted below
        finally:
            for writer in (to_client, to_server):
                writer.transport.abort()
                self._open.discard(writer)
            self._forwarding.discard(pipes)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.transport.abort()


class PostgresOutage:
    def __init__(self, db_url: str, rows: async_sessionmaker[AsyncSession]) -> None:
        real = make_url(db_url)
        self.proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432)
        self.real_url = real
        self.rows = rows
        self.service_url = ""

    async def open(self) -> None:
        await self.proxy.start()
        self.service_url = self.real_url.set(port=self.proxy.port).render_as_string(
            hide_password=False
        )

    async def begin(self) -> None:
        await self.proxy.stop()

    async def queue(self, count: int) -> list[uuid.UUID]:
        return await add_photos(self.rows, FakeClock(), count)  # straight to the server

    async def end(self) -> None:
        await self.proxy.start()

    async def close(self) -> None:
        await self.proxy.stop()


# --- SQLite: another writer holds the lock ------------------------------------------------------


class SqliteOutage:
    def __init__(self, db_url: str) -> None:
        self.service_url = db_url
        path = make_url(db_url).database
        self.locker = sqlalchemy.create_engine(
            f"sqlite:///{path}",
            isolation_level="AUTOCOMMIT",  # BEGIN and COMMIT are ours
            connect_args={"check_same_thread": False},  # used from worker threads
        )
        self.connection: sqlalchemy.Connection | None = None

    async def begin(self) -> None:
        def lock() -> sqlalchemy.Connection:
            connection = self.locker.connect()
            connection.exec_driver_sql("BEGIN IMMEDIATE")  # waits out a claim in progress
            return connection

        self.connection = await asyncio.to_thread(lock)

    async def queue(self, count: int) -> list[uuid.UUID]:
        """Rows written by the lock holder: the service sees them when it lets go."""
        assert self.connection is not None
        ids = [uuid.uuid4() for _ in range(count)]
        rows = [{"id": id, "url": f"https://images.test/{id}.jpg"} for id in ids]
        await asyncio.to_thread(self.connection.execute, insert(ProductPhoto), rows)
        return ids

    async def end(self) -> None:
        assert self.connection is not None
        await asyncio.to_thread(self.connection.exec_driver_sql, "COMMIT")
        await asyncio.to_thread(self.connection.close)

    async def close(self) -> None:
        self.locker.dispose()


@pytest.fixture
async def outage(
    db_url: str,
    session_factory: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Outage]:
    if db_url.startswith("sqlite"):
        monkeypatch.setattr(database, "SQLITE_BUSY_TIMEOUT_MS", SQLITE_BUSY_TIMEOUT_MS)
        sqlite = SqliteOutage(db_url)
        yield sqlite
        await sqlite.close()
        return
    postgres = PostgresOutage(db_url, session_factory)
    await postgres.open()
    yield postgres
    await postgres.close()


# --- The service under test ---------------------------------------------------------------------


def photo_service(engine: AsyncEngine, work: Work) -> BackgroundProcessingService:
    sessions = create_session_factory(engine)
    registration = HandlerRegistration(
        lambda: PhotoHandler(
            work=work,
            session=scoped(sessions, close=close_session),
            worker_id="w1",
            clock=lambda: datetime.now(UTC),
        ),
        name="Photos",
    )
    return BackgroundProcessingService(
        WorkItemProcessingEngine([registration], outage=DatabaseOutage()),
        poll_interval=POLL_INTERVAL,
    )


async def eventually(condition: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + GUARD_S
    while asyncio.get_running_loop().time() < deadline:
        result = condition()
        if await result if inspect.isawaitable(result) else result:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"not within {GUARD_S} s: {what}")


async def completed(rows: async_sessionmaker[AsyncSession], ids: Sequence[uuid.UUID]) -> bool:
    async with rows() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(ProductPhoto)
            .where(ProductPhoto.id.in_(ids), ProductPhoto.status == ProcessingStatus.COMPLETED)
        )
    return count == len(ids)


async def test_the_service_rides_out_a_database_outage_and_loses_nothing(
    outage: Outage,
    session_factory: async_sessionmaker[AsyncSession],
    logs: LogCapture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The real fetch backoff (0.5 s doubling to 60 s) is tested in test_outage.py.
    monkeypatch.setattr("myapp.processing.refill.FETCH_ERROR_BACKOFF", wait_fixed(RETRY_WAIT_S))
    rows, work = session_factory, Work()
    engine = create_engine(outage.service_url)
    service = photo_service(engine, work)
    await service.start()
    try:
        before = await add_photos(rows, FakeClock(), 3)
        await eventually(lambda: completed(rows, before), "rows queued at the start completed")
        work.gate.clear()  # the next rows stay in flight...
        in_flight = await add_photos(rows, FakeClock(), 2)
        await eventually(lambda: set(in_flight) <= set(work.started), "in flight")

        await outage.begin()  # ...while the database goes away
        work.gate.set()
        await eventually(
            lambda: len(logs.containing(FETCH_ERROR)) >= FAILED_ATTEMPTS_DURING_OUTAGE,
            "the service kept trying",
        )
        during = await outage.queue(3)
        await outage.end()

        everything = [*before, *in_flight, *during]
        await eventually(lambda: completed(rows, everything), "every row completed")
    finally:
        await service.stop()
        await engine.dispose()

    assert [r.level for r in logs.containing(UNREACHABLE)] == ["WARNING"]
    assert [r.level for r in logs.containing(BACK)] == ["INFO"]
    fetch_failures = logs.containing(FETCH_ERROR)
    assert len(fetch_failures) >= FAILED_ATTEMPTS_DURING_OUTAGE
    assert all(r.level == "DEBUG" and r.exception is None for r in fetch_failures)
    assert not logs.containing(CYCLE_ERROR)
    assert set(everything) <= set(work.processed)
