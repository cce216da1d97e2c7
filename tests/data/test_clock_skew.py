"""The start-up clock check: the offset to the database's clock, and one warning when it is off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from myapp.clock import utc_now
from myapp.data.clock_skew import database_clock_offset, warn_if_clock_skewed
from myapp.data.database import create_engine
from tests.fixtures.clock import FakeClock
from tests.fixtures.logs import LogCapture

# The databases run on this machine: their clocks are this one's, give or take a round trip.
SAME_MACHINE = timedelta(milliseconds=500)
SKEW = timedelta(hours=2)
STOPPED_AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)  # a clock stuck there: skewed by months


def skew_warnings(logs: LogCapture) -> list[str]:
    return [m for m in logs.messages("WARNING") if "clock" in m]


async def test_the_offset_is_the_database_time_minus_the_local_time(db_engine: AsyncEngine) -> None:
    assert abs(await database_clock_offset(db_engine)) < SAME_MACHINE
    ahead = await database_clock_offset(db_engine, lambda: utc_now() + SKEW)
    assert abs(ahead + SKEW) < SAME_MACHINE  # the worker is 2 h ahead: the database 2 h behind it


async def test_a_skewed_clock_logs_one_warning_naming_both_times_and_the_offset(
    db_engine: AsyncEngine, logs: LogCapture
) -> None:
    offset = await warn_if_clock_skewed(db_engine, FakeClock(STOPPED_AT))

    assert offset is not None and abs(offset - (utc_now() - STOPPED_AT)) < SAME_MACHINE
    [warning] = skew_warnings(logs)
    assert "2026-01-01T12:00:00.000+00:00" in warning  # the worker's time
    database_time = (STOPPED_AT + offset).isoformat(timespec="milliseconds")
    assert database_time in warning
    assert f"{offset.total_seconds():+.3f} s" in warning
    assert "Leases and retry times use the database's clock" in warning


async def test_a_true_clock_logs_nothing(db_engine: AsyncEngine, logs: LogCapture) -> None:
    offset = await warn_if_clock_skewed(db_engine)

    assert offset is not None and abs(offset) < SAME_MACHINE
    assert skew_warnings(logs) == []


async def test_the_tolerance_decides(db_engine: AsyncEngine, logs: LogCapture) -> None:
    a_minute_ahead = FakeClock(utc_now() + timedelta(minutes=1))
    await warn_if_clock_skewed(db_engine, a_minute_ahead, tolerance=timedelta(minutes=2))
    assert skew_warnings(logs) == []
    await warn_if_clock_skewed(db_engine, a_minute_ahead, tolerance=timedelta(seconds=30))
    assert len(skew_warnings(logs)) == 1


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_an_unusable_database_is_a_warning_not_a_crash(
    kind: str, tmp_path: Path, logs: LogCapture
) -> None:
    (tmp_path / "app.db").write_bytes(b"not a database" * 100)
    url = {
        "sqlite": f"sqlite+aiosqlite:///{tmp_path}/app.db",
        "postgresql": "postgresql+asyncpg://postgres@127.0.0.1:1/nothing",  # a closed port
    }[kind]
    engine = create_engine(url)
    try:
        assert await warn_if_clock_skewed(engine) is None
    finally:
        await engine.dispose()
    [warning] = skew_warnings(logs)
    assert warning.startswith("Could not compare this worker's clock with the database's")
