"""The engine alone: no-op handlers (throughput) and sleeping handlers (wall time vs the ideal)."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

from loguru import logger

from myapp.processing import HandlerRegistration, Scope, WorkItemProcessingEngine, scoped

REGISTRATIONS = 10
ITEMS_PER_REGISTRATION = 1_000
SLEEP_ITEMS = 2_000
SLEEP_SECONDS = 0.02
SLEEP_CONCURRENCY = 100
REPEATS = 5


@dataclass(frozen=True)
class Item:
    id: uuid.UUID


class NoOpHandler:
    def __init__(self, items: list[Item]) -> None:
        self.items = items

    async def fetch_work_items(self, max_items: int) -> list[Item]:
        return self.items

    async def process(self, item: Item) -> None:
        return None


class SleepingHandler(NoOpHandler):
    async def process(self, item: Item) -> None:
        await asyncio.sleep(SLEEP_SECONDS)


def _registrations(handler: type[NoOpHandler], count: int, per: int) -> list[HandlerRegistration]:
    registrations = []
    for index in range(count):
        items = [Item(uuid.uuid4()) for _ in range(per)]
        registrations.append(
            HandlerRegistration(
                lambda items=items: handler(items), name=f"H{index}", max_items_per_cycle=per
            )
        )
    return registrations


async def _noop_items_per_second(max_concurrency: int) -> float:
    engine = WorkItemProcessingEngine(
        _registrations(NoOpHandler, REGISTRATIONS, ITEMS_PER_REGISTRATION),
        max_concurrency=max_concurrency,
    )
    started = time.perf_counter()
    report = await engine.run_cycle()
    elapsed = time.perf_counter() - started
    assert report.succeeded == REGISTRATIONS * ITEMS_PER_REGISTRATION
    return report.succeeded / elapsed


async def _sleep_wall_seconds() -> float:
    engine = WorkItemProcessingEngine(
        _registrations(SleepingHandler, 1, SLEEP_ITEMS), max_concurrency=SLEEP_CONCURRENCY
    )
    started = time.perf_counter()
    report = await engine.run_cycle()
    assert report.succeeded == SLEEP_ITEMS
    return time.perf_counter() - started


async def _scope_cost_microseconds() -> float:
    """Cost of opening a scope and resolving one scoped object in it."""

    class Closeable:
        async def __aexit__(self, *args: Any) -> None:
            return None

    count = 20_000
    started = time.perf_counter()
    for _ in range(count):
        async with Scope():
            scoped(Closeable)
    return (time.perf_counter() - started) / count * 1e6


def run() -> list[dict[str, Any]]:
    logger.remove()  # measure the engine, not the log sink
    noop = [asyncio.run(_noop_items_per_second(4)) for _ in range(REPEATS)]
    noop_wide = [asyncio.run(_noop_items_per_second(100)) for _ in range(REPEATS)]
    sleep = [asyncio.run(_sleep_wall_seconds()) for _ in range(REPEATS)]
    scope = [asyncio.run(_scope_cost_microseconds()) for _ in range(REPEATS)]
    ideal = SLEEP_ITEMS * SLEEP_SECONDS / SLEEP_CONCURRENCY
    wall = statistics.median(sleep)
    return [
        {
            "benchmark": "engine, no-op handlers, 10 x 1,000 items, max_concurrency 4",
            "value": round(statistics.median(noop)),
            "unit": "items/s",
            "ideal_or_anchor": "-",
            "ratio": "-",
            "notes": f"median of {REPEATS}; each item gets its own scope and handler",
        },
        {
            "benchmark": "engine, no-op handlers, 10 x 1,000 items, max_concurrency 100",
            "value": round(statistics.median(noop_wide)),
            "unit": "items/s",
            "ideal_or_anchor": "-",
            "ratio": "-",
            "notes": f"median of {REPEATS}",
        },
        {
            "benchmark": "engine, 2,000 items x 20 ms sleep, max_concurrency 100",
            "value": round(wall, 3),
            "unit": "s wall",
            "ideal_or_anchor": f"{ideal:.3f} s (2000 x 0.02 / 100)",
            "ratio": f"{wall / ideal:.2f}x ideal",
            "notes": f"median of {REPEATS}",
        },
        {
            "benchmark": "scope: open, resolve one scoped object, close",
            "value": round(statistics.median(scope), 1),
            "unit": "us/call",
            "ideal_or_anchor": "-",
            "ratio": "-",
            "notes": "the per-call cost of the scoped-session route",
        },
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
