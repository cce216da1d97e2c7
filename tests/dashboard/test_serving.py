"""The dashboard served for real: by `python -m myapp dashboard`, and by a worker with
`Dashboard:Enabled`; both stop gracefully on SIGTERM."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.dashboard.chores import CONTAINER, HANDLER
from tests.dashboard.worker import DASHBOARD_READY, running_myapp, worker_settings


async def test_the_dashboard_command_serves_pages_and_api_until_stopped(
    chores_url: str, tmp_path: Path
) -> None:
    document = worker_settings(chores_url, Dashboard={"Port": 0})
    async with running_myapp(
        tmp_path, document, "dashboard", "--container", CONTAINER, ready=DASHBOARD_READY
    ) as dashboard:
        url = dashboard.url()
        async with httpx.AsyncClient(base_url=url) as client:
            page = await client.get("/")
            api = await client.get("/api/handlers")
    assert url.startswith("http://127.0.0.1:")
    assert page.status_code == 200 and HANDLER in page.text
    assert [s["name"] for s in api.json()][-1] == HANDLER
    assert dashboard.process.returncode == 0
    assert any("Dashboard stopped" in line for line in dashboard.lines)


async def test_a_worker_with_dashboard_enabled_serves_it_beside_its_work(
    chores_url: str, tmp_path: Path
) -> None:
    document = worker_settings(chores_url, Dashboard={"Enabled": True, "Port": 0, "ReadOnly": True})
    async with (
        running_myapp(
            tmp_path, document, "run", "--container", CONTAINER, ready=DASHBOARD_READY
        ) as worker,
        httpx.AsyncClient(base_url=worker.url()) as client,
    ):
        workers = await client.get("/api/workers")
        overview = await client.get("/")
    assert workers.status_code == 200
    assert [w["state"] for w in workers.json()] == ["live"]
    assert "read-only" in overview.text and "Run now" not in overview.text
    assert worker.process.returncode == 0
    assert any("(read-only)" in line for line in worker.lines)
