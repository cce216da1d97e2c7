"""`myapp status` on PostgreSQL with a million finished rows in a table.

    python -m tests.benchmarks.status_bench

A fresh database at our head revision gets FINISHED_ROWS completed photos (one INSERT ...
SELECT over generate_series), a few queued, running and failed ones, and is ANALYZEd (what
autovacuum does after such a load). Then, ROUNDS times, in turn: the status report every
registered handler gets (`status_report`, what the command prints after its start-up), and the
plain exact count `SELECT status, count(*) ... GROUP BY status` over the same table, the anchor.
Figures are medians; the ratio is status / exact count, same run.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from myapp.bootstrap import build_container, registrations
from myapp.data.database import redact_url
from myapp.data.migrations import upgrade_to_head
from myapp.operations.registry import RegisteredHandler, registered_handlers
from myapp.operations.schema import schema_state
from myapp.operations.status import status_report
from myapp.processing.scope import Scope
from myapp.settings import load_settings
from tests.benchmarks.table import print_table, row
from tests.fixtures.database import create_postgres_database, drop_postgres_database

FINISHED_ROWS = 1_000_000
OPEN_ROWS = 100  # queued, running and failed rows beside them, each
ROUNDS = 15
COLD_ROUNDS = 5
TARGET_MS = 200.0
LOAD = f"""
INSERT INTO product_photos (id, url, status, attempts, max_attempts, created_at, updated_at)
SELECT gen_random_uuid(), 'https://images.test/' || n || '.jpg', 'Completed', 1, 5,
       now() - interval '1 second' * n, now()
FROM generate_series(1, {FINISHED_ROWS}) AS n
"""
OPEN = f"""
INSERT INTO product_photos (id, url, status, attempts, max_attempts, locked_until, last_error,
                            created_at, updated_at)
SELECT gen_random_uuid(), 'https://images.test/open-' || n || '.jpg', s.status, 1, 5,
       CASE WHEN s.status = 'Started' THEN now() + interval '5 minutes' END,
       CASE WHEN s.status = 'Failed' THEN 'TimeoutError: image download' END, now(), now()
FROM generate_series(1, {OPEN_ROWS}) AS n,
     (VALUES ('Queued'), ('Started'), ('Failed')) AS s(status)
"""
EXACT_COUNT = "SELECT status, count(*) FROM product_photos WHERE deleted_at IS NULL GROUP BY status"


def run() -> list[dict[str, Any]]:
    url = create_postgres_database()
    try:
        return asyncio.run(_measure(url))
    finally:
        drop_postgres_database(url)


async def _measure(url: str) -> list[dict[str, Any]]:
    await upgrade_to_head(url)
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    db = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        await db.execute(LOAD)
        await db.execute(OPEN)
        await db.execute("VACUUM ANALYZE product_photos")
        load_s = time.perf_counter() - started
        cold_ms = []
        for _ in range(COLD_ROUNDS):  # a new process's first report: its connections opened
            container, handlers = await _handlers(url)
            try:
                cold_ms.append(await _timed(_status(container, handlers, url)))
            finally:
                await container.core.lifetime().aclose()
        container, handlers = await _handlers(url)
        try:
            status_ms, exact_ms = [], []
            for _ in range(ROUNDS):
                status_ms.append(await _timed(_status(container, handlers, url)))
                exact_ms.append(await _timed(db.fetch(EXACT_COUNT)))
        finally:
            await container.core.lifetime().aclose()
    finally:
        await db.close()
    status, exact = statistics.median(status_ms), statistics.median(exact_ms)
    cold = statistics.median(cold_ms)
    return [
        row(
            f"status, {FINISHED_ROWS:,} completed rows in product_photos (median of {ROUNDS})",
            status,
            "ms",
            f"< {TARGET_MS:g} ms",
            status / exact,
            f"every handler's report, connections warm; ratio to one exact GROUP BY count of "
            f"that table ({exact:.0f} ms), same run; max {max(status_ms):.0f} ms; "
            f"load {load_s:.0f} s",
        ),
        row(
            f"status, first report of a new container (median of {COLD_ROUNDS})",
            cold,
            "ms",
            f"< {TARGET_MS:g} ms",
            cold / exact,
            "what one `myapp status` pays after its start-up: the engine's connections opened, "
            f"statements prepared; max {max(cold_ms):.0f} ms",
        ),
    ]


async def _handlers(url: str) -> tuple[Any, list[RegisteredHandler]]:
    config = Path(tempfile.mkdtemp()) / "appsettings.json"
    config.write_text(json.dumps({"ConnectionStrings": {"Database": url}}))
    container = build_container(load_settings(config_dir=config.parent))
    return container, await registered_handlers(registrations(container))


async def _status(container: Any, handlers: list[RegisteredHandler], url: str) -> None:
    schema = await schema_state(container.database.engine())
    async with Scope():
        report = await status_report(
            container.database.session(),
            handlers,
            database=redact_url(url),
            schema=schema,
            since=datetime.now(UTC) - timedelta(hours=24),
        )
    photos = next(h for h in report.handlers if h.table == "product_photos")
    assert photos.counts is not None and photos.counts.failed == OPEN_ROWS


async def _timed(work: Awaitable[Any]) -> float:
    started = time.perf_counter()  # nothing of `work` ran yet: a coroutine starts when awaited
    await work
    return (time.perf_counter() - started) * 1000


if __name__ == "__main__":
    print_table(run())
