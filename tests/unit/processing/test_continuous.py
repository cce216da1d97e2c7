"""Continuous mode: refills at the low-water mark, wake-ups, per-handler poll intervals, the spin
guard, fetch-error backoff, a busy neighbour, graceful drain, and a property over random mixes
that every claimed item ends exactly once (a quota's excess too) with every cap respected."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tenacity import wait_exponential, wait_random

from myapp.processing import CycleReport, HandlerRegistration, WorkItemProcessingEngine, refill
from myapp.processing.refill import MAX_FETCHES_IN_FLIGHT, HandlerRefill
from tests.fixtures.logs import LogCapture
from tests.unit.support import ConcurrencyProbe

GUARD_S = 20  # turns a hang into a failure; never a speed assertion
ONE_HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Item:
    id: uuid.UUID
    index: int


@dataclass
class Pool:
    """An in-memory claimable table: what is queued, who claimed what, and every outcome."""

    name: str
    delay: float = 0.0
    fetch_delay: float = 0.0  # a claim's round trip: the rows are taken, then it returns
    failing: frozenset[int] = frozenset()
    probe: ConcurrencyProbe | None = None
    excess: int = 0  # claims this many more than asked: the engine truncates and releases them
    queued: deque[Item] = field(default_factory=deque)
    outcomes: dict[uuid.UUID, list[str]] = field(default_factory=dict)
    claimed: Counter[uuid.UUID] = field(default_factory=Counter)
    fetches: int = 0
    fetching: int = 0
    peak_fetching: int = 0  # fetches in flight at once
    holding: int = 0
    peak_holding: int = 0  # claimed and not yet processed or released
    added: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, count: int) -> None:
        for _ in range(count):
            self.queued.append(Item(uuid.uuid4(), self.added))
            self.added += 1
        if count:
            self.done.clear()

    def finished(self) -> int:
        return sum(1 for o in self.outcomes.values() if o and o[-1] in ("completed", "failed"))

    def record(self, item: Item, outcome: str) -> None:
        self.outcomes.setdefault(item.id, []).append(outcome)
        if self.finished() == self.added:
            self.done.set()


class PoolHandler:
    """A claiming handler over a Pool: fetch claims, the engine's lifecycle calls finish."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def fetch_work_items(self, max_items: int) -> Sequence[Item]:
        pool = self.pool
        pool.fetches += 1
        pool.fetching += 1
        pool.peak_fetching = max(pool.peak_fetching, pool.fetching)
        try:
            wanted = max_items + pool.excess
            items = [pool.queued.popleft() for _ in range(min(wanted, len(pool.queued)))]
            pool.claimed.update(item.id for item in items)
            pool.holding += len(items)
            pool.peak_holding = max(pool.peak_holding, pool.holding)
            if pool.fetch_delay:
                await asyncio.sleep(pool.fetch_delay)
            return items
        finally:
            pool.fetching -= 1

    async def process(self, item: Item) -> None:
        try:
            if self.pool.probe is not None:
                async with self.pool.probe.track(self.pool.name, item):
                    await asyncio.sleep(self.pool.delay)
            else:
                await asyncio.sleep(self.pool.delay)
            if item.index in self.pool.failing:
                raise RuntimeError(f"item {item.index} fails")
        finally:
            self.pool.holding -= 1

    async def complete(self, items: Sequence[Item]) -> None:
        for item in items:
            self.pool.record(item, "completed")

    async def fail(self, item: Item, error: BaseException) -> None:
        self.pool.record(item, "failed")

    async def extend(self, items: Sequence[Item]) -> None:
        return None

    async def release(self, items: Sequence[Item]) -> None:
        for item in items:
            self.pool.holding -= 1
            self.pool.record(item, "released")
            self.pool.queued.appendleft(item)


def registration_for(pool: Pool, quota: int = 10, **options: Any) -> HandlerRegistration:
    return HandlerRegistration(
        lambda: PoolHandler(pool), name=pool.name, max_items_per_cycle=quota, **options
    )


async def start(
    engine: WorkItemProcessingEngine, poll: timedelta = ONE_HOUR
) -> asyncio.Task[CycleReport]:
    run = asyncio.create_task(engine.run_continuously(poll))
    await asyncio.sleep(0.05)  # the first fetches
    return run


async def stop(engine: WorkItemProcessingEngine, run: asyncio.Task[CycleReport]) -> CycleReport:
    engine.request_stop()
    async with asyncio.timeout(GUARD_S):
        return await run


