"""The claim protocol's own transactions go straight to asyncpg (driver_statement.py): the same
SQL, the same values in and out as through SQLAlchemy, and a dead connection is replaced."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, Uuid, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.sql.compiler import SQLCompiler

from myapp.data.models import ProductPhoto
from myapp.processing.claims import Claims
from myapp.processing.driver_statement import DriverPath, DriverStatement
from myapp.processing.transient import database_away
from tests.data.claim_helpers import Worker, add_photos, load, photo_spec
from tests.fixtures.clock import FakeClock
from tests.fixtures.statements import recorded_statements
from tests.multiworker.support import connect

Factory = async_sessionmaker[AsyncSession]
on_postgresql = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
ASYNCPG = postgresql.asyncpg.dialect()  # type: ignore[attr-defined]


@on_postgresql
async def test_claims_and_acknowledgements_of_their_own_go_straight_to_asyncpg(
    session_factory: Factory, db_engine: AsyncEngine, clock: FakeClock
) -> None:
    """Each statement's first call goes through SQLAlchemy (its result describes the columns),
    later ones straight to the driver."""
    worker = Worker(session_factory, clock, "w1")
    for queued in (3, 5):  # then the two released in the first round, and three more
        ids = await add_photos(session_factory, clock, 3)
        with recorded_statements(db_engine) as seen:
            assert len(await worker.claim(10)) == queued
            assert await worker.complete(ids[:1]) == set(ids[:1])
            assert await worker.extend(ids[2:]) == set(ids[2:])
            assert await worker.release(ids[1:]) == set(ids[1:])

    assert [s.source for s in seen if s.startswith("UPDATE")] == ["driver"] * 4


@on_postgresql
async def test_inside_the_callers_transaction_sqlalchemy_sends_them(
    session_factory: Factory, db_engine: AsyncEngine, clock: FakeClock
) -> None:
    ids = await add_photos(session_factory, clock, 2)
    with recorded_statements(db_engine) as seen:
        async with session_factory() as session:
            claims = Claims(session, photo_spec(), worker_id="w1", clock=clock)
            await session.execute(text("SELECT 1"))  # the caller's transaction: joined
            assert len(await claims.claim(2)) == 2  # (and committed: one call, one transaction)
            await session.execute(text("SELECT 1"))
            assert await claims.complete(ids) == set(ids)

    assert [s.source for s in seen if s.startswith("UPDATE")] == ["sqlalchemy"] * 2


@on_postgresql
async def test_claimed_rows_are_what_sqlalchemy_loads_for_them(
    session_factory: Factory, db_engine: AsyncEngine, clock: FakeClock
) -> None:
    worker = Worker(session_factory, clock, "w1")
    await add_photos(session_factory, clock, 1)
    await worker.claim(1)  # through SQLAlchemy, which describes the columns
    ids = await add_photos(session_factory, clock, 4, last_error="before", caption="c")
    before = datetime.now(UTC)

    with recorded_statements(db_engine) as seen:
        claimed = await worker.claim(4)

    assert [s.source for s in seen] == ["driver"]

    assert [item.id for item in claimed] == ids  # the spec's order
    columns = [column.key for column in ProductPhoto.__table__.columns]
    for item in claimed:
        loaded = await load(session_factory, item.id)
        for key in columns:
            mine, theirs = getattr(item, key), getattr(loaded, key)
            assert mine == theirs and type(mine) is type(theirs), key
        # `updated_at` has a Python `onupdate` (utc_now): computed for this call, not frozen
        assert loaded.updated_at >= before - timedelta(seconds=1)


@on_postgresql
async def test_a_connection_killed_under_a_claim_is_replaced(
    session_factory: Factory, db_url: str, clock: FakeClock
) -> None:
    await add_photos(session_factory, clock, 3)
    worker = Worker(session_factory, clock, "w1")
    for _ in range(2):  # described, and the pool holds a connection
        assert len(await worker.claim(1)) == 1
    admin = await connect(db_url)
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    assert killed >= 1

    with pytest.raises(Exception) as failure:
        await worker.claim(1)
    assert database_away(failure.value)
    assert len(await worker.claim(1)) == 1  # a new connection, not the dead one again


def photo_update() -> Any:
    return update(ProductPhoto.__table__).values(caption="x").returning(ProductPhoto.id)


def test_only_asyncpg_and_only_a_statement_made_to_be_reused_take_the_direct_path() -> None:
    returning = [ProductPhoto.id.type]
    reused = DriverPath(photo_update(), returning, reusable=True)
    assert reused.compiled(sqlite.aiosqlite.dialect(), {}) is None  # type: ignore[attr-defined]
    assert reused.compiled(ASYNCPG, {}) is not None
    once = DriverPath(photo_update(), returning, reusable=False)
    assert once.compiled(ASYNCPG, {}) is None


def test_an_onupdate_value_is_computed_for_each_call() -> None:
    calls = iter(range(1, 100))
    table = Table(
        "t",
        MetaData(),
        Column("id", Uuid, primary_key=True),
        Column("n", Integer, onupdate=lambda: next(calls)),
        Column("fixed", Integer, onupdate=7),
        Column("v", Integer),
    )
    statement = update(table).values(v=1).returning(table.c.id)
    compiled = DriverStatement.compile(statement, [table.c.id.type], ASYNCPG, {})
    assert compiled is not None
    first, second = compiled.arguments({}), compiled.arguments({})
    assert sorted(first[:3], key=str) != sorted(second[:3], key=str)  # n moved on
    assert 7 in first and 7 in second


def test_an_onupdate_that_reads_the_execution_context_keeps_the_sqlalchemy_path() -> None:
    table = Table(
        "t",
        MetaData(),
        Column("id", Uuid, primary_key=True),
        Column("v", Integer),
        Column("w", Integer, onupdate=lambda context: context.get_current_parameters()["v"]),
    )
    statement = update(table).values(v=1).returning(table.c.id)
    assert DriverStatement.compile(statement, [table.c.id.type], ASYNCPG, {}) is None


def test_parameters_go_through_their_types_and_constants_are_bound_once() -> None:
    spec = photo_spec()
    from myapp.processing.claim_sql import claim_statement

    claim = claim_statement(spec, "postgresql", explicit_clock=True)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    parameters = claim.parameters(10, "w1", timedelta(minutes=5), now)
    compiled = claim.driver.compiled(ASYNCPG, parameters)
    assert compiled is not None
    arguments = compiled.arguments(parameters)
    assert "w1" in arguments and 10 in arguments
    assert now in arguments and now + timedelta(minutes=5) in arguments
    assert "Queued" in arguments and "Started" in arguments  # enum members as their values
    assert all(not isinstance(value, uuid.UUID) for value in arguments)


@on_postgresql
async def test_a_statement_whose_columns_it_cannot_read_keeps_the_sqlalchemy_path(
    session_factory: Factory, db_engine: AsyncEngine, clock: FakeClock
) -> None:
    ids = await add_photos(session_factory, clock, 1)
    statement = (
        update(ProductPhoto.__table__)
        .where(ProductPhoto.id == ids[0])
        .values(caption="x")
        .returning(ProductPhoto.id)
    )
    path = DriverPath(statement, [], reusable=True)  # told of no column: describe() fails

    with recorded_statements(db_engine) as seen:
        for _ in range(2):
            async with db_engine.connect() as connection:
                autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                assert [row[0] for row in await path.rows(autocommit, {}, direct=True)] == ids

    assert [s.source for s in seen if s.startswith("UPDATE")] == ["sqlalchemy"] * 2
    assert path.compiled(ASYNCPG, {}) is None


def test_without_the_compilers_postcompile_step_it_keeps_the_sqlalchemy_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The one private SQLAlchemy call: should a release drop it, nothing breaks."""
    monkeypatch.delattr(SQLCompiler, "_process_parameters_for_postcompile")
    statement = photo_update()
    assert DriverStatement.compile(statement, [ProductPhoto.id.type], ASYNCPG, {}) is None
