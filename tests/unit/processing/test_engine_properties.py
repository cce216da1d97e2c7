"""Property tests: quota truncation, exactly-once processing, concurrency caps, failure isolation,
and every item a claiming handler returned ending exactly once (the quota's excess released).

Each example runs its own cycle in a fresh event loop (`asyncio.run`); processing yields once
(`sleep(0)`) so calls overlap without taking wall time.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loguru import logger

from myapp.processing import CycleReport, HandlerRegistration, WorkItemProcessingEngine
from tests.fixtures.logs import LogCapture
from tests.unit.support import (
    ConcurrencyProbe,
    FakeClaimHandler,
    FakeHandler,
    HandlerState,
    Item,
    items_for,
    registration,
)

PROPERTY_SETTINGS = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
DEADLOCK_GUARD_S = 20


@dataclass(frozen=True)
class Spec:
    quota: int
    returned: int
    cap: int | None
    failing: frozenset[int] = frozenset()

    @property
    def kept(self) -> int:
        return min(self.returned, self.quota)


specs = st.builds(
    Spec,
    quota=st.integers(1, 20),
    returned=st.one_of(st.integers(0, 60), st.sampled_from([0, 1, 20, 21, 60])),
    cap=st.one_of(st.none(), st.integers(1, 4)),
)
spec_lists = st.lists(specs, min_size=1, max_size=5)


@contextmanager
def captured_logs() -> Iterator[LogCapture]:
    capture = LogCapture()
    sink = logger.add(capture.sink, level="WARNING", format="{message}", catch=False)
    try:
        yield capture
    finally:
        logger.remove(sink)


def run_engine(
    specs: list[Spec], max_concurrency: int
) -> tuple[CycleReport, dict[str, HandlerState], ConcurrencyProbe]:
    probe = ConcurrencyProbe()
    states: dict[str, HandlerState] = {}
    registrations = []
    for index, spec in enumerate(specs):
        name = f"H{index}"

        async def process(item: Item, spec: Spec = spec, name: str = name) -> None:
            async with probe.track(name, item):
                await asyncio.sleep(0)
            if item.index in spec.failing:
                raise RuntimeError(f"{name} item {item.index} fails")

        state = HandlerState(name, items_for(name, spec.returned), process_hook=process)
        states[name] = state
        registrations.append(
            HandlerRegistration(
                partial(FakeHandler, state),
                name=name,
                max_items_per_cycle=spec.quota,
                max_concurrency=spec.cap,
            )
        )
    engine = WorkItemProcessingEngine(registrations, max_concurrency=max_concurrency)

    async def cycle() -> CycleReport:
        async with asyncio.timeout(DEADLOCK_GUARD_S):
            return await engine.run_cycle()

    return asyncio.run(cycle()), states, probe


@PROPERTY_SETTINGS
@given(specs=spec_lists, max_concurrency=st.integers(1, 8))
def test_each_handler_processes_exactly_its_first_quota_items_once(
    specs: list[Spec], max_concurrency: int
) -> None:
    with captured_logs() as logs:
        report, states, probe = run_engine(specs, max_concurrency)

    for index, spec in enumerate(specs):
        name = f"H{index}"
        processed = states[name].processed
        assert Counter(processed) == Counter(items_for(name, spec.kept)), name
        stats = report.handlers[name]
        assert stats.fetched == spec.kept
        assert stats.truncated == max(0, spec.returned - spec.quota)
        assert (stats.succeeded, stats.failed) == (spec.kept, 0)
        warning = (
            f"Handler '{name}' returned {spec.returned} items but max is {spec.quota}. Truncating."
        )
        assert len(logs.with_message(warning)) == (1 if spec.returned > spec.quota else 0)
    assert len(logs.containing("Truncating")) == sum(s.returned > s.quota for s in specs)
    assert probe.peak <= max_concurrency
    for index, spec in enumerate(specs):
        if spec.cap is not None:
            assert probe.peak_by.get(f"H{index}", 0) <= spec.cap


@st.composite
def specs_with_failures(draw: st.DrawFn) -> list[Spec]:
    result = []
    for spec in draw(spec_lists):
        failing = draw(st.frozensets(st.integers(0, max(spec.returned - 1, 0)), max_size=10))
        result.append(Spec(spec.quota, spec.returned, spec.cap, failing))
    return result


@PROPERTY_SETTINGS
@given(specs=specs_with_failures(), max_concurrency=st.integers(1, 8))
def test_failures_at_random_positions_never_change_which_other_items_are_processed(
    specs: list[Spec], max_concurrency: int
) -> None:
    report, states, probe = run_engine(specs, max_concurrency)

    for index, spec in enumerate(specs):
        name = f"H{index}"
        kept = items_for(name, spec.kept)
        state = states[name]
        assert Counter(state.started) == Counter(kept)  # every kept item was attempted once
        expected_successes = [item for item in kept if item.index not in spec.failing]
        assert Counter(state.processed) == Counter(expected_successes)
        stats = report.handlers[name]
        assert stats.succeeded == len(expected_successes)
        assert stats.failed == len(kept) - len(expected_successes)
    assert probe.peak <= max_concurrency


@dataclass(frozen=True)
class ClaimSpec:
    """A claiming handler's fetch: `returned` ids in order, some of them more than once."""

    quota: int
    returned: tuple[int, ...]
    failing: frozenset[int]
    cap: int | None

    @property
    def distinct(self) -> list[int]:
        return list(dict.fromkeys(self.returned))

    @property
    def kept(self) -> list[int]:
        return self.distinct[: self.quota]


