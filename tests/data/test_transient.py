"""is_database_unavailable / is_transient_database_error on errors made by really failing:
a closed port, a silent server, an unknown host, a terminated backend, a locked or unopenable
SQLite file, real serialization failures and deadlocks; and the mistakes they must not match."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from myapp.data import database
from myapp.data.database import create_engine
from myapp.data.models import ProductPhoto
from myapp.processing.transient import (
    describe_database_error,
    is_database_unavailable,
    is_transient_database_error,
    raised_by_database,
)
from tests.fixtures.database import postgres_admin_dsn

SECRET = "s3cr3t-Pa55w0rd-do-not-print"


async def error_of(action: Callable[[], Awaitable[Any]]) -> BaseException:
    try:
        await action()
    except Exception as error:
        return error
    pytest.fail("expected the action to fail")


def free_port() -> int:
    """A loopback port nobody listens on (bound then closed at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def select_one(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


def assert_unavailable(error: BaseException) -> None:
    assert is_database_unavailable(error), repr(error)
    assert is_transient_database_error(error), repr(error)


def assert_not_transient(error: BaseException) -> None:
    assert not is_database_unavailable(error), repr(error)
    assert not is_transient_database_error(error), repr(error)


# --- PostgreSQL away: nobody listening, a silent server, no such host, a killed backend -------


async def test_a_closed_port_is_unavailable_through_sqlalchemy_and_asyncpg() -> None:
    url = f"postgresql://postgres:{SECRET}@127.0.0.1:{free_port()}/postgres"
    engine = create_engine(url)
    try:
        through_engine = await error_of(lambda: select_one(engine))
    finally:
        await engine.dispose()
    direct = await error_of(lambda: asyncpg.connect(asyncpg_dsn(url)))

    assert_unavailable(through_engine)
    assert_unavailable(direct)
    assert raised_by_database(through_engine) and raised_by_database(direct)
    assert SECRET not in describe_database_error(through_engine)


async def test_a_server_that_never_answers_times_out_and_is_unavailable() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts, never speaks

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        error = await error_of(
            lambda: asyncpg.connect(host="127.0.0.1", port=port, user="postgres", timeout=0.2)
        )
    finally:
        server.close()

    assert isinstance(error, TimeoutError)
    assert_unavailable(error)


async def test_an_unknown_host_is_unavailable() -> None:
    engine = create_engine("postgresql://postgres@no-such-host.invalid/postgres")
    try:
        error = await error_of(lambda: select_one(engine))
    finally:
        await engine.dispose()

    assert isinstance(error, socket.gaierror)
    assert_unavailable(error)


async def terminate_backend(pid: int) -> None:
    admin = await asyncpg.connect(postgres_admin_dsn())
    try:
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()


async def killed_mid_query(query: Callable[[], Awaitable[Any]], pid: int) -> BaseException:
    """The error of `query` (a long pg_sleep) when its backend is terminated while it runs."""
    running = asyncio.ensure_future(query())
    await asyncio.sleep(0.2)
    await terminate_backend(pid)
    return await error_of(lambda: running)


LONG_QUERY = "SELECT pg_sleep(30)"


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_a_terminated_backend_is_unavailable(db_url: str) -> None:
    """pg_terminate_backend mid-query: SQLAlchemy (connection invalidated) and asyncpg (admin
    shutdown or lost connection), then asyncpg's closed connection, all say the database is away."""
    engine = create_engine(db_url)
    try:
        async with engine.connect() as connection:
            pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            through_engine = await killed_mid_query(
                lambda: connection.execute(text(LONG_QUERY)), pid
            )
    finally:
        await engine.dispose()
    raw = await asyncpg.connect(asyncpg_dsn(db_url))
    killed = await killed_mid_query(lambda: raw.fetch(LONG_QUERY), raw.get_server_pid())
    closed = await error_of(lambda: raw.fetch("SELECT 1"))

    for error in (through_engine, killed, closed):
        assert_unavailable(error)
    assert isinstance(closed, asyncpg.InterfaceError)


def test_a_server_that_cannot_take_connections_now_is_unavailable() -> None:
    """Starting up (57P03) and too many connections (53300) cannot be made on demand here."""
    assert_unavailable(asyncpg.exceptions.CannotConnectNowError("the database system is starting"))
    assert_unavailable(asyncpg.exceptions.TooManyConnectionsError("too many clients"))


def test_a_call_that_meets_the_goodbye_of_a_terminated_backend_is_unavailable() -> None:
    """Seen when a claim starts on a pooled connection whose backend was just terminated, while
    asyncpg is still reading the server's goodbye (a race: tests/data/test_driver_statement.py
    meets it about one run in three); other internal client errors are not outages."""
    interrupted = "cannot switch to state 12; another operation (2) is in progress"
    assert_unavailable(asyncpg.exceptions.InternalClientError(interrupted))
    assert not is_database_unavailable(asyncpg.exceptions.InternalClientError("unexpected"))


# --- PostgreSQL conflicts: transient, not unavailable ------------------------------------------


@pytest.fixture
async def two_connections(db_url: str) -> AsyncIterator[tuple[AsyncConnection, AsyncConnection]]:
    engine = create_engine(db_url)
    try:
        async with engine.connect() as first, engine.connect() as second:
            yield first, second
    finally:
        await engine.dispose()


async def add_photo(connection: AsyncConnection) -> uuid.UUID:
    id = uuid.uuid4()
    await connection.execute(insert(ProductPhoto).values(id=id, url=f"https://images.test/{id}"))
    await connection.commit()
    return id


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_a_serialization_failure_is_transient_not_unavailable(
    two_connections: tuple[AsyncConnection, AsyncConnection],
) -> None:
    first, second = two_connections
    id = await add_photo(first)
    update = text("UPDATE product_photos SET caption = :caption WHERE id = :id")
    for connection in (first, second):
        await connection.execute(text("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"))
        await connection.execute(text("SELECT caption FROM product_photos"))
    await first.execute(update, {"caption": "first", "id": id})
    await first.commit()
    error = await error_of(lambda: second.execute(update, {"caption": "second", "id": id}))

    assert not is_database_unavailable(error)
    assert is_transient_database_error(error)
    assert "SerializationError" in describe_database_error(error)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_a_deadlock_is_transient_not_unavailable(
    two_connections: tuple[AsyncConnection, AsyncConnection],
) -> None:
    first, second = two_connections
    a, b = await add_photo(first), await add_photo(first)
    update = text("UPDATE product_photos SET caption = 'x' WHERE id = :id")
    await first.execute(update, {"id": a})
    await second.execute(update, {"id": b})
    outcomes = await asyncio.gather(
        first.execute(update, {"id": b}), second.execute(update, {"id": a}), return_exceptions=True
    )

    errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    assert len(errors) == 1
    assert not is_database_unavailable(errors[0])
    assert is_transient_database_error(errors[0])
    assert "DeadlockDetectedError" in describe_database_error(errors[0])


# --- SQLite away: a file that cannot be opened, another writer's lock --------------------------


async def test_a_sqlite_file_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "myapp.db").mkdir()  # a directory where the file should be
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'myapp.db'}")
    try:
        error = await error_of(lambda: select_one(engine))
    finally:
        await engine.dispose()
        # aiosqlite stops the thread of a failed connect without waiting: let it finish while
        # this loop still runs (else it reports "Event loop is closed" during a later test).
        await asyncio.sleep(0.1)

    assert "unable to open database file" in str(error)
    assert_unavailable(error)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_sqlite_file_locked_by_another_writer_is_unavailable(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "SQLITE_BUSY_TIMEOUT_MS", 50)
    locker = sqlite3.connect(make_url(db_url).database or "", isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")  # holds the write lock, as a long backup or script would
    engine = create_engine(db_url)
    try:
        async with engine.connect() as connection:
            error = await error_of(lambda: add_photo(connection))
    finally:
        locker.close()
        await engine.dispose()

    assert "database is locked" in str(error)
    assert_unavailable(error)


# --- Mistakes are not outages, on both databases -----------------------------------------------


async def test_mistakes_are_neither_unavailable_nor_transient(db_engine: AsyncEngine) -> None:
    async with db_engine.connect() as connection:
        id = await add_photo(connection)
        duplicate = await error_of(
            lambda: connection.execute(insert(ProductPhoto).values(id=id, url="u"))
        )
        await connection.rollback()
        no_table = await error_of(lambda: connection.execute(text("SELECT * FROM no_such_table")))
        await connection.rollback()
        syntax = await error_of(lambda: connection.execute(text("SELEC 1")))

    for error in (duplicate, no_table, syntax):
        assert_not_transient(error)
    for error in (ValueError("bad input"), FileNotFoundError(2, "no such file", "photo.jpg")):
        assert_not_transient(error)


def test_the_cause_is_found_behind_other_errors() -> None:
    try:
        try:
            raise ConnectionResetError(104, "Connection reset by peer")
        except OSError as reset:
            raise RuntimeError("could not claim") from reset
    except RuntimeError as wrapped:
        chained = wrapped
    try:
        try:
            raise ConnectionRefusedError(111, "refused")
        except OSError:
            raise KeyError("while handling it") from None
    except KeyError as suppressed:
        context_only = suppressed

    assert_unavailable(chained)
    assert_unavailable(context_only)  # __context__ stays even when `from None` hides it
    assert not raised_by_database(chained)  # refused, but not by a database driver


def test_a_description_is_one_line_without_sql_or_password() -> None:
    url = f"postgresql://app:{SECRET}@db.internal/myapp"
    error = ConnectionRefusedError(111, f"Connect call failed for {url}\nsecond line")

    described = describe_database_error(error)

    assert described == "ConnectionRefusedError: [Errno 111] Connect call failed for " + (
        "postgresql://app:***@db.internal/myapp"
    )
