"""Real processes (`python -m myapp run`, `python -m myapp dashboard`) for the dashboard tests
to watch and steer."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.dashboard.chores import CONTAINER
from tests.fixtures.cli import REPO_ROOT, cli_environment

WORKER_READY = "Unified background processing service started"
DASHBOARD_READY = "Dashboard serving on "
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30


def worker_settings(db_url: str, **sections: Any) -> dict[str, Any]:
    """The chores handler alone, woken by wake-ups (a long poll interval), plus `sections`."""
    return {
        "ConnectionStrings": {"Database": db_url},
        "IngestionService": {"PollInterval": "00:10:00"},
        "BackgroundProcessing": {"Shein": {"Enabled": False}, "BlobCleanup": {"Enabled": False}},
        **sections,
    }


def write_config(config_dir: Path, document: dict[str, Any]) -> None:
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "appsettings.json").write_text(json.dumps(document))


class Process:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    def url(self) -> str:
        """The dashboard's URL, from its start-up line."""
        line = next(line for line in self.lines if DASHBOARD_READY in line)
        return line.split(DASHBOARD_READY, 1)[1].split()[0]


@asynccontextmanager
async def running_myapp(
    config_dir: Path, document: dict[str, Any], *args: str, ready: str
) -> AsyncIterator[Process]:
    """`python -m myapp <args>` with `document` as its appsettings.json, from its `ready` log
    line until the block ends (SIGTERM, then a graceful stop)."""
    write_config(config_dir, document)
    started = Process(
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "myapp",
            *args,
            env=cli_environment(config_dir),
            cwd=REPO_ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
    )
    ready_seen = asyncio.Event()

    async def read() -> None:
        assert started.process.stdout is not None
        async for raw in started.process.stdout:
            started.lines.append(raw.decode(errors="replace").rstrip())
            if ready in started.lines[-1]:
                ready_seen.set()
        ready_seen.set()  # it ended: let the waiter see why

    reader = asyncio.create_task(read())
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            await ready_seen.wait()
        assert started.process.returncode is None, "\n".join(started.lines)
        yield started
    finally:
        if started.process.returncode is None:
            started.process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await started.process.wait()
            except TimeoutError:
                started.process.kill()
                await started.process.wait()
        await reader


@asynccontextmanager
async def running_worker(config_dir: Path, db_url: str) -> AsyncIterator[list[str]]:
    """A worker running the chores handler alone, until the block ends; yields its log lines."""
    document = worker_settings(db_url)
    async with running_myapp(
        config_dir, document, "run", "--container", CONTAINER, ready=WORKER_READY
    ) as worker:
        yield worker.lines
