"""The shared first steps of the pages and the API: the handler a URL names, the history a
page shows. Both then call the same myapp.operations queries as the CLI."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import HTTPException
from sqlalchemy.ext.asyncio import AsyncSession

from myapp.dashboard.app import Dashboard
from myapp.operations.history import OutcomeHistory, outcome_history
from myapp.operations.items import MAX_LIMIT, Item, list_items
from myapp.operations.registry import RegisteredHandler, UnknownHandlerError, find_handler

SEARCH_MAX_LENGTH = 200


async def handler_named(dashboard: Dashboard, name: str) -> RegisteredHandler:
    try:
        return find_handler(await dashboard.handlers(), name)
    except UnknownHandlerError as error:
        raise HTTPException(404, str(error)) from None


async def table_handler_named(dashboard: Dashboard, name: str) -> RegisteredHandler:
    """A handler over a claimable table (the only kind with items)."""
    handler = await handler_named(dashboard, name)
    if handler.spec is None:
        why = f" ({handler.spec_error})" if handler.spec_error else ""
        raise HTTPException(404, f"Handler {handler.name} has no claimable table{why}")
    return handler


async def histories(dashboard: Dashboard, names: list[str], days: int) -> dict[str, OutcomeHistory]:
    async with dashboard.session() as session:
        found = await outcome_history(session, names, datetime.now(UTC), days)
    return {history.handler: history for history in found}


async def find_item(session: AsyncSession, handler: RegisteredHandler, item_id: uuid.UUID) -> Item:
    """One item, by the same query that lists them (an id is a search that matches it)."""
    page = await list_items(session, handler, search=str(item_id), limit=MAX_LIMIT)
    for found in page.items:
        if found.id == item_id:
            return found
    raise HTTPException(404, f"No item {item_id} in {handler.table}")


def clean_search(text: str | None) -> str | None:
    """No NUL (PostgreSQL text cannot hold one), no surrounding blanks; blank is no search."""
    if text is None:
        return None
    text = text.replace("\x00", "").strip()
    return text or None
