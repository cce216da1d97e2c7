"""The engine tells its observer every finished item (succeeded, failed, dead-lettered) and every
fetch; an observer that raises changes nothing for the engine."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from myapp.processing import WorkItemProcessingEngine
from myapp.processing.observers import Outcome, combine
from tests.unit.support import FakeClaimHandler, HandlerState, Item, items_for, registration

GUARD_S = 30


class Recorder:
    def __init__(self) -> None:
        self.finished: list[tuple[str, Outcome, float | None]] = []
        self.fetches: list[tuple[str, int]] = []
        self.fetch_failures: list[str] = []

    def item_finished(self, handler: str, outcome: Outcome, duration_s: float | None) -> None:
        self.finished.append((handler, outcome, duration_s))

    def fetched(self, handler: str, count: int, seconds: float) -> None:
        assert seconds >= 0
        self.fetches.append((handler, count))

    def fetch_failed(self, handler: str) -> None:
        self.fetch_failures.append(handler)


class Broken:
    def item_finished(self, handler: str, outcome: Outcome, duration_s: float | None) -> None:
        raise RuntimeError("observer bug")

    def fetched(self, handler: str, count: int, seconds: float) -> None:
        raise RuntimeError("observer bug")

    def fetch_failed(self, handler: str) -> None:
        raise RuntimeError("observer bug")


class DeadLetteringHandler(FakeClaimHandler):
    """Its `fail` says the item is dead-lettered for odd indexes (a retry for even ones)."""

    async def fail(self, item: Any, error: BaseException) -> bool:  # type: ignore[override]
        await super().fail(item, error)
        return bool(item.index % 2)


async def fail_all(_item: Item) -> None:
    raise ValueError("no")


async def run(*registrations: Any, observer: Any) -> None:
    engine = WorkItemProcessingEngine(registrations, observer=observer)
    async with asyncio.timeout(GUARD_S):
        await engine.run_cycle()


async def test_every_outcome_and_fetch_is_told() -> None:
    recorder = Recorder()
    fine = HandlerState("Fine", items_for("Fine", 3))
    failing = HandlerState("Failing", items_for("Failing", 4), process_hook=fail_all)

    async def broken_fetch(_quota: int) -> Sequence[Item]:
        raise ConnectionError("source away")

    away = HandlerState("Away", fetch_hook=broken_fetch)

    await run(
        registration(fine),
        registration(failing, DeadLetteringHandler),
        registration(away),
        observer=recorder,
    )

    by_outcome = sorted((h, o.value) for h, o, _ in recorder.finished)
    assert by_outcome == sorted(
        [("Fine", "succeeded")] * 3
        + [("Failing", "failed")] * 2  # retries scheduled (even indexes)
        + [("Failing", "dead_lettered")] * 2
    )
    durations = {o: d for _, o, d in recorder.finished}
    assert durations[Outcome.FAILED] is None
    assert all(d is not None and d >= 0 for _, o, d in recorder.finished if o is Outcome.SUCCEEDED)
    assert sorted(recorder.fetches) == [("Failing", 4), ("Fine", 3)]
    assert recorder.fetch_failures == ["Away"]


async def test_a_handler_without_claims_fails_items_without_dead_letters() -> None:
    recorder = Recorder()
    failing = HandlerState("Failing", items_for("Failing", 2), process_hook=fail_all)

    await run(registration(failing), observer=recorder)

    assert [o for _, o, _ in recorder.finished] == [Outcome.FAILED, Outcome.FAILED]


async def test_an_observer_that_raises_changes_nothing_for_the_engine_or_the_others() -> None:
    recorder = Recorder()
    fine = HandlerState("Fine", items_for("Fine", 3))
    engine = WorkItemProcessingEngine([registration(fine)], observer=combine([Broken(), recorder]))

    async with asyncio.timeout(GUARD_S):
        report = await engine.run_cycle()

    assert report.handlers["Fine"].succeeded == 3
    assert len(recorder.finished) == 3
