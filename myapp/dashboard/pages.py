"""The server-rendered pages and the form posts behind their buttons."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.responses import RedirectResponse, Response

from myapp.dashboard.actions import require_action_allowed
from myapp.dashboard.app import Dashboard, dashboard_of
from myapp.dashboard.lookups import (
    SEARCH_MAX_LENGTH,
    clean_search,
    find_item,
    handler_named,
    histories,
    table_handler_named,
)
from myapp.dashboard.rendering import render
from myapp.dashboard.security import SESSION_COOKIE, SESSION_MAX_AGE_S
from myapp.data.wakeups import wake_workers
from myapp.operations.handlers import HandlerStatus, handler_statuses
from myapp.operations.history import DEFAULT_HISTORY_DAYS, MAX_HISTORY_DAYS
from myapp.operations.items import DEFAULT_LIMIT, MAX_LIMIT, list_items
from myapp.operations.registry import RegisteredHandler
from myapp.operations.requeue import requeue
from myapp.operations.states import ItemState
from myapp.operations.workers import WorkerState, list_workers

pages = APIRouter(include_in_schema=False)
Action = Depends(require_action_allowed)
# What an action's redirect may announce: a code in the URL, never text a link could forge.
NOTICES = {
    "woken": "Woke the workers: {handler} fetches now.",
    "requeued": "Requeued {count} item(s) of {handler}.",
    "held": "{handler}: a live worker holds that item; it was left untouched.",
}


@pages.get("/")
async def overview(
    request: Request,
    days: Annotated[int, Query(ge=1, le=MAX_HISTORY_DAYS)] = DEFAULT_HISTORY_DAYS,
) -> Response:
    dashboard = dashboard_of(request)
    handlers = await dashboard.handlers()
    # Two sessions, two connections: the statuses and the charts are read at the same time.
    statuses, charts = await asyncio.gather(
        _statuses(dashboard, handlers), histories(dashboard, [h.name for h in handlers], days)
    )
    return render(
        request,
        "overview.html",
        {
            "page": "overview",
            "statuses": statuses,
            "histories": charts,
            "days": days,
            "notice": _notice(request, [h.name for h in handlers]),
        },
    )


@pages.get("/handlers/{name}")
async def items(
    request: Request,
    name: str,
    # The filter form sends `status=` for "any": an empty value is no filter here.
    status: Annotated[ItemState | Literal[""], Query()] = "",
    search: Annotated[str | None, Query(max_length=SEARCH_MAX_LENGTH)] = None,
    after: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> Response:
    dashboard = dashboard_of(request)
    handler = await table_handler_named(dashboard, name)
    search = clean_search(search)
    state = status or None
    async with dashboard.session() as session:
        page = await list_items(session, handler, state, search, limit, after)
    return render(
        request,
        "items.html",
        {
            "page": "items",
            "handler": handler,
            "items": page,
            "status": state.value if state else "",
            "search": search or "",
            "states": [s.value for s in ItemState],
            "limit": limit,
            "default_limit": DEFAULT_LIMIT,
            "notice": _notice(request, [handler.name]),
        },
    )


@pages.get("/handlers/{name}/items/{item_id}")
async def item(request: Request, name: str, item_id: uuid.UUID) -> Response:
    dashboard = dashboard_of(request)
    handler = await table_handler_named(dashboard, name)
    async with dashboard.session() as session:
        found = await find_item(session, handler, item_id)
    return render(
        request,
        "item.html",
        {
            "page": "item",
            "handler": handler,
            "item": found,
            "notice": _notice(request, [handler.name]),
        },
    )


@pages.get("/workers")
async def workers(request: Request) -> Response:
    dashboard = dashboard_of(request)
    async with dashboard.session() as session:
        found = await list_workers(session)
    everyone = found or []
    return render(
        request,
        "workers.html",
        {
            "page": "workers",
            "available": found is not None,
            "live": [w for w in everyone if w.state is WorkerState.LIVE],
            "gone": [w for w in everyone if w.state is not WorkerState.LIVE],
        },
    )


@pages.post("/handlers/{name}/run", dependencies=[Action])
async def run_handler(request: Request, name: str) -> Response:
    dashboard = dashboard_of(request)
    handler = await handler_named(dashboard, name)
    await wake_workers(dashboard.engine, handler.name)
    return _back("/", "woken", handler=handler.name)


@pages.post("/handlers/{name}/requeue-failed", dependencies=[Action])
async def requeue_all_failed(request: Request, name: str) -> Response:
    dashboard = dashboard_of(request)
    handler = await table_handler_named(dashboard, name)
    async with dashboard.session() as session:
        done = await requeue(session, handler, failed=True)
    count = len(done.requeued)
    return _back(f"/handlers/{handler.name}", "requeued", handler=handler.name, count=count)


@pages.post("/handlers/{name}/items/{item_id}/requeue", dependencies=[Action])
async def requeue_one(request: Request, name: str, item_id: uuid.UUID) -> Response:
    dashboard = dashboard_of(request)
    handler = await table_handler_named(dashboard, name)
    async with dashboard.session() as session:
        done = await requeue(session, handler, [item_id])
    url = f"/handlers/{handler.name}/items/{item_id}"
    notice = "held" if done.held else "requeued"
    return _back(url, notice, handler=handler.name, count=len(done.requeued))


@pages.get("/login")
async def login_form(request: Request) -> Response:
    if not dashboard_of(request).guard.needs_login:
        return RedirectResponse("/", status_code=303)
    return render(request, "login.html", {"page": "login"})


@pages.post("/login")
async def login(request: Request, token: Annotated[str, Form(max_length=1000)]) -> Response:
    guard = dashboard_of(request).guard
    if not guard.token_matches(token):
        return render(
            request, "login.html", {"page": "login", "problem": "Wrong token."}, status_code=401
        )
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        guard.session_cookie(),
        max_age=SESSION_MAX_AGE_S,
        httponly=True,
        samesite="strict",
    )
    return response


@pages.post("/logout")
async def logout(request: Request) -> Response:
    # Not behind the CSRF check: logging someone out is no harm, and needs no token to work.
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


async def _statuses(dashboard: Dashboard, handlers: list[RegisteredHandler]) -> list[HandlerStatus]:
    async with dashboard.session() as session:
        return await handler_statuses(session, handlers)


def _back(url: str, notice: str, **values: object) -> Response:
    return RedirectResponse(f"{url}?{urlencode({'done': notice, **values})}", status_code=303)


def _notice(request: Request, handlers: list[str]) -> str | None:
    """The notice an action's redirect asked for; a handler name that is not registered (a
    forged link) shows none."""
    template = NOTICES.get(request.query_params.get("done", ""))
    handler = request.query_params.get("handler", "")
    if template is None or handler not in handlers:
        return None
    count = request.query_params.get("count", "0")
    return template.format(handler=handler, count=int(count) if count.isdigit() else 0)
