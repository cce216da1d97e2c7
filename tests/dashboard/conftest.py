"""A dashboard over a database of each kind, with a user's own table (chores) registered beside
the built-in handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import Page

from myapp.bootstrap import build_container
from myapp.dashboard.app import create_app
from myapp.dashboard.service import DashboardService
from myapp.data.database import create_engine
from tests.dashboard.browser import chromium_page
from tests.dashboard.chores import CONTAINER, create_chores_table
from tests.dashboard.live import write_settings

BASE_URL = "http://127.0.0.1"


@pytest.fixture
async def chores_url(db_url: str) -> str:
    """`db_url` with the user's chores table made."""
    engine = create_engine(db_url)
    try:
        await create_chores_table(engine)
    finally:
        await engine.dispose()
    return db_url


MakeApp = Callable[..., FastAPI]


@pytest.fixture
async def make_app(chores_url: str, tmp_path: Path) -> AsyncIterator[MakeApp]:
    """`make_app(Token=..., ReadOnly=...)`: the dashboard app with those Dashboard settings
    (`make_app(extra={...}, ...)` adds other sections; ConnectionStrings:Database overrides
    the test's database URL)."""
    containers: list[Any] = []

    def make(extra: dict[str, Any] | None = None, **dashboard: Any) -> FastAPI:
        config_dir = tmp_path / f"config{len(containers)}"
        settings = write_settings(config_dir, chores_url, extra, **dashboard)
        container = build_container(settings, CONTAINER)
        containers.append(container)
        return create_app(container, settings)

    yield make
    for container in containers:
        await container.core.lifetime().aclose()


def client_for(app: FastAPI, **options: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL, **options)


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[Page]:
    async with chromium_page(tmp_path / "chromium-profile") as opened:
        yield opened


Serve = Callable[..., Awaitable[str]]


@pytest.fixture
async def serve(make_app: MakeApp) -> AsyncIterator[Serve]:
    """`await serve(Token=...)`: the dashboard listening on a free loopback port; its URL."""
    services: list[DashboardService] = []

    async def start(extra: dict[str, Any] | None = None, **dashboard: Any) -> str:
        app = make_app(extra, Port=0, **dashboard)
        service = DashboardService(app, app.state.dashboard.options)
        await service.start()
        services.append(service)
        return service.url

    yield start
    for service in services:
        await service.stop()
