"""A running worker (`python -m myapp`, a subprocess) on SQLite and PostgreSQL: its Prometheus
endpoint answers on loopback with every handler's series; on SIGTERM its outcome counters are in
the database and its row in the workers table says stopped."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from myapp.data.models import HandlerOutcomeRow, WorkerRow

PROJECT_ROOT = Path(__file__).parents[2]
SUPPORT_CONTAINER = "tests.unit.support:Container"
GUARD_S = 60  # turns a hang into a failure; never a speed assertion


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def worker_env(tmp_path: Path, db_url: str) -> dict[str, str]:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "appsettings.json").write_text("{}")
    env = {k: v for k, v in os.environ.items() if "__" not in k and not k.startswith("MYAPP_")}
    return {
        **env,
        "PYTHONPATH": str(PROJECT_ROOT),
        "MYAPP_CONFIG_DIR": str(tmp_path / "config"),
        "ConnectionStrings__Database": db_url,
        "Metrics__Port": str(free_port()),
        "Metrics__FlushInterval": "00:00:00.2",
        "BackgroundProcessing__Flaky__FailItems": "1",
        "IngestionService__PollInterval": "00:00:00.2",
    }


@pytest.fixture
def worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "myapp", "--container", SUPPORT_CONTAINER],
        cwd=tmp_path,
        env=worker_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def read_until(process: subprocess.Popen[str], fragment: str) -> None:
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if fragment in line:
            return
    pytest.fail(f"never saw {fragment!r}:\n" + "".join(seen))


async def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_a_running_worker_serves_metrics_and_leaves_counters_and_its_row(
    worker: subprocess.Popen[str],
    worker_env: dict[str, str],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    port = int(worker_env["Metrics__Port"])
    read_until(worker, "Unified background processing service started")

    deadline = time.monotonic() + GUARD_S
    samples = await scrape(port)
    while value(samples, "myapp_items_total", handler="Flaky", outcome="failed") < 1:
        assert time.monotonic() < deadline, samples
        await asyncio.sleep(0.1)
        samples = await scrape(port)

    assert value(samples, "myapp_items_total", handler="Flaky", outcome="succeeded") >= 1
    assert (
        "myapp_items_total",
        frozenset({("handler", "Quiet"), ("outcome", "dead_lettered")}),
    ) in samples
    assert value(samples, "myapp_item_duration_seconds_count", handler="Quiet") >= 1
    assert value(samples, "myapp_fetch_duration_seconds_count", handler="Quiet") >= 1
    assert ("myapp_fetch_errors_total", frozenset({("handler", "Flaky")})) in samples
    assert ("myapp_items_queued", frozenset({("handler", "Flaky")})) in samples
    assert ("myapp_items_in_flight", frozenset({("handler", "Quiet")})) in samples

    worker.send_signal(signal.SIGTERM)
    _, rest = worker.communicate(timeout=GUARD_S)
    assert worker.returncode == 0, rest
    assert "Traceback" not in rest

    async with session_factory() as session:
        outcomes = (await session.scalars(select(HandlerOutcomeRow))).all()
        workers = (await session.scalars(select(WorkerRow))).all()
    failed = sum(row.failed for row in outcomes if row.handler == "Flaky")
    assert failed >= value(samples, "myapp_items_total", handler="Flaky", outcome="failed")
    (row,) = workers
    assert row.stopped_at is not None and row.in_flight == 0
    assert sorted(json.loads(row.handlers)) == ["Flaky", "Quiet"]
