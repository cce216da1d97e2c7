"""A database outage: DatabaseOutage's log lines and backoff, and the engine telling an outage
once (not a traceback per fetch), backing off instead of polling, and telling once when it ends."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from typing import Any

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tenacity import wait_fixed

from myapp.processing import WorkItemProcessingEngine
from myapp.processing.transient import (
    FIRST_RETRY_DELAY_S,
    MAX_RETRY_DELAY_S,
    RETRY_JITTER_S,
    DatabaseOutage,
)
from tests.fixtures.logs import LogCapture
from tests.unit.processing.test_engine import engine_for, run_cycle
from tests.unit.processing.test_hosting import GUARD_S, ONE_HOUR
from tests.unit.support import FakeClaimHandler, HandlerState, Item, items_for, registration

SECRET = "s3cr3t-Pa55w0rd-do-not-print"
UNREACHABLE = "Database unreachable"
BACK = "Database reachable again"


def refused() -> ConnectionRefusedError:
    """Made by hand: not raised by a database driver."""
    return ConnectionRefusedError(111, f"Connect call failed postgresql://app:{SECRET}@db/x")


@pytest.fixture
async def db_refused() -> BaseException:
    """A real refusal, raised by asyncpg connecting to a loopback port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    try:
        await asyncpg.connect(host="127.0.0.1", port=port, user="postgres")
    except OSError as error:
        return error
    pytest.fail("nobody should listen there")


def levels(logs: LogCapture, fragment: str) -> list[str]:
    return [record.level for record in logs.containing(fragment)]


# --- DatabaseOutage ----------------------------------------------------------------------------


def test_an_outage_warns_once_then_says_once_that_it_is_over(logs: LogCapture) -> None:
    outage = DatabaseOutage()

    for _ in range(5):
        outage.failed(refused())
    down = outage.down
    outage.recovered()
    outage.recovered()

    assert down and not outage.down
    assert levels(logs, UNREACHABLE) == ["WARNING"]
    assert logs.containing(UNREACHABLE)[0].message == (
        "Database unreachable: ConnectionRefusedError: [Errno 111] Connect call failed "
        "postgresql://app:***@db/x; retrying with backoff"
    )
    assert levels(logs, "still unreachable") == ["DEBUG"] * 4
    assert levels(logs, BACK) == ["INFO"]
    assert "(5 failed attempts)" in logs.containing(BACK)[0].message
    assert SECRET not in logs.text


def test_a_new_outage_warns_again_and_no_outage_says_nothing(logs: LogCapture) -> None:
    outage = DatabaseOutage()
    outage.recovered()
    outage.failed(refused())
    outage.recovered()
    outage.failed(refused())

    assert levels(logs, UNREACHABLE) == ["WARNING", "WARNING"]
    assert levels(logs, BACK) == ["INFO"]


@given(st.integers(min_value=1, max_value=60))
def test_the_backoff_doubles_from_half_a_second_to_30_s_with_up_to_1_s_jitter(
    failures: int,
) -> None:
    outage = DatabaseOutage()
    for _ in range(failures):
        outage.failed(OSError("down"))

    delay = outage.next_delay()

    base = min(FIRST_RETRY_DELAY_S * 2 ** (failures - 1), MAX_RETRY_DELAY_S)
    assert base <= delay <= base + RETRY_JITTER_S


def test_the_backoff_starts_again_after_a_recovery() -> None:
    outage = DatabaseOutage()
    for _ in range(10):
        outage.failed(OSError("down"))
    outage.recovered()
    outage.failed(OSError("down again"))

    assert outage.next_delay() <= FIRST_RETRY_DELAY_S + RETRY_JITTER_S


# --- The engine: an outage is told once, and once when it is over -----------------------------


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("myapp.processing.refill.FETCH_ERROR_BACKOFF", wait_fixed(0.01))


def failing_then(error: BaseException, failures: int, items: list[Item]) -> HandlerState:
    calls = 0

    async def fetch(max_items: int) -> list[Item]:
        nonlocal calls
        calls += 1
        if calls <= failures:
            raise error
        return [item for item in items if item not in state.started][:max_items]

    state = HandlerState("Photos", fetch_hook=fetch)
    return state


