"""A real worker process (`python -m myapp run`) over the chores table, for the dashboard to
watch and steer."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.dashboard.chores import CONTAINER
from tests.fixtures.cli import REPO_ROOT, cli_environment

READY_LINE = "Unified background processing service started"
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30


def write_worker_settings(config_dir: Path, db_url: str) -> None:
    config_dir.mkdir(parents=True, exist_ok=True)
    document = {
        "ConnectionStrings": {"Database": db_url},
        "IngestionService": {"PollInterval": "00:10:00"},  # only wake-ups bring work quickly
        "BackgroundProcessing": {"Shein": {"Enabled": False}, "BlobCleanup": {"Enabled": False}},
    }
    (config_dir / "appsettings.json").write_text(json.dumps(document))


@asynccontextmanager
async def running_worker(config_dir: Path, db_url: str) -> AsyncIterator[list[str]]:
    """A worker running the chores handler alone, until the block ends; yields its log lines."""
    write_worker_settings(config_dir, db_url)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "myapp",
        "run",
        "--container",
        CONTAINER,
        env=cli_environment(config_dir),
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    lines: list[str] = []
    ready = asyncio.Event()

    async def read() -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            lines.append(raw.decode(errors="replace").rstrip())
            if READY_LINE in lines[-1]:
                ready.set()

    reader = asyncio.create_task(read())
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            await ready.wait()
        yield lines
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        await reader
