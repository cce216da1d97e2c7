"""A database outage: DatabaseOutage's log lines and backoff, the engine's one-line fetch
warning, and the service retrying with backoff instead of its poll interval."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tenacity import wait_fixed

from myapp.processing import CycleReport, HandlerCycleStats
from myapp.processing.hosting import BackgroundProcessingService
from myapp.processing.transient import (
    FIRST_RETRY_DELAY_S,
    MAX_RETRY_DELAY_S,
    RETRY_JITTER_S,
    DatabaseOutage,
)
from tests.fixtures.logs import LogCapture
from tests.unit.processing.test_engine import engine_for, run_cycle
from tests.unit.processing.test_hosting import GUARD_S, ONE_HOUR, QUIET, ScriptedEngine
from tests.unit.support import HandlerState, Item, items_for

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


# --- The engine: an unreachable database is one line per failed fetch, no traceback -----------


async def test_an_unreachable_database_is_a_one_line_fetch_warning(logs: LogCapture) -> None:
    error = refused()

    async def unreachable(max_items: int) -> list[Item]:
        raise error

    broken = HandlerState("Broken", fetch_hook=unreachable)
    healthy = HandlerState("Healthy", items_for("Healthy", 2))

    report = await run_cycle(engine_for(broken, healthy))

    assert report.handlers["Broken"].fetch_exception is error
    assert report.handlers["Healthy"].fetch_exception is None
    records = logs.containing("Error fetching work items from handler Broken")
    assert [(r.level, r.exception) for r in records] == [("WARNING", None)]
    assert "ConnectionRefusedError" in records[0].message
    assert SECRET not in logs.text
    assert report.handlers["Healthy"].succeeded == 2


# --- The service: back off while the database is away, poll again once it is back ------------


def failed_fetches(error: BaseException, *names: str, healthy: Sequence[str] = ()) -> CycleReport:
    stats = {
        name: HandlerCycleStats(fetch_error=repr(error), fetch_exception=error) for name in names
    }
    stats.update({name: HandlerCycleStats(fetched=1, succeeded=1) for name in healthy})
    return CycleReport(stats)


def fast_outage() -> DatabaseOutage:
    return DatabaseOutage(wait=wait_fixed(0.01))


async def run_until(
    engine: ScriptedEngine, service: BackgroundProcessingService, cycles: int
) -> None:
    await service.start()
    await engine.wait_for_cycles(cycles)
    async with asyncio.timeout(GUARD_S):
        await service.stop()


async def test_a_cycle_failing_on_the_database_backs_off_instead_of_polling(
    db_refused: BaseException, logs: LogCapture
) -> None:
    """An hour's poll interval: the 4th cycle comes at once only because of the backoff."""
    engine = ScriptedEngine([db_refused, db_refused, db_refused, QUIET])
    service = BackgroundProcessingService(engine, poll_interval=ONE_HOUR, outage=fast_outage())

    await run_until(engine, service, 4)

    assert levels(logs, UNREACHABLE) == ["WARNING"]
    assert levels(logs, BACK) == ["INFO"]
    assert not [r for r in logs.records if r.level == "ERROR" or r.exception is not None]
    assert not service.outage.down


async def test_a_fetch_failing_on_the_database_backs_off_while_others_work(
    db_refused: BaseException, logs: LogCapture
) -> None:
    """BlobCleanup does not use the database: it keeps working through the outage."""
    down = failed_fetches(db_refused, "Shein", "Photos", healthy=["BlobCleanup"])
    engine = ScriptedEngine([down, down, QUIET])
    service = BackgroundProcessingService(engine, poll_interval=ONE_HOUR, outage=fast_outage())

    await run_until(engine, service, 3)

    assert levels(logs, UNREACHABLE) == ["WARNING"]
    assert levels(logs, BACK) == ["INFO"]


async def test_a_network_error_outside_the_database_is_not_an_outage(logs: LogCapture) -> None:
    """An HTTP client's refused connection is an OSError too, but not raised by a driver."""
    engine = ScriptedEngine([failed_fetches(refused(), "BlobCleanup", healthy=["Shein"])])
    service = BackgroundProcessingService(engine, poll_interval=ONE_HOUR, outage=fast_outage())

    await service.start()
    await engine.wait_for_cycles(1)
    await asyncio.sleep(0.1)  # an outage would have retried many times by now
    await service.stop()

    assert engine.cycles == 1
    assert not logs.containing(UNREACHABLE)


async def test_a_stop_interrupts_the_backoff_wait(db_refused: BaseException) -> None:
    engine = ScriptedEngine([db_refused])
    outage = DatabaseOutage(wait=wait_fixed(ONE_HOUR.total_seconds()))
    service = BackgroundProcessingService(engine, poll_interval=ONE_HOUR, outage=outage)

    await service.start()
    await engine.wait_for_cycles(1)
    async with asyncio.timeout(GUARD_S):  # an hour-long backoff must not hold the stop
        await service.stop()

    assert engine.cycles == 1
    assert service.outage.down
