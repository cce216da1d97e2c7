"""The opt-in batch protocol: `process_batch` gets several queued items in one call and one
scope, reports per-item failures, and a batch that raises fails all its items."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from myapp.processing import BatchResult, HandlerRegistration, WorkItemProcessingEngine, lifecycle
from tests.unit.support import ScopeRecorder


@dataclass(frozen=True)
class Item:
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    index: int = 0


@dataclass
class Ledger:
    batches: list[list[int]] = field(default_factory=list)
    completed: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)


class BatchHandler:
    fails: frozenset[int] = frozenset({3, 7})
    raises: bool = False

    def __init__(self, ledger: Ledger, count: int) -> None:
        self.ledger, self.count = ledger, count

    async def fetch_work_items(self, max_items: int) -> Sequence[Item]:
        return [Item(index=index) for index in range(min(self.count, max_items))]

    async def process(self, item: Item) -> None:
        raise AssertionError("a batch handler's items go through process_batch")

    async def process_batch(self, items: Sequence[Item]) -> BatchResult | None:
        self.ledger.batches.append([item.index for item in items])
        if self.raises:
            raise RuntimeError("the service refused the whole batch")
        return BatchResult(
            {item.id: ValueError(f"bad {item.index}") for item in items if item.index in self.fails}
        )

    async def complete(self, items: Sequence[Item]) -> None:
        self.ledger.completed.extend(item.index for item in items)

    async def fail(self, item: Item, error: BaseException) -> None:
        self.ledger.failed[item.index] = str(error)

    async def extend(self, items: Sequence[Item]) -> None:
        return None

    async def release(self, items: Sequence[Item]) -> None:
        return None


def engine_for(handler: Any, quota: int = 10, **options: Any) -> WorkItemProcessingEngine:
    return WorkItemProcessingEngine(
        [HandlerRegistration(handler, name="Batch", max_items_per_cycle=quota)], **options
    )


async def test_queued_items_go_to_process_batch_in_batches_with_per_item_outcomes() -> None:
    ledger, scopes = Ledger(), ScopeRecorder()
    engine = engine_for(lambda: BatchHandler(ledger, 10), scope_factory=scopes)

    report = await engine.run_cycle()

    assert sorted(i for batch in ledger.batches for i in batch) == list(range(10))
    assert len(ledger.batches) < 10  # several items per call
    assert sorted(ledger.completed) == [0, 1, 2, 4, 5, 6, 8, 9]
    assert ledger.failed == {3: "bad 3", 7: "bad 7"}
    stats = report.handlers["Batch"]
    assert (stats.succeeded, stats.failed) == (8, 2)
    assert scopes.open_now == 0


async def test_a_batch_that_raises_fails_every_item_in_it() -> None:
    ledger = Ledger()

    class Refused(BatchHandler):
        raises = True

    report = await engine_for(lambda: Refused(ledger, 4)).run_cycle()

    assert report.handlers["Batch"].failed == 4
    assert set(ledger.failed) == {0, 1, 2, 3}
    assert ledger.completed == []


async def test_a_batch_counts_against_one_slot_and_its_timeout_covers_the_call() -> None:
    ledger = Ledger()

    class Slow(BatchHandler):
        async def process_batch(self, items: Sequence[Item]) -> BatchResult | None:
            import asyncio

            await asyncio.sleep(10)
            return None

    engine = engine_for(
        lambda: Slow(ledger, 5), max_concurrency=1, item_timeout=timedelta(milliseconds=100)
    )

    report = await engine.run_cycle()

    assert report.handlers["Batch"].failed == 5
    assert set(ledger.failed) == {0, 1, 2, 3, 4}


async def test_a_quota_bigger_than_the_default_queue_comes_in_one_batch() -> None:
    """The default queue holds the two fetches a handler may have in flight (4 x MaxConcurrency,
    or twice the biggest quota), so a batch is the handler's whole quota, not what a smaller
    queue could hold."""
    ledger = Ledger()
    engine = engine_for(lambda: BatchHandler(ledger, 100), quota=100, max_concurrency=2)

    await engine.run_cycle()

    assert engine.queue_size == 200
    assert ledger.batches == [list(range(100))]


def test_a_configured_queue_size_is_kept_whatever_the_quotas() -> None:
    engine = engine_for(lambda: None, quota=100, max_concurrency=2, queue_size=5)

    assert engine.queue_size == 5


async def test_a_finished_batch_is_acknowledged_without_waiting_for_companions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Single items wait a moment for others to share one acknowledgement; a batch is already
    one, and what waits goes with it."""
    monkeypatch.setattr(lifecycle, "COMPLETION_BATCH_WINDOW_SECONDS", 30.0)
    ledger = Ledger()
    registration = HandlerRegistration(
        lambda: BatchHandler(ledger, 0), name="Batch", max_items_per_cycle=10
    )
    acknowledgements = lifecycle.HandlerLifecycle(registration, ScopeRecorder())

    acknowledgements.completed([Item(index=1)])
    await asyncio.sleep(0.1)
    assert ledger.completed == []  # waiting for companions
    acknowledgements.completed([Item(index=2), Item(index=3)], batch=True)
    async with asyncio.timeout(5):  # not the 30 s window
        flushing = acknowledgements._flusher
        assert flushing is not None
        await flushing

    assert sorted(ledger.completed) == [1, 2, 3]