async def test_a_backlog_is_refilled_at_the_low_water_mark_without_waiting_the_poll() -> None:
    pool = Pool("Backlog", delay=0.001)
    pool.add(95)
    engine = WorkItemProcessingEngine([registration_for(pool, quota=10)], max_concurrency=4)

    run = await start(engine)
    async with asyncio.timeout(GUARD_S):
        await pool.done.wait()
    report = await stop(engine, run)

    assert report.handlers["Backlog"].succeeded == 95
    assert all(outcomes == ["completed"] for outcomes in pool.outcomes.values())
    assert pool.fetches >= 10  # 95 / 10 and more, never a poll interval in between


async def test_trigger_wakes_a_sleeping_handler_and_nothing_else_does_before_its_poll() -> None:
    pool = Pool("Orders")
    engine = WorkItemProcessingEngine([registration_for(pool)])
    run = await start(engine)

    pool.add(3)
    await asyncio.sleep(0.3)
    assert pool.finished() == 0  # asleep until woken (its poll interval is an hour)
    engine.trigger("Orders")
    async with asyncio.timeout(GUARD_S):
        await pool.done.wait()
    await stop(engine, run)

    assert pool.finished() == 3


async def test_the_engine_waits_for_work_while_a_handler_sleeps_not_while_all_are_busy() -> None:
    """What the wake-up probe asks (`waiting_for_work`): a wake-up is only worth looking for
    while some handler sleeps on a dry source, not while every one drains a backlog."""
    busy, idle = Pool("Busy", delay=0.05), Pool("Idle")
    busy.add(40)  # four full claims of 10: it never finds its source dry until they are done
    engine = WorkItemProcessingEngine([registration_for(busy)])
    assert engine.waiting_for_work()  # no run: a wake-up is harmless

    run = await start(engine)
    assert not engine.waiting_for_work()
    async with asyncio.timeout(GUARD_S):
        await busy.done.wait()
    await asyncio.sleep(0.05)  # its next fetch comes back empty: asleep
    assert engine.waiting_for_work()
    await stop(engine, run)

    both = WorkItemProcessingEngine([registration_for(busy), registration_for(idle)])
    busy.add(40)
    run = await start(both)
    assert both.waiting_for_work()  # Idle sleeps while Busy works
    await stop(both, run)


async def test_trigger_names_an_unknown_handler_in_its_error() -> None:
    engine = WorkItemProcessingEngine([registration_for(Pool("Orders"))])
    try:
        engine.trigger("Ordres")
    except ValueError as error:
        assert "Ordres" in str(error) and "Orders" in str(error)
    else:
        raise AssertionError("an unknown handler name must be refused")


async def test_a_handler_poll_interval_overrides_the_service_one() -> None:
    fast, slow = Pool("Fast"), Pool("Slow")
    engine = WorkItemProcessingEngine(
        [
            registration_for(fast, poll_interval=timedelta(milliseconds=100)),
            registration_for(slow),
        ]
    )
    run = await start(engine, poll=ONE_HOUR)

    fast.add(2)
    slow.add(2)
    async with asyncio.timeout(GUARD_S):
        await fast.done.wait()
    await asyncio.sleep(0.2)
    await stop(engine, run)

    assert (fast.finished(), slow.finished()) == (2, 0)


async def test_a_slow_item_holds_only_its_own_slot_not_its_neighbours_new_work() -> None:
    slow, quick = Pool("Slow", delay=3.0), Pool("Quick")
    slow.add(2)
    engine = WorkItemProcessingEngine(
        [registration_for(slow), registration_for(quick)],
        max_concurrency=4,
        shutdown_timeout=timedelta(0),  # the stop does not wait out the slow items
    )
    run = await start(engine)

    quick.add(10)
    engine.trigger("Quick")
    loop = asyncio.get_running_loop()
    woken = loop.time()
    async with asyncio.timeout(GUARD_S):
        await quick.done.wait()
    took = loop.time() - woken
    assert slow.finished() == 0  # still busy with its two 3 s items
    await stop(engine, run)

    assert took < 1.0  # not after the slow items (3 s); measured in ms


