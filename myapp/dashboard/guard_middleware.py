"""Middleware: a token check in front of everything but the login page and the stylesheet, and
headers that keep the pages out of frames and other origins' scripts."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

OPEN_PATHS = ("/login", "/static/")
API_PATHS = ("/api", "/openapi.json")
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'none'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


class Authenticate:
    """Without the token: 401 for the API, a redirect to the login form for pages."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(OPEN_PATHS):
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        if connection.app.state.dashboard.guard.authenticated(connection):
            await self.app(scope, receive, send)
            return
        refusal: Response
        if scope["path"].startswith(API_PATHS):
            refusal = JSONResponse(
                {"detail": "Authentication required: send Authorization: Bearer <Dashboard:Token>"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        else:
            refusal = RedirectResponse("/login", status_code=303)
        await refusal(scope, receive, send)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, with_headers)
