"""The dashboard's overview page on PostgreSQL with a million finished rows in a table.

    python -m tests.benchmarks.dashboard_bench

The status bench's load (tests.benchmarks.status_bench: FINISHED_ROWS completed photos and a
few open ones, VACUUM ANALYZE) plus a week of per-minute outcome counters for every handler
(every minute busy: the charts' worst case). The dashboard serves it over HTTP on loopback
(uvicorn, its own thread, as `python -m myapp dashboard` does); then, ROUNDS times in turn, a
GET of the overview (every handler's status and both charts, rendered), a GET of /api/handlers
(the same statuses as JSON), and the anchor: the exact GROUP BY count of that table. Medians;
ratios to the anchor, same run.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from myapp.bootstrap import DEFAULT_CONTAINER
from myapp.data.migrations import upgrade_to_head
from tests.benchmarks.status_bench import EXACT_COUNT, FINISHED_ROWS, LOAD, OPEN
from tests.benchmarks.table import print_table, row
from tests.dashboard.live import dashboard_in_thread
from tests.fixtures.database import create_postgres_database, drop_postgres_database

ROUNDS = 15
TARGET_MS = 200.0
HISTORY_DAYS = 7
HANDLERS = ("Shein", "ImageVectorization", "BlobCleanup")
OUTCOMES = f"""
INSERT INTO myapp_handler_outcomes (handler, minute, succeeded, failed, dead_lettered, count,
                                    total_duration_ms, max_duration_ms)
SELECT h.name, date_trunc('minute', now()) - interval '1 minute' * n, 20 + n % 7, n % 3,
       n % 11 / 10, 20 + n % 7, 250.0, 40.0
FROM generate_series(0, {HISTORY_DAYS * 24 * 60 - 1}) AS n,
     unnest(ARRAY{list(HANDLERS)}) AS h(name)
"""


def run() -> list[dict[str, Any]]:
    url = create_postgres_database()
    try:
        load_s = asyncio.run(_load(url))
        with (
            dashboard_in_thread(
                Path(tempfile.mkdtemp()), url, container_path=DEFAULT_CONTAINER
            ) as served,
            httpx.Client(base_url=served, timeout=30) as client,
        ):
            return _measure(client, url, load_s)
    finally:
        drop_postgres_database(url)


async def _load(url: str) -> float:
    await upgrade_to_head(url)
    db = await asyncpg.connect(_dsn(url))
    try:
        started = time.perf_counter()
        for statement in (LOAD, OPEN, OUTCOMES, "VACUUM ANALYZE"):
            await db.execute(statement)
        return time.perf_counter() - started
    finally:
        await db.close()


def _measure(client: httpx.Client, url: str, load_s: float) -> list[dict[str, Any]]:
    overview = client.get("/")
    assert overview.status_code == 200 and "product_photos" in overview.text
    page_ms, api_ms, exact_ms = [], [], []
    for _ in range(ROUNDS):
        page_ms.append(_timed(lambda: _ok(client.get("/"))))
        api_ms.append(_timed(lambda: _ok(client.get("/api/handlers"))))
        exact_ms.append(_timed(lambda: asyncio.run(_exact_count(url))))
    page, api, exact = (statistics.median(m) for m in (page_ms, api_ms, exact_ms))
    notes = (
        f"ratio to one exact GROUP BY count of that table ({exact:.0f} ms, a fresh connection), "
        f"same run"
    )
    return [
        row(
            f"dashboard overview page, {FINISHED_ROWS:,} completed rows (median of {ROUNDS})",
            page,
            "ms",
            f"< {TARGET_MS:g} ms",
            page / exact,
            f"every handler's status and {HISTORY_DAYS} days of per-minute counters as charts, "
            f"rendered, over HTTP; {notes}; max {max(page_ms):.0f} ms; load {load_s:.0f} s",
        ),
        row(
            f"dashboard /api/handlers, {FINISHED_ROWS:,} completed rows (median of {ROUNDS})",
            api,
            "ms",
            f"< {TARGET_MS:g} ms",
            api / exact,
            f"the same statuses as JSON; {notes}; max {max(api_ms):.0f} ms",
        ),
    ]


async def _exact_count(url: str) -> None:
    db = await asyncpg.connect(_dsn(url))
    try:
        await db.fetch(EXACT_COUNT)
    finally:
        await db.close()


def _ok(response: httpx.Response) -> None:
    assert response.status_code == 200, response.status_code


def _timed(work: Callable[[], Any]) -> float:
    started = time.perf_counter()
    work()
    return (time.perf_counter() - started) * 1000


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


if __name__ == "__main__":
    print_table(run())