async def test_a_handler_that_never_marks_its_work_done_is_caught_and_slowed(
    logs: LogCapture,
) -> None:
    class NeverDone:
        items = [Item(uuid.uuid4(), index) for index in range(3)]
        fetches = 0

        async def fetch_work_items(self, max_items: int) -> Sequence[Item]:
            NeverDone.fetches += 1
            return self.items[:max_items]

        async def process(self, item: Item) -> None:
            return None

    engine = WorkItemProcessingEngine(
        [HandlerRegistration(NeverDone, name="Spinner", max_items_per_cycle=3)]
    )
    run = await start(engine, poll=timedelta(milliseconds=100))
    await asyncio.sleep(0.2)
    await stop(engine, run)

    warnings = logs.containing("keeps fetching items it has just processed successfully")
    assert len(warnings) == 1
    assert "Spinner" in warnings[0].message
    assert NeverDone.fetches <= 8  # 3 to notice, then one per poll; without the guard: hundreds


async def test_a_failing_fetch_backs_off(logs: LogCapture, monkeypatch: pytest.MonkeyPatch) -> None:
    # The backoff a tenth of its length (0.05 s, 0.1 s, ... + up to 0.05 s), the poll and the
    # wait too: the same proportions in a tenth of the time.
    backoff = wait_exponential(multiplier=0.05, max=6) + wait_random(0, 0.05)
    monkeypatch.setattr(refill, "FETCH_ERROR_BACKOFF", backoff)

    class Broken:
        fetches = 0

        async def fetch_work_items(self, max_items: int) -> Sequence[Item]:
            Broken.fetches += 1
            raise ConnectionError("source down")

        async def process(self, item: Item) -> None:
            return None

    engine = WorkItemProcessingEngine([HandlerRegistration(Broken, name="Broken")])
    run = await start(engine, poll=timedelta(milliseconds=1))
    await asyncio.sleep(0.15)
    await stop(engine, run)

    assert 2 <= Broken.fetches <= 3  # 0 s, ~0.06 s, ~0.16 s: not every 1 ms poll


async def test_graceful_stop_finishes_running_items_and_releases_queued_ones() -> None:
    pool = Pool("Drain", delay=0.3)
    pool.add(20)
    engine = WorkItemProcessingEngine([registration_for(pool)], max_concurrency=2)
    run = await start(engine)

    report = await stop(engine, run)

    stats = report.handlers["Drain"]
    assert stats.succeeded == 2  # the two running at the stop finished
    assert stats.released == 8  # the rest of the fetch went back
    for outcomes in pool.outcomes.values():
        assert len(outcomes) == 1
    assert len(pool.queued) == 18  # nothing lost: 18 claimable again, 2 completed


async def test_a_second_cancellation_stops_at_once_and_fails_what_ran() -> None:
    pool = Pool("Long", delay=30)
    pool.add(2)
    engine = WorkItemProcessingEngine([registration_for(pool)], shutdown_timeout=ONE_HOUR)
    run = await start(engine)

    engine.request_stop()
    await asyncio.sleep(0.1)
    run.cancel()  # what a second signal does through the host
    async with asyncio.timeout(GUARD_S):
        await asyncio.gather(run, return_exceptions=True)

    assert sorted(o for outcomes in pool.outcomes.values() for o in outcomes) == [
        "failed",
        "failed",
    ]


def low_water(quota: int) -> int:
    return HandlerRefill("any", quota, ONE_HOUR).low_water


async def test_a_handler_that_outruns_its_claims_overlaps_two_fetches() -> None:
    """Items done faster than a claim's round trip: a second claim starts while one is in
    flight, never a third, and each item still ends exactly once."""
    pool = Pool("Fast", fetch_delay=0.02)
    pool.add(300)
    engine = WorkItemProcessingEngine([registration_for(pool, quota=10)], max_concurrency=4)

    run = await start(engine)
    async with asyncio.timeout(GUARD_S):
        await pool.done.wait()
    report = await stop(engine, run)

    assert report.handlers["Fast"].succeeded == 300
    assert all(outcomes == ["completed"] for outcomes in pool.outcomes.values())
    assert pool.peak_fetching == MAX_FETCHES_IN_FLIGHT


async def test_a_handler_slower_than_its_claims_never_claims_ahead_of_its_work() -> None:
    """Its items are still queued when each claim comes back: one fetch at a time, refilled at
    the low-water mark, so it holds no more than a quota plus the mark (other workers get the
    rest)."""
    pool = Pool("Slow", delay=0.02, fetch_delay=0.001)
    pool.add(60)
    engine = WorkItemProcessingEngine(
        [registration_for(pool, quota=10, max_concurrency=2)], max_concurrency=4
    )

    run = await start(engine)
    async with asyncio.timeout(GUARD_S):
        await pool.done.wait()
    await stop(engine, run)

    assert pool.peak_fetching == 1
    assert pool.peak_holding < low_water(10) + 10


