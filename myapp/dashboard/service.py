"""The dashboard as a hosted service: uvicorn serving the app, started and stopped by a Host
(the `dashboard` command's, or a worker's when `Dashboard:Enabled`)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn
from loguru import logger

from myapp.dashboard.binding import bind_socket, check_bind
from myapp.settings import AppSettings, DashboardSettings

STOP_TIMEOUT_S = 5


class _HostedServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the Host owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class DashboardService:
    """Serves `app` on `host:port` between `start()` and `stop()`. Port 0 picks a free port;
    `url` says which."""

    def __init__(self, app: Any, settings: DashboardSettings) -> None:
        check_bind(settings)
        self.app = app
        self.settings = settings
        self._server: _HostedServer | None = None
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        assert self._socket is not None, "not started"
        host, port = self._socket.getsockname()[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    async def start(self) -> None:
        self._socket = bind_socket(self.settings.host, self.settings.port)
        config = uvicorn.Config(self.app, log_config=None, access_log=False, lifespan="off")
        self._server = _HostedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:
            if self._task.done():
                await self._task  # raises what stopped it
                raise RuntimeError("the dashboard server stopped while starting")
            await asyncio.sleep(0.01)
        mode = " (read-only)" if self.settings.read_only else ""
        logger.info("Dashboard serving on {}{}", self.url, mode)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await asyncio.shield(self._task)
        except TimeoutError:
            self._server.force_exit = True
            await self._task
        finally:
            if self._socket is not None:
                self._socket.close()
            logger.info("Dashboard stopped")


def build_dashboard_service(
    container: Any, settings: AppSettings, dashboard: DashboardSettings | None = None
) -> DashboardService:
    """The dashboard over `container`'s handlers and database; `dashboard` overrides
    `settings.dashboard` (the command's --host/--port)."""
    from myapp.dashboard.app import create_app

    dashboard = dashboard or settings.dashboard
    return DashboardService(create_app(container, settings, dashboard), dashboard)
