"""Properties of `list_items` on SQLite and PostgreSQL: an id prefix finds exactly the ids that
start with it (dashes and case aside), and pages of any size cover every row once, in order."""

from __future__ import annotations

import asyncio
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from myapp.data.database import create_engine, create_session_factory
from myapp.operations.items import list_items
from tests.operations.support import add_checks, price_checks
from tests.operations.user_app import DONE, PriceCheck, create_user_table

ids = st.lists(st.uuids(), min_size=1, max_size=12, unique=True)
PROPERTY_SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY_SETTINGS
@given(ids=ids, pick=st.integers(min_value=0), length=st.integers(1, 32), upper=st.booleans())
def test_an_id_prefix_finds_exactly_the_ids_it_starts(
    db_url: str, ids: list[uuid.UUID], pick: int, length: int, upper: bool
) -> None:
    hex_id = ids[pick % len(ids)].hex[:length]
    typed = str(uuid.UUID(hex_id.ljust(32, "0")))[: length + hex_id_dashes(length)]
    typed = typed.upper() if upper else typed
    expected = {id for id in ids if id.hex.startswith(hex_id)}

    found = asyncio.run(_search(db_url, ids, typed))

    assert found == expected


@PROPERTY_SETTINGS
@given(ids=ids, limit=st.integers(1, 13))
def test_pages_of_any_size_cover_every_row_once_in_order(
    db_url: str, ids: list[uuid.UUID], limit: int
) -> None:
    assert asyncio.run(_all_pages(db_url, ids, limit)) == sorted(ids)


def hex_id_dashes(length: int) -> int:
    """How many dashes a canonical UUID has within its first `length` hex digits."""
    return sum(1 for position in (8, 12, 16, 20) if length > position)


async def _search(db_url: str, ids: list[uuid.UUID], text: str) -> set[uuid.UUID]:
    engine = create_engine(db_url)
    factory = create_session_factory(engine)
    try:
        await _fill(engine, factory, ids)
        async with factory() as session:
            page = await list_items(session, price_checks(), search=text, limit=1000)
        return {item.id for item in page.items}
    finally:
        await engine.dispose()


async def _all_pages(db_url: str, ids: list[uuid.UUID], limit: int) -> list[uuid.UUID]:
    engine = create_engine(db_url)
    factory = create_session_factory(engine)
    seen: list[uuid.UUID] = []
    try:
        await _fill(engine, factory, ids)
        after = None
        async with factory() as session:
            while True:
                page = await list_items(session, price_checks(), limit=limit, after=after)
                seen += [item.id for item in page.items]
                if page.next_cursor is None:
                    return seen
                after = page.next_cursor
    finally:
        await engine.dispose()


async def _fill(
    engine: AsyncEngine, factory: async_sessionmaker[AsyncSession], ids: list[uuid.UUID]
) -> None:
    await create_user_table(engine)
    async with factory() as session:
        await session.execute(delete(PriceCheck))
        await session.commit()
    await add_checks(factory, [{"id": id, "state": DONE} for id in ids])
