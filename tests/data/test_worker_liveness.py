"""A worker is live until it stops or misses STALE_AFTER_HEARTBEATS heartbeats in a row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from myapp.data.worker_liveness import STALE_AFTER_HEARTBEATS, worker_is_live

BEAT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
INTERVAL = timedelta(seconds=30)


def test_a_recent_heartbeat_is_live() -> None:
    assert worker_is_live(BEAT, None, BEAT + INTERVAL, INTERVAL)


def test_a_stopped_worker_is_not_live_however_recent() -> None:
    assert not worker_is_live(BEAT, BEAT, BEAT, INTERVAL)


def test_missing_heartbeats_make_it_stale() -> None:
    limit = BEAT + INTERVAL * STALE_AFTER_HEARTBEATS
    assert worker_is_live(BEAT, None, limit, INTERVAL)
    assert not worker_is_live(BEAT, None, limit + timedelta(microseconds=1), INTERVAL)


@given(
    age=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30)),
    interval=st.timedeltas(min_value=timedelta(milliseconds=50), max_value=timedelta(hours=1)),
)
def test_live_exactly_while_younger_than_the_missed_heartbeats(
    age: timedelta, interval: timedelta
) -> None:
    assert worker_is_live(BEAT, None, BEAT + age, interval) == (
        age <= interval * STALE_AFTER_HEARTBEATS
    )
