"""TimeSpan values as configuration writes them: `00:05:00`, `1.02:03:04`, ISO 8601 or seconds."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer

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
    if isinstance(value, str) and _SECONDS.match(value):
        return timedelta(seconds=float(value))
    if isinstance(value, int | float) and not isinstance(value, bool):
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


_AS_TEXT = PlainSerializer(format_timespan, return_type=str, when_used="json")

TimeSpan = Annotated[timedelta, BeforeValidator(parse_timespan), _AS_TEXT]
NonNegativeTimeSpan = Annotated[
    timedelta, BeforeValidator(parse_timespan), AfterValidator(_non_negative), _AS_TEXT
]
PositiveTimeSpan = Annotated[
    timedelta, BeforeValidator(parse_timespan), AfterValidator(_positive), _AS_TEXT
]
