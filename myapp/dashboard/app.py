"""The dashboard's ASGI app: pages, the JSON API under /api, its OpenAPI schema at
/openapi.json, and the middleware that guards them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request

from myapp.bootstrap import registrations
from myapp.dashboard.binding import is_loopback
from myapp.dashboard.guard_middleware import Authenticate, SecurityHeaders
from myapp.dashboard.outage import database_unavailable
from myapp.dashboard.redaction import RedactSecrets, secret_values
from myapp.dashboard.security import Guard
from myapp.data.database import redact_url
from myapp.operations.registry import RegisteredHandler, registered_handlers
from myapp.settings import AppSettings, DashboardSettings

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=HERE / "templates")
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]
TITLE = "myapp dashboard"


@dataclass
class Dashboard:
    """What every route reads: the container's handlers and database, and the guard."""

    container: Any
    settings: AppSettings
    options: DashboardSettings
    guard: Guard
    _handlers: list[RegisteredHandler] | None = None

    async def handlers(self) -> list[RegisteredHandler]:
        """Every registration with its claim spec, found once (they are fixed at start-up)."""
        if self._handlers is None:
            self._handlers = await registered_handlers(registrations(self.container))
        return self._handlers

    @property
    def read_only(self) -> bool:
        return self.options.read_only

    @property
    def database(self) -> str:
        return redact_url(self.settings.connection_strings.database)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        factory: async_sessionmaker[AsyncSession] = self.container.database.session_factory()
        async with factory() as session:
            yield session

    @property
    def engine(self) -> Any:
        return self.container.database.engine()


def dashboard_of(request: Request) -> Dashboard:
    dashboard: Dashboard = request.app.state.dashboard
    return dashboard


def create_app(
    container: Any, settings: AppSettings, options: DashboardSettings | None = None
) -> FastAPI:
    from myapp.dashboard.api import api
    from myapp.dashboard.pages import pages

    options = options or settings.dashboard
    token = options.token.get_secret_value() if options.token else None
    # No Swagger UI: it loads its scripts from a CDN, and nothing here reaches the internet.
    app = FastAPI(title=TITLE, docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    app.state.dashboard = Dashboard(container, settings, options, Guard(token))
    app.add_exception_handler(SQLAlchemyError, database_unavailable)
    app.add_exception_handler(OSError, database_unavailable)
    app.include_router(api)
    app.include_router(pages)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    # The last added runs first: secrets are scrubbed from every response, even a refusal.
    app.add_middleware(Authenticate)
    if token is None and is_loopback(options.host):
        # No token on loopback: a page of another site must not reach it by DNS rebinding.
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_HOSTS)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RedactSecrets, secrets=secret_values(settings))
    return app
