"""The JSON API under /api: the same queries as the pages and the CLI, typed by the query
layer's own pydantic models (they are the OpenAPI schema at /openapi.json).

Reads are GETs; actions are POSTs that need `Authorization: Bearer <Dashboard:Token>` or, from a
browser session, the `X-CSRF-Token` header (GET /api/csrf gives it, with its cookie).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from starlette.responses import JSONResponse

from myapp.dashboard.actions import require_action_allowed
from myapp.dashboard.app import dashboard_of
from myapp.dashboard.lookups import (
    SEARCH_MAX_LENGTH,
    clean_search,
    find_item,
    handler_named,
    histories,
    table_handler_named,
)
from myapp.dashboard.security import CSRF_COOKIE, CSRF_MAX_AGE_S
from myapp.data.wakeups import wake_workers
from myapp.operations.handlers import HandlerStatus, handler_statuses
from myapp.operations.history import DEFAULT_HISTORY_DAYS, MAX_HISTORY_DAYS, OutcomeHistory
from myapp.operations.items import DEFAULT_LIMIT, MAX_LIMIT, Item, ItemPage, list_items
from myapp.operations.requeue import RequeueResult, requeue
from myapp.operations.states import ItemState
from myapp.operations.workers import WorkerInfo, list_workers

MAX_REQUEUE_IDS = 10_000


class Problem(BaseModel):
    detail: Any


REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Dashboard:Token is set and was not given"},
    404: {"model": Problem, "description": "No such handler, table or item"},
}
ACTION_REFUSALS: dict[int | str, dict[str, Any]] = {
    **REFUSALS,
    403: {"model": Problem, "description": "Read-only dashboard, or no valid CSRF token"},
}
BODY_REFUSALS: dict[int | str, dict[str, Any]] = {
    **ACTION_REFUSALS,
    400: {"model": Problem, "description": "The body is not JSON"},
}
api = APIRouter(prefix="/api", responses={401: REFUSALS[401]})
Action = Depends(require_action_allowed)


class RequeueIds(BaseModel):
    """These rows, in whatever state (a completed row runs again), unless a worker holds them."""

    model_config = ConfigDict(extra="forbid")

    ids: list[uuid.UUID] = Field(min_length=1, max_length=MAX_REQUEUE_IDS)


class RequeueFailed(BaseModel):
    """Every failed (dead-lettered) row, or those updated since `failed_since`."""

    model_config = ConfigDict(extra="forbid")

    failed: Literal[True]
    failed_since: AwareDatetime | None = None

    @field_validator("failed_since")
    @classmethod
    def _in_utc(cls, moment: datetime | None) -> datetime | None:
        try:
            return None if moment is None else moment.astimezone(UTC)
        except OverflowError:
            raise ValueError("a moment that exists in UTC") from None


class Woken(BaseModel):
    handler: str
    woken: bool = True


class CsrfToken(BaseModel):
    csrf_token: str


@api.get("/handlers", response_model=list[HandlerStatus])
async def get_handlers(request: Request) -> list[HandlerStatus]:
    """Every registered handler, built-in and yours: enabled or why not, its table's counts,
    expired leases, live workers, the last hour's outcomes and the last error."""
    dashboard = dashboard_of(request)
    async with dashboard.session() as session:
        return await handler_statuses(session, await dashboard.handlers())


@api.get("/handlers/{name}", response_model=HandlerStatus, responses=REFUSALS)
async def get_handler(request: Request, name: str) -> HandlerStatus:
    dashboard = dashboard_of(request)
    handler = await handler_named(dashboard, name)
    async with dashboard.session() as session:
        (status,) = await handler_statuses(session, [handler])
    return status


@api.get("/handlers/{name}/history", response_model=OutcomeHistory, responses=REFUSALS)
async def get_history(
    request: Request,
    name: str,
    days: Annotated[int, Query(ge=1, le=MAX_HISTORY_DAYS)] = DEFAULT_HISTORY_DAYS,
) -> OutcomeHistory:
    """Succeeded, failed and dead-lettered per minute over the last hour and per hour over
    the last `days` days."""
    dashboard = dashboard_of(request)
    handler = await handler_named(dashboard, name)
    return (await histories(dashboard, [handler.name], days))[handler.name]


@api.get("/handlers/{name}/items", response_model=ItemPage, responses=REFUSALS)
async def get_items(
    request: Request,
    name: str,
    status: ItemState | None = None,
    search: Annotated[
        str | None,
        Query(max_length=SEARCH_MAX_LENGTH, description="An id, its first digits, or error text."),
    ] = None,
    after: Annotated[uuid.UUID | None, Query(description="next_cursor of the page before")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> ItemPage:
    """A page of the handler's rows in id order (keyset pagination: pass `next_cursor` as
    `after`)."""
    dashboard = dashboard_of(request)
    handler = await table_handler_named(dashboard, name)
    async with dashboard.session() as session:
        return await list_items(session, handler, status, clean_search(search), limit, after)


@api.get("/handlers/{name}/items/{item_id}", response_model=Item, responses=REFUSALS)
async def get_item(request: Request, name: str, item_id: uuid.UUID) -> Item:
    dashboard = dashboard_of(request)
    handler = await table_handler_named(dashboard, name)
    async with dashboard.session() as session:
        return await find_item(session, handler, item_id)


@api.post(
    "/handlers/{name}/requeue",
    response_model=RequeueResult,
    responses=BODY_REFUSALS,
    dependencies=[Action],
)
async def post_requeue(
    request: Request, name: str, body: RequeueIds | RequeueFailed
) -> RequeueResult:
    """Back to queued with attempts reset, never a row a live worker holds (those are listed
    in `held`); then the workers are woken."""
    dashboard = dashboard_of(request)
    handler = await table_handler_named(dashboard, name)
    async with dashboard.session() as session:
        if isinstance(body, RequeueIds):
            return await requeue(session, handler, body.ids)
        return await requeue(session, handler, failed_since=body.failed_since, failed=True)


@api.post(
    "/handlers/{name}/run", response_model=Woken, responses=ACTION_REFUSALS, dependencies=[Action]
)
async def post_run(request: Request, name: str) -> Woken:
    """Run now: wake the workers so the handler fetches at once (what `myapp trigger` does)."""
    dashboard = dashboard_of(request)
    handler = await handler_named(dashboard, name)
    await wake_workers(dashboard.engine, handler.name)
    return Woken(handler=handler.name)


@api.get("/workers", response_model=list[WorkerInfo])
async def get_workers(request: Request) -> list[WorkerInfo]:
    """Every worker row: live, stale (no heartbeat for three intervals) or stopped."""
    async with dashboard_of(request).session() as session:
        return await list_workers(session) or []


@api.get("/csrf", response_model=CsrfToken)
async def get_csrf(request: Request) -> JSONResponse:
    """A CSRF token for `X-CSRF-Token`, and the cookie it matches."""
    csrf = dashboard_of(request).guard.csrf(request)
    response = JSONResponse({"csrf_token": csrf.token})
    if csrf.new:
        response.set_cookie(
            CSRF_COOKIE, csrf.nonce, max_age=CSRF_MAX_AGE_S, httponly=True, samesite="strict"
        )
    return response
