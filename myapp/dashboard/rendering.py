"""A page from a template, with what every page shows (the database, read-only) and this
browser's CSRF token for its forms."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from myapp.dashboard.app import TEMPLATES, dashboard_of
from myapp.dashboard.charts import outcome_chart
from myapp.dashboard.security import CSRF_COOKIE, CSRF_FIELD, CSRF_MAX_AGE_S

TEMPLATES.env.globals["outcome_chart"] = outcome_chart
TEMPLATES.env.globals["CSRF_FIELD"] = CSRF_FIELD


def duration(seconds: float) -> str:
    """`42 s`, `7 min`, `3 h 5 min`, `2 d 4 h`: how long ago, at a glance."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"


TEMPLATES.env.filters["duration"] = duration


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    dashboard = dashboard_of(request)
    csrf = dashboard.guard.csrf(request)
    shared = {
        "csrf_token": csrf.token,
        "read_only": dashboard.read_only,
        "database": dashboard.database,
        "logged_in": dashboard.guard.needs_login,
    }
    response = TEMPLATES.TemplateResponse(
        request, template, {**shared, **context}, status_code=status_code
    )
    if csrf.new:
        response.set_cookie(
            CSRF_COOKIE, csrf.nonce, max_age=CSRF_MAX_AGE_S, httponly=True, samesite="strict"
        )
    return response
