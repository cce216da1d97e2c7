"""`list_items`: pages that cover every row once, filters, search, and nothing but claim columns."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from myapp.operations.items import Item, list_items
from myapp.operations.states import ItemState
from tests.operations.support import add_checks, price_checks
from tests.operations.user_app import DONE, GAVE_UP, SECRET_COLUMN_VALUE, WAITING


async def test_pages_follow_the_cursor_and_cover_every_row_once(
    user_engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    ids = await add_checks(session_factory, [{"state": DONE}] * 23)
    seen: list[uuid.UUID] = []
    after = None
    pages = 0
    async with session_factory() as session:
        while True:
            page = await list_items(session, price_checks(), limit=10, after=after)
            pages += 1
            seen += [item.id for item in page.items]
            if page.next_cursor is None:
                break
            after = page.next_cursor

    assert pages == 3
    assert seen == sorted(ids)


async def test_status_filter_and_search_by_id_prefix_or_error_text(
    user_engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    target = uuid.UUID("abcdef12-3456-4789-8abc-def012345678")
    near = uuid.UUID("abcdef99-3456-4789-8abc-def012345678")
    await add_checks(
        session_factory,
        [
            {"id": target, "state": GAVE_UP, "last_error": "TimeoutError: Shop Too Slow"},
            {"id": near, "state": WAITING},
            {"state": GAVE_UP, "last_error": "ValueError: 100% off? no_such_price"},
            {"state": DONE},
        ],
    )
    handler = price_checks()

    async def ids(**options: object) -> set[uuid.UUID]:
        async with session_factory() as session:
            page = await list_items(session, handler, **options)  # type: ignore[arg-type]
        return {item.id for item in page.items}

    assert len(await ids(status=ItemState.FAILED)) == 2
    assert await ids(search="abcdef") == {target, near}
    assert await ids(search="ABCDEF12-34") == {target}  # dashes and case do not matter
    assert await ids(search="abcdef123456") == {target}
    assert await ids(search=str(target)) == {target}
    assert await ids(search="too slow") == {target}  # error text, case-insensitive
    assert len(await ids(search="100%")) == 1  # % and _ are plain characters
    assert await ids(search="100_") == set()  # "_" would match the "%" as a wildcard
    assert await ids(search="abcdef", status=ItemState.QUEUED) == {near}


async def test_an_item_holds_the_claim_columns_only(
    user_engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await add_checks(
        session_factory, [{"state": GAVE_UP, "attempts": 5, "credentials": SECRET_COLUMN_VALUE}]
    )
    async with session_factory() as session:
        page = await list_items(session, price_checks())

    (item,) = page.items
    assert set(Item.model_fields) == {
        "id",
        "state",
        "status",
        "attempts",
        "max_attempts",
        "next_attempt_at",
        "locked_by",
        "locked_until",
        "last_error",
    }
    assert (item.state, item.status, item.attempts) == (ItemState.FAILED, GAVE_UP, 5)
    assert SECRET_COLUMN_VALUE not in page.model_dump_json()


async def test_a_handler_without_a_table_has_no_items(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    from dataclasses import replace

    from myapp.operations.items import NoTableError

    with pytest.raises(NoTableError, match="PriceCheck has no claimable table"):
        async with session_factory() as session:
            await list_items(session, replace(price_checks(), spec=None))