# --- A property over random handler mixes ----------------------------------------------------


@dataclass(frozen=True)
class Mix:
    initial: int
    later: int
    quota: int
    cap: int | None
    delay: float
    fetch_delay: float
    failing: frozenset[int]
    trigger: bool
    poll_ms: int
    excess: int


mixes = st.builds(
    Mix,
    initial=st.integers(0, 25),
    later=st.integers(0, 10),
    quota=st.integers(1, 8),
    cap=st.one_of(st.none(), st.integers(1, 3)),
    delay=st.sampled_from([0.0, 0.001, 0.005]),
    fetch_delay=st.sampled_from([0.0, 0.002]),
    failing=st.frozensets(st.integers(0, 34), max_size=6),
    trigger=st.booleans(),
    poll_ms=st.sampled_from([20, 3_600_000]),
    excess=st.sampled_from([0, 0, 1, 5]),
)


async def run_mix(specs: list[Mix], max_concurrency: int) -> tuple[list[Pool], ConcurrencyProbe]:
    probe = ConcurrencyProbe()
    pools = [
        Pool(
            f"H{n}",
            delay=m.delay,
            fetch_delay=m.fetch_delay,
            failing=m.failing,
            probe=probe,
            excess=m.excess,
        )
        for n, m in enumerate(specs)
    ]
    registrations = [
        registration_for(
            pool,
            quota=m.quota,
            max_concurrency=m.cap,
            poll_interval=timedelta(milliseconds=m.poll_ms),
        )
        for pool, m in zip(pools, specs, strict=True)
    ]
    for pool, m in zip(pools, specs, strict=True):
        pool.add(m.initial)
    engine = WorkItemProcessingEngine(registrations, max_concurrency=max_concurrency)
    run = asyncio.create_task(engine.run_continuously(ONE_HOUR))
    await asyncio.sleep(0.01)
    for pool, m in zip(pools, specs, strict=True):  # work arriving while the run goes on
        pool.add(m.later)
        if m.trigger or m.poll_ms == 3_600_000:
            engine.trigger(pool.name)
    async with asyncio.timeout(GUARD_S):
        for pool in pools:
            if pool.added:
                await pool.done.wait()
    engine.request_stop()
    async with asyncio.timeout(GUARD_S):
        await run
    return pools, probe


RACE_OF_A_TRUNCATED_AND_A_SHORT_FETCH = [  # found by this property: two claims in flight, the
    # first truncated (its excess released), the second short (it ran before the release): the
    # handler used to sleep its poll interval with a released item left to do.
    Mix(0, 0, 3, None, 0.0, 0.002, frozenset(), False, 20, 0),
    Mix(19, 2, 2, None, 0.005, 0.0, frozenset({0, 1, 26}), True, 3_600_000, 0),
    Mix(22, 8, 2, None, 0.0, 0.002, frozenset({0, 1, 18}), True, 3_600_000, 1),
]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=st.lists(mixes, min_size=1, max_size=4), max_concurrency=st.integers(1, 6))
@example(specs=RACE_OF_A_TRUNCATED_AND_A_SHORT_FETCH, max_concurrency=2)
def test_every_claimed_item_ends_exactly_once_and_no_cap_is_exceeded(
    specs: list[Mix], max_concurrency: int
) -> None:
    pools, probe = asyncio.run(run_mix(specs, max_concurrency))

    for pool, m in zip(pools, specs, strict=True):
        for item_id, count in pool.claimed.items():
            outcomes = pool.outcomes[item_id]
            # Once per claim: released items (the quota's excess too) may be claimed again;
            # the last claim ends it.
            assert len(outcomes) == count, (pool.name, outcomes)
            assert outcomes[-1] in ("completed", "failed")
        assert len(pool.claimed) == pool.added == m.initial + m.later  # nothing left behind
        expected_failed = sum(1 for index in range(pool.added) if index in m.failing)
        assert Counter(o[-1] for o in pool.outcomes.values())["failed"] == expected_failed
        if m.cap is not None:
            assert probe.peak_by.get(pool.name, 0) <= m.cap
        assert pool.peak_fetching <= MAX_FETCHES_IN_FLIGHT
        assert pool.peak_holding < low_water(m.quota) + MAX_FETCHES_IN_FLIGHT * (m.quota + m.excess)
    assert probe.peak <= max_concurrency
