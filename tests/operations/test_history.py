"""outcome_history: dense per-minute and per-hour series from the per-minute counters, on
SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from myapp.data.models import HandlerOutcomeRow
from myapp.operations.history import outcome_history

NOW = datetime(2026, 11, 29, 21, 30, 15, tzinfo=UTC)


def outcome(handler: str, minute: datetime, ok: int, failed: int = 0, dead: int = 0) -> Any:
    return HandlerOutcomeRow(
        handler=handler,
        minute=minute,
        succeeded=ok,
        failed=failed,
        dead_lettered=dead,
        count=ok,
        total_duration_ms=0.0,
        max_duration_ms=0.0,
    )


async def test_minutes_and_hours_are_dense_and_summed(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    this_minute = datetime(2026, 11, 29, 21, 30, tzinfo=UTC)
    async with session_factory() as session:
        session.add_all(
            [
                outcome("A", this_minute, 3, 1),
                outcome("A", this_minute - timedelta(minutes=5), 2, 0, 1),
                outcome("A", this_minute - timedelta(minutes=61), 7),  # an hour ago: hours only
                outcome("A", datetime(2026, 11, 28, 9, 59, tzinfo=UTC), 4, 2),
                outcome("B", this_minute, 1),
                outcome("A", datetime(2026, 11, 1, tzinfo=UTC), 100),  # before the days shown
            ]
        )
        await session.commit()
        history = await outcome_history(session, ["A", "B", "C"], NOW, days=2)

    a, b, c = history
    assert [h.handler for h in history] == ["A", "B", "C"]
    assert len(a.per_minute) == 60 and len(a.per_hour) == 48
    assert a.per_minute[-1].start == this_minute
    assert (a.per_minute[-1].succeeded, a.per_minute[-1].failed) == (3, 1)
    assert a.per_minute[-6].dead_lettered == 1
    assert sum(m.succeeded for m in a.per_minute) == 5
    assert a.per_hour[-1].start == datetime(2026, 11, 29, 21, tzinfo=UTC)
    assert (a.per_hour[-1].succeeded, a.per_hour[-1].failed) == (5, 1)
    assert a.per_hour[-2].succeeded == 7
    nine = next(h for h in a.per_hour if h.start == datetime(2026, 11, 28, 9, tzinfo=UTC))
    assert (nine.succeeded, nine.failed) == (4, 2)
    assert sum(h.succeeded for h in a.per_hour) == 16
    assert sum(m.succeeded for m in b.per_minute) == 1
    assert not any(m.succeeded or m.failed for m in c.per_minute + c.per_hour)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(st.integers(0, 47 * 60), st.integers(0, 50)), max_size=20))
async def test_hours_sum_what_the_minutes_hold(
    session_factory: async_sessionmaker[AsyncSession], rows: list[tuple[int, int]]
) -> None:
    this_minute = datetime(2026, 11, 29, 21, 30, tzinfo=UTC)
    minutes = {this_minute - timedelta(minutes=ago): ok for ago, ok in rows}
    async with session_factory() as session:
        await session.execute(delete(HandlerOutcomeRow))
        session.add_all([outcome("A", minute, ok) for minute, ok in minutes.items()])
        await session.commit()
        (a,) = await outcome_history(session, ["A"], NOW, days=2)
    first_hour = a.per_hour[0].start
    assert sum(h.succeeded for h in a.per_hour) == sum(
        ok for minute, ok in minutes.items() if minute >= first_hour
    )
    for bucket in a.per_hour:
        end = bucket.start + timedelta(hours=1)
        assert bucket.succeeded == sum(
            ok for minute, ok in minutes.items() if bucket.start <= minute < end
        )
