"""The dashboard served from a thread of its own (its own event loop), for clients that block:
schemathesis and the benchmark."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from myapp.bootstrap import build_container
from myapp.dashboard.app import create_app
from myapp.dashboard.service import DashboardService
from myapp.settings import AppSettings, load_settings
from tests.dashboard.chores import CONTAINER

START_TIMEOUT_S = 60


def write_settings(
    config_dir: Path, db_url: str, extra: dict[str, Any] | None = None, **dashboard: Any
) -> AppSettings:
    """appsettings.json for `db_url` with these `Dashboard` keys and `extra` sections."""
    document = {
        "ConnectionStrings": {"Database": db_url},
        "Database": {"MigrateOnStartup": False},
        **(extra or {}),
        "Dashboard": dashboard,
    }
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "appsettings.json").write_text(json.dumps(document))
    return load_settings(config_dir=config_dir)


@contextmanager
def dashboard_in_thread(
    config_dir: Path,
    db_url: str,
    prepare: Callable[[], Awaitable[None]] | None = None,
    container_path: str = CONTAINER,
    **dashboard: Any,
) -> Iterator[str]:
    """Serve the dashboard over `db_url` (after `await prepare()`) until the block ends; its URL."""
    settings = write_settings(config_dir, db_url, Port=0, **dashboard)
    started = threading.Event()
    url: list[str] = []
    failure: list[BaseException] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        container = build_container(settings, container_path)
        try:
            if prepare is not None:
                await prepare()
            service = DashboardService(create_app(container, settings), settings.dashboard)
            await service.start()
            url.append(service.url)
            started.set()
            await stop.wait()
            await service.stop()
        finally:
            await container.core.lifetime().aclose()

    def run() -> None:
        try:
            loop.run_until_complete(serve())
        except BaseException as error:
            failure.append(error)
        finally:
            started.set()
            loop.close()

    thread = threading.Thread(target=run, name="dashboard", daemon=True)
    thread.start()
    started.wait(START_TIMEOUT_S)
    if failure or not url:
        raise RuntimeError("the dashboard did not start") from (failure[0] if failure else None)
    try:
        yield url[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(START_TIMEOUT_S)
