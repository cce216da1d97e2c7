"""The claim's hot path on SQLite and PostgreSQL: one statement per spec contents (never mixed up
between specs that differ only in a value), bind parameters for what changes per call, claimed
rows as detached model instances, and acknowledgements as one array parameter on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm.exc import DetachedInstanceError

from myapp.data.models import ProcessingStatus, ProductPhoto
from myapp.processing.claim_sql import claim_statement, owned_update
from myapp.processing.claims import Claims
from tests.data.claim_helpers import Worker, add_photos, database_now, load, photo_spec
from tests.fixtures.clock import FakeClock
from tests.fixtures.statements import Statement, recorded_statements

Factory = async_sessionmaker[AsyncSession]


def test_specs_built_apart_with_the_same_contents_share_one_statement() -> None:
    def spec(prefix: str) -> Any:
        return photo_spec(where=(ProductPhoto.url.like(prefix),), order_by=(ProductPhoto.url,))

    first = claim_statement(spec("a%"), "postgresql", explicit_clock=False)
    assert claim_statement(spec("a%"), "postgresql", explicit_clock=False) is first
    assert claim_statement(spec("b%"), "postgresql", explicit_clock=False) is not first
    assert claim_statement(spec("a%"), "sqlite", explicit_clock=False) is not first
    assert claim_statement(spec("a%"), "postgresql", explicit_clock=True) is not first


def test_acknowledgements_share_a_statement_per_shape_not_per_value() -> None:
    def update(caption: Any) -> Any:
        changes = {ProductPhoto.status: ProcessingStatus.COMPLETED, ProductPhoto.caption: caption}
        return owned_update(photo_spec(), "postgresql", changes)

    first = update("a plain value")
    assert update("another plain value") is first  # plain values are parameters
    assert update(func.upper("a")) is not first  # SQL is part of the statement
    assert update(func.upper("a")) is update(func.upper("a"))
    assert update(func.upper("b")) is not update(func.upper("a"))


def test_a_spec_with_an_unhashable_value_gets_a_statement_per_call() -> None:
    spec = photo_spec(where=(ProductPhoto.url.in_(["a", "b"]),))  # a list: no dict key
    first = claim_statement(spec, "sqlite", explicit_clock=False)
    assert claim_statement(spec, "sqlite", explicit_clock=False) is not first


async def test_specs_differing_only_in_a_filter_value_claim_their_own_rows(
    session_factory: Factory, clock: FakeClock
) -> None:
    a = await add_photos(session_factory, clock, 3, url="https://a.test/1.jpg")
    b = await add_photos(session_factory, clock, 3, url="https://b.test/1.jpg")

    def worker(prefix: str) -> Worker:
        spec = photo_spec(where=(ProductPhoto.url.like(f"https://{prefix}.test/%"),))
        return Worker(session_factory, clock, "w1", spec)

    assert [row.id for row in await worker("a").claim(10)] == a
    assert [row.id for row in await worker("b").claim(10)] == b


@pytest.mark.parametrize("explicit_clock", [True, False], ids=["explicit-clock", "db-clock"])
async def test_the_worker_id_and_lease_of_each_call_are_its_own(
    session_factory: Factory, clock: FakeClock, explicit_clock: bool
) -> None:
    ids = await add_photos(session_factory, clock, 2)
    leases = {"short": timedelta(minutes=1), "long": timedelta(hours=2)}
    before = clock.now if explicit_clock else await database_now(session_factory)
    for worker_id, lease in leases.items():
        async with session_factory() as session:
            claims = Claims(
                session,
                photo_spec(lease=lease),
                worker_id=worker_id,
                clock=clock if explicit_clock else None,
            )
            assert len(await claims.claim(1)) == 1
    after = clock.now if explicit_clock else await database_now(session_factory)

    rows = [await load(session_factory, id) for id in ids]
    for row, (worker_id, lease) in zip(rows, leases.items(), strict=True):
        assert row.locked_by == worker_id
        assert row.locked_until is not None
        assert before + lease <= row.locked_until <= after + lease


async def test_claimed_rows_are_detached_instances_with_every_column_loaded(
    session_factory: Factory, clock: FakeClock
) -> None:
    [id] = await add_photos(session_factory, clock, 1, caption="a caption")
    [item] = await Worker(session_factory, clock, "w1").claim(1)

    state = inspect(item)
    assert state.detached and state.key == inspect(ProductPhoto).identity_key_from_primary_key(
        (id,)
    )
    stored = await load(session_factory, id)
    for attribute in inspect(ProductPhoto).column_attrs:
        assert getattr(item, attribute.key) == getattr(stored, attribute.key), attribute.key
    with pytest.raises(DetachedInstanceError):  # as for a row a session loaded, then let go
        _ = item.product

    async with session_factory() as session:  # a handler may add it to its own session
        session.add(item)
        item.caption = "changed"
        await session.commit()
    assert (await load(session_factory, id)).caption == "changed"
    async with session_factory() as session:
        assert (await session.execute(select(ProductPhoto.id))).scalars().all() == [id]


async def test_completions_whose_sql_values_differ_only_in_a_literal_write_their_own(
    session_factory: Factory, clock: FakeClock
) -> None:
    ids = await add_photos(session_factory, clock, 3)
    worker = Worker(session_factory, clock, "w1")
    await worker.claim(3)

    await worker.complete(ids[:1], caption=func.upper("a"))
    await worker.complete(ids[1:2], caption=func.upper("b"))
    await worker.complete(ids[2:], caption="plain")

    captions = [(await load(session_factory, id)).caption for id in ids]
    assert captions == ["A", "B", "plain"]


@pytest.fixture
def statements(db_engine: AsyncEngine) -> Iterator[list[Statement]]:
    with recorded_statements(db_engine) as seen:
        yield seen


async def test_acknowledgements_bind_one_array_on_postgresql_and_a_list_on_sqlite(
    session_factory: Factory, clock: FakeClock, statements: list[Statement]
) -> None:
    ids = await add_photos(session_factory, clock, 30)
    worker = Worker(session_factory, clock, "w1")
    await worker.claim(30)
    postgres = session_factory.kw["bind"].dialect.name == "postgresql"

    for call in (worker.extend, worker.complete):
        statements.clear()
        assert await call(ids) == set(ids)
        [(sql, parameters)] = [(s.sql, s.parameters) for s in statements if s.startswith("UPDATE")]
        if postgres:
            assert "= ANY (" in sql or "= ANY(" in sql
            arrays = [value for value in parameters if isinstance(value, list)]
            assert len(arrays) == 1 and len(arrays[0]) == len(ids)
            assert len(parameters) < 10  # not one per id
        else:
            assert " IN (" in sql and len(parameters) >= len(ids)
    assert {(await load(session_factory, id)).status for id in ids} == {ProcessingStatus.COMPLETED}


async def test_a_claim_in_a_transaction_the_caller_opened_joins_it_and_commits(
    session_factory: Factory, clock: FakeClock
) -> None:
    ids = await add_photos(session_factory, clock, 2)
    async with session_factory() as session:
        await session.execute(select(ProductPhoto.id))  # the caller's transaction is open
        claims = Claims(session, photo_spec(), worker_id="w1")
        assert [row.id for row in await claims.claim(2)] == ids
        assert not session.in_transaction()
        assert await claims.complete(ids) == set(ids)
    assert {(await load(session_factory, id)).status for id in ids} == {ProcessingStatus.COMPLETED}
