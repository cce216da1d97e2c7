"""What every action (a POST that changes something) must pass: writable, and a CSRF token
unless a Bearer token authenticated the request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, HTTPException, Request

from myapp.dashboard.app import dashboard_of
from myapp.dashboard.security import CSRF_FIELD, CSRF_HEADER

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
CSRF_REFUSED = "CSRF token missing or invalid: reload the page and try again"
READ_ONLY_REFUSED = "The dashboard is read-only (Dashboard:ReadOnly): actions are refused"


async def require_action_allowed(
    request: Request,
    x_csrf_token: Annotated[
        str | None,
        Header(
            alias=CSRF_HEADER,
            description="From GET /api/csrf (not needed with Authorization: Bearer).",
        ),
    ] = None,
) -> None:
    dashboard = dashboard_of(request)
    if dashboard.read_only:
        raise HTTPException(403, READ_ONLY_REFUSED)
    if dashboard.guard.bearer_ok(request):
        return
    submitted = x_csrf_token
    if submitted is None and request.headers.get("content-type", "").startswith(FORM_TYPES):
        value = (await request.form()).get(CSRF_FIELD)
        submitted = value if isinstance(value, str) else None
    if not dashboard.guard.csrf_ok(request, submitted):
        raise HTTPException(403, CSRF_REFUSED)
