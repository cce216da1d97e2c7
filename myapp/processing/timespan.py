"""TimeSpan values as configuration writes them: `00:05:00`, `1.02:03:04`, ISO 8601 or seconds.

Every duration setting is one of the bounded types at the end (`LeaseTimeSpan`,
`TimeoutTimeSpan`, ...): a value outside its range stops start-up instead of being lost between
heartbeats (a 100 µs lease) or overflowing an asyncio timeout (99,999,999 days).
docs/configuration.md lists every key with its range.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    PlainSerializer,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)

_TIMESPAN = re.compile(
    r"^(?P<sign>-)?(?:(?P<days>\d+)\.)?(?P<hours>\d{1,2}):(?P<minutes>\d{1,2})"
    r"(?::(?P<seconds>\d{1,2})(?:\.(?P<fraction>\d{1,7}))?)?$"
)
EXPECTED = "a TimeSpan such as 00:05:00 (hh:mm:ss), 1.00:00:00 (d.hh:mm:ss), PT5M or seconds"


_SECONDS = re.compile(r"^\s*\d+(\.\d+)?\s*$")


def parse_timespan(value: Any) -> Any:
    """Turn a .NET-style TimeSpan string (or a string of seconds) into a timedelta; leave
    anything else to pydantic."""
    try:
        return _parse(value)
    except OverflowError:
        raise ValueError(f"a duration under {timedelta.max.days:,} days: {EXPECTED}") from None


def _parse(value: Any) -> Any:
    # pydantic would read `true` as one second; Python's JSON reader accepts NaN.
    if isinstance(value, bool) or (isinstance(value, float) and math.isnan(value)):
        raise ValueError(EXPECTED)
    if isinstance(value, str) and _SECONDS.match(value):
        return timedelta(seconds=float(value))
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _TIMESPAN.match(value.strip())
        if match:
            parts = match.groupdict()
            fraction = (parts["fraction"] or "0").ljust(7, "0")
            delta = timedelta(
                days=int(parts["days"] or 0),
                hours=int(parts["hours"]),
                minutes=int(parts["minutes"]),
                seconds=int(parts["seconds"] or 0),
                microseconds=int(fraction) / 10,
            )
            return -delta if parts["sign"] else delta
    return value


def format_timespan(value: timedelta) -> str:
    """The inverse of `parse_timespan`: `0:05:00` style, with days as `d.hh:mm:ss`."""
    sign = "-" if value < timedelta(0) else ""
    value = abs(value)
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    if value.microseconds:
        text += f".{value.microseconds:06d}".rstrip("0")
    return f"{sign}{value.days}.{text}" if value.days else f"{sign}{text}"


def _non_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError(f"a duration that is not negative: {EXPECTED}")
    return value


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError(f"a duration greater than zero: {EXPECTED}")
    return value


@dataclass(frozen=True)
class DurationRange:
    """The inclusive range of a duration setting; as a pydantic wrap validator it reads the
    value and refuses anything unreadable or out of range with one message naming the range."""

    minimum: timedelta
    maximum: timedelta

    def __call__(self, value: Any, read: ValidatorFunctionWrapHandler) -> timedelta:
        try:
            duration: timedelta = read(parse_timespan(value))
        except ValueError:  # pydantic's ValidationError included
            raise ValueError(self.expected) from None
        if not self.minimum <= duration <= self.maximum:
            raise ValueError(self.expected)
        return duration

    @property
    def expected(self) -> str:
        low, high = format_timespan(self.minimum), format_timespan(self.maximum)
        return f"a duration of at least {low} and at most {high}: {EXPECTED}"


# A lease shorter than a second is lost between heartbeats (the engine renews every lease
# LEASE_RENEWALS times within its length, and never more often than every 50 ms); one longer
# than a day keeps a dead worker's items locked for more than a day.
LEASE_RANGE = DurationRange(timedelta(seconds=1), timedelta(days=1))
# Timeouts of a fetch, an item, a request or a download: under 10 ms is a slip of the unit.
TIMEOUT_RANGE = DurationRange(timedelta(milliseconds=10), timedelta(days=7))
# Poll and heartbeat intervals: more often than 10 times a second only loads the database.
INTERVAL_RANGE = DurationRange(timedelta(milliseconds=100), timedelta(days=7))
# Grace for in-flight items on stop: service managers kill long before an hour (systemd's
# default is 90 s, Kubernetes' 30 s).
SHUTDOWN_RANGE = DurationRange(timedelta(0), timedelta(hours=1))
# Pauses inside one item (between requests, before a retry): the item holds its lease meanwhile.
DELAY_RANGE = DurationRange(timedelta(0), timedelta(hours=1))
# Retention ages: under a minute deletes what was just written; ten years keeps dates in range.
AGE_RANGE = DurationRange(timedelta(minutes=1), timedelta(days=3650))

_AS_TEXT = PlainSerializer(format_timespan, return_type=str, when_used="json")

NonNegativeTimeSpan = Annotated[
    timedelta, BeforeValidator(parse_timespan), AfterValidator(_non_negative), _AS_TEXT
]
PositiveTimeSpan = Annotated[
    timedelta, BeforeValidator(parse_timespan), AfterValidator(_positive), _AS_TEXT
]

LeaseTimeSpan = Annotated[timedelta, WrapValidator(LEASE_RANGE), _AS_TEXT]
TimeoutTimeSpan = Annotated[timedelta, WrapValidator(TIMEOUT_RANGE), _AS_TEXT]
IntervalTimeSpan = Annotated[timedelta, WrapValidator(INTERVAL_RANGE), _AS_TEXT]
ShutdownTimeSpan = Annotated[timedelta, WrapValidator(SHUTDOWN_RANGE), _AS_TEXT]
DelayTimeSpan = Annotated[timedelta, WrapValidator(DELAY_RANGE), _AS_TEXT]
AgeTimeSpan = Annotated[timedelta, WrapValidator(AGE_RANGE), _AS_TEXT]
