"""The loop watchdog names the handler and item that block the event loop."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from myapp.processing import HandlerRegistration, WorkItemProcessingEngine, watchdog
from tests.fixtures.logs import LogCapture

# The watchdog's clock at 0.4 of its length (a 0.4 s threshold, 0.04 s ticks), and every wait
# below with it: the same stalls and margins in 0.4 of the time.
SCALE = 0.4


@pytest.fixture(autouse=True)
def quicker_watchdog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        watchdog,
        "DEFAULT_STALL_THRESHOLD_SECONDS",
        SCALE * watchdog.DEFAULT_STALL_THRESHOLD_SECONDS,
    )
    monkeypatch.setattr(watchdog, "TICK_SECONDS", SCALE * watchdog.TICK_SECONDS)


@dataclass(frozen=True)
class Item:
    id: uuid.UUID = field(default_factory=uuid.uuid4)


class Blocking:
    """Makes a synchronous call inside `async def process`: the mistake the watchdog finds."""

    item = Item()

    async def fetch_work_items(self, max_items: int) -> Sequence[Item]:
        return [self.item]

    async def process(self, item: Item) -> None:
        time.sleep(SCALE * 1.6)  # noqa: ASYNC251 (the mistake under test)


class Polite:
    async def fetch_work_items(self, max_items: int) -> Sequence[Item]:
        return [Item() for _ in range(max_items)]

    async def process(self, item: Item) -> None:
        await asyncio.sleep(SCALE * 0.3)


async def test_a_handler_blocking_the_loop_is_named_with_its_item(logs: LogCapture) -> None:
    engine = WorkItemProcessingEngine([HandlerRegistration(Blocking, name="Sleepy")])

    await engine.run_cycle()
    await asyncio.sleep(SCALE * 0.3)  # the watchdog thread reports the loop running again

    [blocked] = logs.containing("The event loop has been blocked")
    assert blocked.level == "ERROR"
    assert "handler 'Sleepy'" in blocked.message
    assert str(Blocking.item.id) in blocked.message
    assert "test_watchdog.py" in blocked.message  # the line the loop was stuck on
    assert logs.containing("The event loop ran again after being blocked")


async def test_a_handler_that_awaits_is_never_reported(logs: LogCapture) -> None:
    engine = WorkItemProcessingEngine([HandlerRegistration(Polite, name="Polite")])

    for _ in range(3):
        await engine.run_cycle()  # 3 x 3 rounds of awaiting, each longer than a tick

    assert logs.containing("blocked") == []
