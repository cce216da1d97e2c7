"""Every duration and count setting has a range: a value one step outside it stops start-up with
a ConfigurationError naming the full key; the ends of the range are accepted (docs/configuration.md
lists the same ranges)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from myapp.handlers.blob_cleanup import BlobCleanupOptions
from myapp.handlers.image_vectorization import ImageVectorizationOptions
from myapp.handlers.shein_batch import SheinOptions
from myapp.processing import ConfigurationError
from myapp.processing.options import HandlerOptions
from myapp.processing.timespan import (
    AGE_RANGE,
    DELAY_RANGE,
    INTERVAL_RANGE,
    LEASE_RANGE,
    SHUTDOWN_RANGE,
    TIMEOUT_RANGE,
    DurationRange,
    format_timespan,
)
from myapp.processing.wiring import handler_options
from myapp.settings import load_settings

ONE_TICK = timedelta(microseconds=1)  # the finest step a timedelta (and so a setting) can take
HANDLER_OPTIONS: dict[str, type[HandlerOptions]] = {
    "Shein": SheinOptions,
    "ImageVectorization": ImageVectorizationOptions,
    "BlobCleanup": BlobCleanupOptions,
    "Plain": HandlerOptions,  # a handler without options of its own
}


@dataclass(frozen=True)
class Bound:
    """One bounded key: its full name and the range of values it takes."""

    key: str
    minimum: Any
    maximum: Any
    optional: bool = False  # None (JSON null) means "none": no timeout, the engine's default

    @property
    def path(self) -> list[str]:
        return self.key.split(":")

    def read(self, config_dir: Path, value: Any) -> Any:
        """`value` at this key, read the way start-up reads it; returns the parsed value."""
        document: Any = value
        for part in reversed(self.path):
            document = {part: document}
        if len(self.path) == 3:  # BackgroundProcessing:<Name>:<Key>: read as containers do
            _, name, field = self.path
            options = handler_options(HANDLER_OPTIONS[name], document[self.path[0]], name)
            return getattr(options, _snake(field))
        (config_dir / "appsettings.json").write_text(json.dumps(document), encoding="utf-8")
        section = getattr(load_settings(config_dir=config_dir), _snake(self.path[0]))
        return getattr(section, _snake(self.path[1]))


def _snake(pascal: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in pascal).lstrip("_")


def duration(key: str, bounds: DurationRange, *, optional: bool = False) -> Bound:
    return Bound(key, bounds.minimum, bounds.maximum, optional)


DURATIONS = [
    duration("IngestionService:PollInterval", INTERVAL_RANGE),
    duration("BackgroundProcessing:FetchTimeout", TIMEOUT_RANGE, optional=True),
    duration("BackgroundProcessing:ItemTimeout", TIMEOUT_RANGE, optional=True),
    duration("BackgroundProcessing:ShutdownTimeout", SHUTDOWN_RANGE),
    duration("BackgroundProcessing:HeartbeatInterval", INTERVAL_RANGE),
    duration("BackgroundProcessing:Plain:ItemTimeout", TIMEOUT_RANGE, optional=True),
    duration("BackgroundProcessing:Shein:ItemTimeout", TIMEOUT_RANGE, optional=True),
    duration("BackgroundProcessing:Shein:RequestTimeout", TIMEOUT_RANGE),
    duration("BackgroundProcessing:Shein:RequestDelay", DELAY_RANGE),
    duration("BackgroundProcessing:Shein:RetryBackoff", DELAY_RANGE),
    duration("BackgroundProcessing:Shein:RetryMaxWait", DELAY_RANGE),
    duration("BackgroundProcessing:Shein:ClaimLease", LEASE_RANGE),
    duration("BackgroundProcessing:ImageVectorization:DownloadTimeout", TIMEOUT_RANGE),
    duration("BackgroundProcessing:BlobCleanup:MaxAge", AGE_RANGE),
    duration("Metrics:FlushInterval", INTERVAL_RANGE),
]
COUNTS = [
    Bound("BackgroundProcessing:MaxConcurrency", 1, 1_000),
    Bound("BackgroundProcessing:QueueSize", 1, 10_000),
    Bound("BackgroundProcessing:Plain:MaxConcurrency", 1, 1_000),
    Bound("BackgroundProcessing:Plain:MaxItemsPerCycle", 1, 10_000),
    Bound("BackgroundProcessing:Shein:MaxItemsPerCycle", 1, 10_000),
    Bound("Metrics:Port", 0, 65_535),
    Bound("Metrics:RetentionDays", 1, 3_650),
    Bound("Workers:RetentionDays", 1, 3_650),
]
ALL = DURATIONS + COUNTS


def by_key(bound: Bound) -> str:
    return bound.key


def as_setting(value: Any) -> Any:
    """A duration as appsettings.json writes it (`1.00:00:00.000001`); a count as it is."""
    return format_timespan(value) if isinstance(value, timedelta) else value


def refusal(bound: Bound, config_dir: Path, value: Any) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as raised:
        bound.read(config_dir, value)
    return raised.value


def step(bound: Bound) -> Any:
    return ONE_TICK if isinstance(bound.minimum, timedelta) else 1


@pytest.mark.parametrize("bound", ALL, ids=by_key)
def test_both_ends_of_the_range_are_accepted(bound: Bound, config_dir: Path) -> None:
    assert bound.read(config_dir, as_setting(bound.minimum)) == bound.minimum
    assert bound.read(config_dir, as_setting(bound.maximum)) == bound.maximum


@pytest.mark.parametrize("bound", ALL, ids=by_key)
def test_one_step_below_the_minimum_is_refused_naming_the_key(
    bound: Bound, config_dir: Path
) -> None:
    text = as_setting(bound.minimum - step(bound))

    error = refusal(bound, config_dir, text)

    assert error.key == bound.key
    assert error.value == text
    assert f"{bound.key} = {text!r} is invalid: expected " in str(error)


@pytest.mark.parametrize("bound", ALL, ids=by_key)
def test_one_step_above_the_maximum_is_refused_naming_the_key(
    bound: Bound, config_dir: Path
) -> None:
    text = as_setting(bound.maximum + step(bound))

    error = refusal(bound, config_dir, text)

    assert error.key == bound.key
    assert f"{bound.key} = {text!r} is invalid: expected " in str(error)


@pytest.mark.parametrize("bound", DURATIONS, ids=by_key)
def test_a_duration_refusal_states_the_range_as_timespans(bound: Bound, config_dir: Path) -> None:
    error = refusal(bound, config_dir, as_setting(bound.maximum + ONE_TICK))

    low, high = format_timespan(bound.minimum), format_timespan(bound.maximum)
    assert error.expected.startswith(f"a duration of at least {low} and at most {high}: ")
    assert "00:05:00 (hh:mm:ss)" in error.expected  # the TimeSpan forms, as for unreadable text


@pytest.mark.parametrize(
    ("key", "text", "message"),
    [
        (
            "BackgroundProcessing:Shein:ClaimLease",
            "00:00:00.0001",
            "BackgroundProcessing:Shein:ClaimLease = '00:00:00.0001' is invalid: expected a "
            "duration of at least 00:00:01 and at most 1.00:00:00: a TimeSpan such as 00:05:00",
        ),
        (
            "BackgroundProcessing:ShutdownTimeout",
            "99999999.00:00:00",
            "BackgroundProcessing:ShutdownTimeout = '99999999.00:00:00' is invalid: expected a "
            "duration of at least 00:00:00 and at most 01:00:00: a TimeSpan such as 00:05:00",
        ),
    ],
)
def test_the_values_measured_in_the_issue_are_refused(
    key: str, text: str, message: str, config_dir: Path
) -> None:
    bound = next(b for b in DURATIONS if b.key == key)

    assert str(refusal(bound, config_dir, text)).startswith(message)


@pytest.mark.parametrize("value", [True, False, float("nan"), "-1", "soon", [1], {"s": 1}])
def test_values_that_are_no_duration_are_refused_with_the_range(
    value: Any, config_dir: Path
) -> None:
    bound = duration("BackgroundProcessing:Shein:ClaimLease", LEASE_RANGE)

    error = refusal(bound, config_dir, value)

    assert error.key == bound.key
    assert error.expected.startswith("a duration of at least 00:00:01 and at most 1.00:00:00")


def iso(value: timedelta) -> str:
    sign = "-" if value < timedelta(0) else ""
    value = abs(value)
    return f"{sign}P{value.days}DT{value.seconds}.{value.microseconds:06d}S"


WIDE = st.timedeltas(min_value=timedelta(days=-30_000), max_value=timedelta(days=30_000))
NEAR_ZERO = st.timedeltas(min_value=timedelta(seconds=-5), max_value=timedelta(seconds=5))
WITHIN_DAYS = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=8))
DURATIONS_WRITTEN: st.SearchStrategy[tuple[timedelta, Any]] = st.one_of(
    (WIDE | NEAR_ZERO | WITHIN_DAYS).map(lambda d: (d, format_timespan(d))),
    (WIDE | NEAR_ZERO | WITHIN_DAYS).map(lambda d: (d, iso(d))),
    st.integers(min_value=0, max_value=10**9).map(lambda s: (timedelta(seconds=s), s)),
    st.integers(min_value=0, max_value=10**9).map(lambda s: (timedelta(seconds=s), str(s))),
)
ANYTHING: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(),
    st.integers(),
    st.text(max_size=30),
    st.from_regex(r"-?(\d{1,12}\.)?\d{1,3}:\d{1,3}(:\d{1,3}(\.\d{1,9})?)?", fullmatch=True),
    st.from_regex(
        r"-?P(\d{1,12}D)?(T(\d{1,9}H)?(\d{1,9}M)?(\d{1,9}(\.\d{1,6})?S)?)?", fullmatch=True
    ),
)
PROPERTY_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    # config_dir only gives an empty directory whose file each example rewrites.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.mark.parametrize("bound", DURATIONS, ids=by_key)
@PROPERTY_SETTINGS
@given(written=DURATIONS_WRITTEN)
def test_a_written_duration_is_accepted_exactly_when_it_is_in_range(
    bound: Bound, config_dir: Path, written: tuple[timedelta, Any]
) -> None:
    meant, text = written
    if bound.minimum <= meant <= bound.maximum:
        assert bound.read(config_dir, text) == meant
    else:
        assert refusal(bound, config_dir, text).key == bound.key


@pytest.mark.parametrize("bound", DURATIONS, ids=by_key)
@PROPERTY_SETTINGS
@given(value=ANYTHING)
def test_any_value_is_a_duration_in_range_or_a_configuration_error_naming_the_key(
    bound: Bound, config_dir: Path, value: Any
) -> None:
    try:
        parsed = bound.read(config_dir, value)
    except ConfigurationError as error:
        assert error.key == bound.key
        assert error.expected.startswith("a duration of at least ")
    else:
        if parsed is None:
            assert bound.optional and value is None
        else:
            assert bound.minimum <= parsed <= bound.maximum
