"""The loop watchdog names the handler and item that block the event loop."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from myapp.processing import HandlerRegistration, WorkItemProcessingEngine
from tests.fixtures.logs import LogCapture


@dataclass(frozen=True)
class Item:
    id: uuid.UUID = field(default_factory=uuid.uuid4)


class Blocking:
    """Makes a synchronous call inside `async def process`: the mistake the watchdog finds."""

    item = Item()

    async def fetch_work_items(self, max_items: int) -> Sequence[Item]:
        return [self.item]

    async def process(self, item: Item) -> None:
        time.sleep(1.6)  # noqa: ASYNC251 (the mistake under test)


class Polite:
    async def fetch_work_items(self, max_items: int) -> Sequence[Item]:
        return [Item() for _ in range(max_items)]

    async def process(self, item: Item) -> None:
        await asyncio.sleep(0.3)


async def test_a_handler_blocking_the_loop_is_named_with_its_item(logs: LogCapture) -> None:
    engine = WorkItemProcessingEngine([HandlerRegistration(Blocking, name="Sleepy")])

    await engine.run_cycle()
    await asyncio.sleep(0.3)  # the watchdog thread reports the loop running again

    [blocked] = logs.containing("The event loop has been blocked")
    assert blocked.level == "ERROR"
    assert "handler 'Sleepy'" in blocked.message
    assert str(Blocking.item.id) in blocked.message
    assert "test_watchdog.py" in blocked.message  # the line the loop was stuck on
    assert logs.containing("The event loop ran again after being blocked")


async def test_a_handler_that_awaits_is_never_reported(logs: LogCapture) -> None:
    engine = WorkItemProcessingEngine([HandlerRegistration(Polite, name="Polite")])

    for _ in range(3):
        await engine.run_cycle()  # 3 x 1.2 s of awaiting

    assert logs.containing("blocked") == []
