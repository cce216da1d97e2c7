"""Shein scraping: parse time of a 1.3 MB page, and a 50-order batch end to end.

The parse rows time `extract_gb_raw_data` + the Shein parser on pages in the real pages' shape
(1.3 MB, most of it noise scripts and CSS around `var gbRawData = ...`); median of `PARSE_RUNS`.
The batch rows run `SheinBatchHandler.process` for one batch of 50 orders (51 pages of 1.3 MB)
against the fake site on 127.0.0.1 with zero delay, staging into a fresh SQLite database:
claim, fetch, parse, write, commit, wall time from claim to commit.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from loguru import logger

from myapp.data.database import create_engine, create_session_factory
from myapp.data.migrations import upgrade_to_head
from myapp.data.models import StagingBatch
from myapp.handlers.shein_batch import SheinBatchHandler, SheinOptions
from myapp.scraping.gb_raw_data import extract_gb_raw_data
from myapp.scraping.orders import OrderSummary
from myapp.scraping.shein import parse_order_detail, parse_orders_list
from myapp.scraping.urls import Site
from tests.fixtures.clock import FakeClock
from tests.scraping.conftest import TEST_CIPHER, cookie_file_text
from tests.scraping.pages import detail_data, detail_page, list_page, sample_orders, shein_page
from tests.scraping.server import running_site

PAGE_BYTES = 1_300_000
PARSE_RUNS = 50
PARSE_TARGET_MS = 20.0
# Real gbRawData objects also carry translations and configuration: a heavier variant.
HEAVY_DATA_ENTRIES = 4_000
BATCH_ORDERS = 50
CONCURRENCIES = (1, 4)


def _median_ms(action: Any, runs: int = PARSE_RUNS) -> float:
    action()  # warm up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def _parse_rows() -> list[dict[str, Any]]:
    orders = sample_orders(BATCH_ORDERS)
    order = orders[7]  # three items, both item forms
    detail = detail_page(order, size=PAGE_BYTES)
    heavy_data = detail_data(order) | {
        "language": {
            f"SHEIN_KEY_PC_{i}": f"Translated text number {i} " * 3
            for i in range(HEAVY_DATA_ENTRIES)
        }
    }
    heavy = shein_page(heavy_data, size=PAGE_BYTES)
    heavy_kb = len(json.dumps(heavy_data)) // 1000
    listing = list_page(orders, size=PAGE_BYTES)
    site = Site.parse("https://shein.com")
    summary = OrderSummary(order.billno)
    measured = [
        ("locate + decode gbRawData, detail page", lambda: extract_gb_raw_data(detail), detail),
        (
            "parse order detail page (3 items)",
            lambda: parse_order_detail(detail, summary, site),
            detail,
        ),
        (
            f"parse order detail page, {heavy_kb} KB gbRawData",
            lambda: parse_order_detail(heavy, summary, site),
            heavy,
        ),
        (
            f"parse orders list page ({BATCH_ORDERS} orders)",
            lambda: parse_orders_list(listing),
            listing,
        ),
    ]
    rows = []
    for name, action, page in measured:
        value = _median_ms(action)
        rows.append(
            {
                "benchmark": name,
                "value": f"{value:.2f}",
                "unit": "ms (median)",
                "ideal_or_anchor": f"< {PARSE_TARGET_MS:.0f} ms target",
                "ratio": f"{value / PARSE_TARGET_MS:.2f}x target",
                "notes": f"{len(page.encode()) / 1e6:.2f} MB page, median of {PARSE_RUNS} runs",
            }
        )
    return rows


async def _batch_seconds(concurrency: int, database: Path) -> tuple[float, int]:
    orders = sample_orders(BATCH_ORDERS)
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    factory = create_session_factory(engine)
    clock = FakeClock()
    try:
        async with running_site() as site:
            site.serve("/user/orders/list", list_page(orders, size=PAGE_BYTES))
            for order in orders:
                site.serve(
                    f"/user/orders/detail/{order.billno}", detail_page(order, size=PAGE_BYTES)
                )
            options = SheinOptions.model_validate(
                {
                    "BaseUrl": site.url,
                    "RequestDelay": "00:00:00",
                    "MaxConcurrentRequests": concurrency,
                }
            )
            async with factory() as session:
                session.add(
                    StagingBatch(
                        batch_processor_name="Shein",
                        file_hash=f"bench-{concurrency}",
                        started_at=clock.now,
                        file_contents=TEST_CIPHER.seal(cookie_file_text().encode()),
                    )
                )
                await session.commit()
            started = time.perf_counter()
            async with factory() as session:
                handler = SheinBatchHandler(
                    session=session,
                    worker_id="bench",
                    clock=clock,
                    options=options,
                    cookie_cipher=TEST_CIPHER,
                )
                (batch,) = await handler.fetch_work_items(1)
            async with factory() as session:
                handler = SheinBatchHandler(
                    session=session,
                    worker_id="bench",
                    clock=clock,
                    options=options,
                    cookie_cipher=TEST_CIPHER,
                )
                await handler.process(batch)
            return time.perf_counter() - started, len(site.requests)
    finally:
        await engine.dispose()


async def _batch_rows() -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for concurrency in CONCURRENCIES:
            database = Path(directory) / f"bench-{concurrency}.db"
            await upgrade_to_head(f"sqlite+aiosqlite:///{database}")
            seconds, requests = await _batch_seconds(concurrency, database)
            rows.append(
                {
                    "benchmark": f"batch of {BATCH_ORDERS} orders end to end, "
                    f"MaxConcurrentRequests={concurrency}",
                    "value": f"{seconds:.2f}",
                    "unit": "s (wall)",
                    "ideal_or_anchor": "-",
                    "ratio": f"{seconds / BATCH_ORDERS * 1000:.1f} ms per order",
                    "notes": f"{requests} pages of {PAGE_BYTES / 1e6:.1f} MB from 127.0.0.1, "
                    "RequestDelay 0, staged into SQLite",
                }
            )
    return rows


def run() -> list[dict[str, Any]]:
    logger.disable("myapp")
    try:
        return _parse_rows() + asyncio.run(_batch_rows())
    finally:
        logger.enable("myapp")


if __name__ == "__main__":
    for row in run():
        print(row)