async def test_an_unreachable_database_is_one_warning_not_a_traceback_per_fetch(
    db_refused: BaseException, logs: LogCapture
) -> None:
    broken = HandlerState("Broken", fetch_hook=lambda max_items: _raise(db_refused))
    healthy = HandlerState("Healthy", items_for("Healthy", 2))

    report = await run_cycle(engine_for(broken, healthy))

    assert report.handlers["Broken"].fetch_exception is db_refused
    assert report.handlers["Healthy"].fetch_exception is None
    assert levels(logs, UNREACHABLE) == ["WARNING"]
    fetch_errors = logs.containing("Error fetching work items from handler Broken")
    assert [(r.level, r.exception) for r in fetch_errors] == [("DEBUG", None)]
    assert not [r for r in logs.records if r.level == "ERROR"]
    assert report.handlers["Healthy"].succeeded == 2


async def _raise(error: BaseException) -> list[Item]:
    raise error


async def test_continuous_mode_tells_the_outage_once_backs_off_and_says_when_it_is_over(
    db_refused: BaseException, logs: LogCapture, fast_backoff: None
) -> None:
    items = items_for("Photos", 3)
    photos = failing_then(db_refused, failures=5, items=items)
    blobs = HandlerState("BlobCleanup", items_for("BlobCleanup", 1))  # no database: works on
    engine = engine_for(photos, blobs)

    run = asyncio.create_task(engine.run_continuously(ONE_HOUR))  # backoff, not the hour
    async with asyncio.timeout(GUARD_S):
        while len(photos.processed) < 3:  # noqa: ASYNC110 (waits on the fake's journal)
            await asyncio.sleep(0.01)
    engine.request_stop()
    await run

    assert levels(logs, UNREACHABLE) == ["WARNING"]
    assert levels(logs, BACK) == ["INFO"]
    assert not [r for r in logs.records if r.level == "ERROR" or r.exception is not None]
    assert not engine.outage.down
    assert len(photos.fetch_requests) >= 6  # 5 failures retried within the test, not hourly


async def test_a_handler_without_the_database_does_not_end_the_outage(
    db_refused: BaseException, logs: LogCapture, fast_backoff: None
) -> None:
    photos = failing_then(db_refused, failures=1_000_000, items=[])
    blobs = HandlerState("BlobCleanup", items_for("BlobCleanup", 3))
    engine = engine_for(photos, blobs)

    run = asyncio.create_task(engine.run_continuously(ONE_HOUR))
    await asyncio.sleep(0.3)
    engine.request_stop()
    await run

    assert levels(logs, UNREACHABLE) == ["WARNING"]
    assert not logs.containing(BACK)
    assert engine.outage.down
    assert len(blobs.processed) == 3


async def test_a_network_error_outside_the_database_is_not_an_outage(logs: LogCapture) -> None:
    """An HTTP client's refused connection is an OSError too, but not raised by a driver."""
    error = refused()
    blobs = HandlerState("BlobCleanup", fetch_hook=lambda max_items: _raise(error))

    await run_cycle(engine_for(blobs))

    assert not logs.containing(UNREACHABLE)
    [record] = logs.containing("Error fetching work items from handler BlobCleanup")
    assert (record.level, record.exception) == ("ERROR", error)
    assert SECRET not in str(record.message)


# --- Completion writes ride out a transient error ----------------------------------------------


async def test_a_completion_that_hits_a_transient_database_error_is_tried_again(
    db_refused: BaseException, logs: LogCapture
) -> None:
    calls: list[int] = []

    class Flaky(FakeClaimHandler):
        async def complete(self, items: Sequence[Any]) -> None:
            calls.append(len(items))
            if len(calls) <= 2:
                raise db_refused  # a real driver error: the connection was refused
            await super().complete(items)

    state = HandlerState("Flaky", items_for("Flaky", 3))
    engine = WorkItemProcessingEngine([registration(state, Flaky)])

    report = await run_cycle(engine)

    assert report.handlers["Flaky"].succeeded == 3
    assert len(calls) == 3  # twice refused, then written
    assert [sorted(i.index for i in batch) for (batch,) in state.calls("complete")] == [[0, 1, 2]]
    assert not logs.containing("Could not complete")


async def test_a_completion_that_keeps_failing_is_given_up_with_one_line(
    db_refused: BaseException, logs: LogCapture
) -> None:
    class Down(FakeClaimHandler):
        async def complete(self, items: Sequence[Any]) -> None:
            raise db_refused

    state = HandlerState("Down", items_for("Down", 2))

    await run_cycle(WorkItemProcessingEngine([registration(state, Down)]))

    [record] = logs.containing("Could not complete work items of handler Down")
    assert (record.level, record.exception) == ("WARNING", None)