@st.composite
def claim_specs(draw: st.DrawFn) -> ClaimSpec:
    returned = draw(st.lists(st.integers(0, 30), max_size=40))
    return ClaimSpec(
        quota=draw(st.integers(1, 20)),
        returned=tuple(returned),
        failing=draw(
            st.frozensets(st.sampled_from(returned), max_size=6)
            if returned
            else st.just(frozenset())
        ),
        cap=draw(st.one_of(st.none(), st.integers(1, 4))),
    )


def run_claiming_engine(
    specs: list[ClaimSpec], max_concurrency: int
) -> tuple[CycleReport, dict[str, HandlerState]]:
    states: dict[str, HandlerState] = {}
    registrations = []
    for index, spec in enumerate(specs):
        name = f"C{index}"
        by_index = {item.index: item for item in items_for(name, 31)}

        async def process(item: Item, spec: ClaimSpec = spec) -> None:
            await asyncio.sleep(0)
            if item.index in spec.failing:
                raise RuntimeError(f"item {item.index} fails")

        state = HandlerState(name, [by_index[n] for n in spec.returned], process_hook=process)
        states[name] = state
        registrations.append(
            registration(
                state, FakeClaimHandler, max_items_per_cycle=spec.quota, max_concurrency=spec.cap
            )
        )
    engine = WorkItemProcessingEngine(registrations, max_concurrency=max_concurrency)

    async def cycle() -> CycleReport:
        async with asyncio.timeout(DEADLOCK_GUARD_S):
            return await engine.run_cycle()

    return asyncio.run(cycle()), states


def endings(state: HandlerState) -> Counter[tuple[int, str]]:
    """(item index, how it ended) for every complete, fail and release call."""
    ended: Counter[tuple[int, str]] = Counter()
    for method, *args in state.lifecycle_calls:
        if method in ("complete", "release"):
            ended.update((item.index, method) for item in args[0])
        elif method == "fail":
            ended[(args[0].index, method)] += 1
    return ended


@PROPERTY_SETTINGS
@given(specs=st.lists(claim_specs(), min_size=1, max_size=4), max_concurrency=st.integers(1, 8))
def test_every_item_a_claiming_handler_returned_ends_exactly_once(
    specs: list[ClaimSpec], max_concurrency: int
) -> None:
    """Completed or failed if it was kept, released if the quota dropped it: never twice, never
    left held, duplicates counted once."""
    with captured_logs():
        report, states = run_claiming_engine(specs, max_concurrency)

    for index, spec in enumerate(specs):
        name = f"C{index}"
        expected = Counter(
            {(n, "fail" if n in spec.failing else "complete"): 1 for n in spec.kept}
            | {(n, "release"): 1 for n in spec.distinct[spec.quota :]}
        )
        assert endings(states[name]) == expected, name
        stats = report.handlers[name]
        assert stats.truncated == len(spec.distinct) - len(spec.kept)
        assert stats.duplicates == len(spec.returned) - len(spec.distinct)
        assert (stats.succeeded, stats.failed) == (
            sum(n not in spec.failing for n in spec.kept),
            sum(n in spec.failing for n in spec.kept),
        )
