"""The engine's log context: what a handler logs during its fetch, process and lifecycle calls
carries the name it was registered under and the item's id, in the JSON log lines too, without
the handler binding anything."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from loguru import logger

from myapp.logs import configure_logging
from myapp.processing import HandlerRegistration, WorkItemProcessingEngine
from myapp.processing.log_context import stop_working, work_on
from tests.unit.support import FakeClaimHandler, HandlerState, Item, items_for, registration

DEADLOCK_GUARD_S = 20


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """`Logging:Format=json` at Debug, written to a string."""
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure_logging("Debug", "json", sink=stream)
    yield stream
    logger.remove()
    logger.add(sys.stderr)
    root.handlers[:] = handlers
    root.setLevel(level)


def records(stream: io.StringIO, message: str) -> list[dict[str, Any]]:
    parsed = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [_context(line) for line in parsed if line["message"] == message]


def _context(line: dict[str, Any]) -> dict[str, Any]:
    """A JSON line's handler and item id (only those set)."""
    return {key: line[key] for key in ("handler", "item_id") if line[key] is not None}


class TalkativeHandler(FakeClaimHandler):
    """One class, registered twice below; it logs in every call and binds nothing."""

    async def fetch_work_items(self, max_items: int) -> Sequence[Any]:
        logger.info("fetching")
        return await super().fetch_work_items(max_items)

    async def process(self, item: Any) -> None:
        logger.info("processing")
        await super().process(item)

    async def complete(self, items: Sequence[Any]) -> None:
        logger.info("completing")
        await super().complete(items)

    async def fail(self, item: Any, error: BaseException) -> None:
        logger.info("failing")
        await super().fail(item, error)


async def run_cycle(*registrations: HandlerRegistration) -> None:
    async with asyncio.timeout(DEADLOCK_GUARD_S):
        await WorkItemProcessingEngine(registrations).run_cycle()


async def test_two_registrations_of_one_class_log_under_their_own_names(
    json_lines: io.StringIO,
) -> None:
    async def fail_first(item: Item) -> None:
        if item.index == 0:
            raise RuntimeError("out of stock")

    orders = HandlerState("Orders", items_for("Orders", 3), process_hook=fail_first)
    refunds = HandlerState("Refunds", items_for("Refunds", 2))

    await run_cycle(registration(orders, TalkativeHandler), registration(refunds, TalkativeHandler))

    processing = records(json_lines, "processing")
    for state in (orders, refunds):
        assert sorted(r["item_id"] for r in processing if r["handler"] == state.name) == sorted(
            str(item.id) for item in state.items
        )
    assert len(processing) == 5
    # A fetch and a completion concern several items: the handler's name alone. (The
    # completion is flushed by a task started from one item's process call.)
    assert sorted(r["handler"] for r in records(json_lines, "fetching")) == ["Orders", "Refunds"]
    completing = records(json_lines, "completing")
    assert {r["handler"] for r in completing} == {"Orders", "Refunds"}
    assert all("item_id" not in r for r in completing)
    # A failure is about one item: its fail call and the engine's Error entry say which.
    failed_id = str(orders.items[0].id)
    assert records(json_lines, "failing") == [{"handler": "Orders", "item_id": failed_id}]
    [error] = [
        json.loads(line)
        for line in json_lines.getvalue().splitlines()
        if "Error processing work item" in line
    ]
    assert _context(error) == {"handler": "Orders", "item_id": failed_id}


class SynchronousHandler:
    """`def process`: runs in a thread of the handler's own."""

    def __init__(self, items: list[Item]) -> None:
        self.items = items

    async def fetch_work_items(self, max_items: int) -> list[Item]:
        return self.items

    def process(self, item: Item) -> None:
        logger.info("processing in a thread")


async def test_a_synchronous_process_call_in_a_thread_logs_its_item(
    json_lines: io.StringIO,
) -> None:
    items = items_for("Threads", 2)

    await run_cycle(HandlerRegistration(lambda: SynchronousHandler(items), name="Threads"))

    assert sorted(r["item_id"] for r in records(json_lines, "processing in a thread")) == sorted(
        str(item.id) for item in items
    )


async def test_what_a_handler_binds_itself_wins(json_lines: io.StringIO) -> None:
    """A batch handler names the item each line is about, inside a call about several."""

    async def per_part(item: Item) -> None:
        logger.bind(item_id="part-7").info("a part of the item")

    state = HandlerState("Parts", items_for("Parts", 1), process_hook=per_part)

    await run_cycle(registration(state))

    assert records(json_lines, "a part of the item") == [{"handler": "Parts", "item_id": "part-7"}]


def test_outside_any_call_records_carry_no_work_context(json_lines: io.StringIO) -> None:
    logger.info("before")
    working = work_on("Orders", 42)
    logger.info("during")
    stop_working(working)
    logger.info("after")

    assert records(json_lines, "before") == [{}]
    assert records(json_lines, "during") == [{"handler": "Orders", "item_id": "42"}]  # as text
    assert records(json_lines, "after") == [{}]
