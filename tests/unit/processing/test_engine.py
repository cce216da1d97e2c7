"""One cycle of WorkItemProcessingEngine: quotas, logs, fresh handlers, failures, fairness, caps."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from myapp.processing import (
    CycleReport,
    HandlerOptions,
    HandlerRegistration,
    WorkItemProcessingEngine,
    add_handler,
)
from tests.fixtures.logs import LogCapture
from tests.unit.support import (
    ConcurrencyProbe,
    FakeHandler,
    HandlerState,
    Item,
    items_for,
    registration,
)

# Turns a deadlock into a failure instead of a hung suite; never a speed assertion.
DEADLOCK_GUARD_S = 20


async def run_cycle(engine: WorkItemProcessingEngine) -> CycleReport:
    async with asyncio.timeout(DEADLOCK_GUARD_S):
        return await engine.run_cycle()


def engine_for(
    *states: HandlerState, max_concurrency: int = 4, **kw: Any
) -> WorkItemProcessingEngine:
    return WorkItemProcessingEngine(
        [registration(s, max_items_per_cycle=kw.pop(f"quota_{s.name}", 10)) for s in states],
        max_concurrency=max_concurrency,
        **kw,
    )


# --- Quota truncation and the seed's log lines ------------------------------------------------


async def test_over_quota_is_truncated_to_the_first_items_with_the_seed_warning(
    logs: LogCapture,
) -> None:
    state = HandlerState("Orders", items_for("Orders", 25))
    engine = WorkItemProcessingEngine([registration(state, max_items_per_cycle=10)])

    report = await run_cycle(engine)

    warning = "Handler 'Orders' returned 25 items but max is 10. Truncating."
    assert [r.level for r in logs.with_message(warning)] == ["WARNING"]
    assert sorted(state.processed, key=lambda i: i.index) == items_for("Orders", 10)
    stats = report.handlers["Orders"]
    assert (stats.fetched, stats.truncated, stats.succeeded, stats.failed) == (10, 15, 10, 0)
    assert state.fetch_requests == [10]  # the handler is asked for at most its quota


async def test_at_or_under_quota_nothing_is_truncated(logs: LogCapture) -> None:
    exact = HandlerState("Exact", items_for("Exact", 10))
    under = HandlerState("Under", items_for("Under", 3))
    empty = HandlerState("Empty", [])

    report = await run_cycle(engine_for(exact, under, empty))

    assert logs.containing("Truncating") == []
    assert {n: (s.fetched, s.truncated) for n, s in report.handlers.items()} == {
        "Exact": (10, 0),
        "Under": (3, 0),
        "Empty": (0, 0),
    }
    assert len(exact.processed) == 10 and len(under.processed) == 3 and empty.processed == []


async def test_fetch_and_total_counts_are_logged(logs: LogCapture) -> None:
    a = HandlerState("A", items_for("A", 12))
    b = HandlerState("B", items_for("B", 2))

    await run_cycle(engine_for(a, b, quota_A=5))

    assert [r.level for r in logs.with_message("Handler 'A' fetched 5 work items")] == ["INFO"]
    assert [r.level for r in logs.with_message("Handler 'B' fetched 2 work items")] == ["INFO"]
    assert [r.level for r in logs.with_message("Processing 7 work items across all handlers")] == [
        "INFO"
    ]


async def test_a_failure_is_logged_at_error_with_the_item_id_handler_name_and_exception(
    logs: LogCapture,
) -> None:
    items = items_for("Photos", 3)
    boom = RuntimeError("camera on fire")

    async def fail_second(item: Item) -> None:
        if item.index == 1:
            raise boom

    state = HandlerState("Photos", items, process_hook=fail_second)

    report = await run_cycle(engine_for(state))

    records = logs.starting_with(f"Error processing work item {items[1].id} from handler Photos")
    assert [r.level for r in records] == ["ERROR"]
    assert "RuntimeError: camera on fire" in records[0].message
    [traceback] = logs.containing(f"traceback of work item {items[1].id}")
    assert (traceback.level, traceback.exception) == ("DEBUG", boom)
    assert (report.handlers["Photos"].succeeded, report.handlers["Photos"].failed) == (2, 1)
    assert report.failed == 1


# --- Fresh handlers --------------------------------------------------------------------------


async def test_handler_factory_is_called_afresh_for_every_fetch_and_every_process_call() -> None:
    state = HandlerState("Orders", items_for("Orders", 6))

    await run_cycle(engine_for(state))

    assert state.instances == 1 + 6
    process_instances = {id(h) for h in state.process_instances}
    assert len(process_instances) == 6
    assert id(state.fetch_instances[0]) not in process_instances

    await run_cycle(engine_for(state))  # and again next cycle: nothing is cached
    assert state.instances == 2 * (1 + 6)


# --- Failures never stop the cycle -----------------------------------------------------------


async def test_a_fetch_that_raises_is_logged_and_counted_and_others_still_run(
    logs: LogCapture,
) -> None:
    async def broken_fetch(max_items: int) -> list[Item]:
        raise RuntimeError("source broken")  # a database outage logs one line: test_outage.py

    broken = HandlerState("Broken", fetch_hook=broken_fetch)
    healthy = HandlerState("Healthy", items_for("Healthy", 4))

    report = await run_cycle(engine_for(broken, healthy))

    assert len(healthy.processed) == 4
    assert report.handlers["Healthy"].succeeded == 4
    stats = report.handlers["Broken"]
    assert stats.fetch_error is not None and "source broken" in stats.fetch_error
    assert (stats.fetched, stats.succeeded, stats.failed) == (0, 0, 0)
    assert report.fetch_errors == 1
    errors = [r for r in logs.records if r.level == "ERROR" and "Broken" in r.message]
    assert len(errors) == 1
    assert isinstance(errors[0].exception, RuntimeError)


async def test_a_handler_factory_that_raises_is_a_fetch_error_not_a_crash() -> None:
    def no_handler() -> Any:
        raise LookupError("missing dependency")

    healthy = HandlerState("Healthy", items_for("Healthy", 2))
    engine = WorkItemProcessingEngine(
        [HandlerRegistration(no_handler, name="Unbuildable"), registration(healthy)]
    )

    report = await run_cycle(engine)

    assert report.handlers["Unbuildable"].fetch_error is not None
    assert len(healthy.processed) == 2


async def test_process_calls_that_raise_never_stop_the_cycle() -> None:
    async def fail_even(item: Item) -> None:
        if item.index % 2 == 0:
            raise ValueError(f"bad item {item.index}")

    flaky = HandlerState("Flaky", items_for("Flaky", 10), process_hook=fail_even)
    steady = HandlerState("Steady", items_for("Steady", 5))

    report = await run_cycle(engine_for(flaky, steady, max_concurrency=2))

    assert sorted(i.index for i in flaky.processed) == [1, 3, 5, 7, 9]
    assert sorted(i.index for i in flaky.started) == list(range(10))
    assert len(steady.processed) == 5
    assert (report.handlers["Flaky"].succeeded, report.handlers["Flaky"].failed) == (5, 5)
    assert (report.succeeded, report.failed) == (10, 5)


async def test_duplicate_ids_in_one_fetch_are_processed_once_with_a_warning(
    logs: LogCapture,
) -> None:
    a, b, c = items_for("Dup", 3)
    state = HandlerState("Dup", [a, b, a, c, b, a])

    report = await run_cycle(engine_for(state))

    assert sorted(state.processed, key=lambda i: i.index) == [a, b, c]
    assert report.handlers["Dup"].fetched == 3
    assert report.handlers["Dup"].duplicates == 3
    warnings = [r for r in logs.records if r.level == "WARNING" and str(a.id) in r.message]
    assert warnings, "a duplicate id must be logged as a warning"


# --- Queue, fairness and caps ----------------------------------------------------------------


async def test_processing_starts_while_a_slower_fetch_still_runs() -> None:
    first_item_of_fast_processed = asyncio.Event()

    async def mark_processed(item: Item) -> None:
        first_item_of_fast_processed.set()

    async def slow_fetch(max_items: int) -> list[Item]:
        await first_item_of_fast_processed.wait()  # only set if processing already started
        return items_for("Slow", 2)

    fast = HandlerState("Fast", items_for("Fast", 3), process_hook=mark_processed)
    slow = HandlerState("Slow", fetch_hook=slow_fetch)

    report = await run_cycle(engine_for(fast, slow))

    assert report.handlers["Fast"].succeeded == 3
    assert report.handlers["Slow"].succeeded == 2


def assert_alternates(order: list[str]) -> None:
    """Once every handler has items queued, no handler is served twice in a row while another
    still has items waiting. (Before the other handler's fetch has queued anything, the first
    handler's items may run: processing starts without waiting for the slowest fetch.)"""
    both_present = max(order.index(name) for name in set(order))
    for i in range(max(both_present - 1, 0), len(order) - 1):
        others_left = any(name != order[i] for name in order[i + 1 :])
        assert not (order[i] == order[i + 1] and others_left), (i, order)


async def test_items_are_interleaved_across_handlers() -> None:
    probe = ConcurrencyProbe()
    a = HandlerState("A", items_for("A", 6), process_hook=probe.hook("A"))
    b = HandlerState("B", items_for("B", 6), process_hook=probe.hook("B"))

    await run_cycle(engine_for(a, b, max_concurrency=1))

    handlers_in_order = [item.handler for item in probe.order]
    assert len(handlers_in_order) == 12
    assert_alternates(handlers_in_order)
    assert probe.peak == 1


async def test_interleaving_holds_when_the_queue_is_smaller_than_one_handlers_fetch() -> None:
    probe = ConcurrencyProbe()
    a = HandlerState("A", items_for("A", 8), process_hook=probe.hook("A"))
    b = HandlerState("B", items_for("B", 8), process_hook=probe.hook("B"))

    await run_cycle(engine_for(a, b, max_concurrency=1, queue_size=2))

    handlers_in_order = [item.handler for item in probe.order]
    assert sorted(handlers_in_order) == ["A"] * 8 + ["B"] * 8
    assert_alternates(handlers_in_order)


async def test_max_concurrency_is_respected_and_used() -> None:
    probe = ConcurrencyProbe()
    states = [
        HandlerState(name, items_for(name, 10), process_hook=probe.hook(name, delay=0.005))
        for name in ("A", "B", "C")
    ]

    report = await run_cycle(engine_for(*states, max_concurrency=3))

    assert probe.peak == 3
    assert report.succeeded == 30


async def test_a_registrations_own_cap_leaves_the_other_slots_to_other_handlers() -> None:
    probe = ConcurrencyProbe()
    fast_done = asyncio.Event()
    fast_items = items_for("Fast", 6)

    async def slow_process(item: Item) -> None:
        async with probe.track("Slow", item):
            # Without Slow's cap, round-robin would give Slow both slots here: a deadlock.
            await fast_done.wait()

    async def fast_process(item: Item) -> None:
        async with probe.track("Fast", item):
            await asyncio.sleep(0)
        if len(fast.processed) + 1 == len(fast_items):
            fast_done.set()

    slow = HandlerState("Slow", items_for("Slow", 6), process_hook=slow_process)
    fast = HandlerState("Fast", fast_items, process_hook=fast_process)
    engine = WorkItemProcessingEngine(
        [registration(slow, max_concurrency=1), registration(fast)], max_concurrency=2
    )

    report = await run_cycle(engine)

    assert probe.peak_by["Slow"] == 1
    assert probe.peak <= 2
    assert report.handlers["Slow"].succeeded == 6
    assert report.handlers["Fast"].succeeded == 6


# --- Per-item timeout ------------------------------------------------------------------------


def _stuck_handler(name: str, cancelled: list[Item]) -> HandlerState:
    async def hang_on_first(item: Item) -> None:
        if item.index == 0:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(item)
                raise

    return HandlerState(name, items_for(name, 3), process_hook=hang_on_first)


def _assert_timed_out(report: CycleReport, logs: LogCapture, state: HandlerState) -> None:
    stuck = items_for(state.name, 1)[0]
    stats = report.handlers[state.name]
    assert (stats.succeeded, stats.failed) == (2, 1)
    assert stuck not in state.processed
    lines = [r for r in logs.records if str(stuck.id) in r.message and "timed out" in r.message]
    assert len(lines) == 1
    assert lines[0].level == "ERROR"
    assert state.name in lines[0].message


async def test_an_item_past_the_registrations_timeout_is_cancelled_and_failed(
    logs: LogCapture,
) -> None:
    cancelled: list[Item] = []
    state = _stuck_handler("Stuck", cancelled)
    engine = WorkItemProcessingEngine(
        [registration(state, item_timeout=timedelta(milliseconds=50))], max_concurrency=2
    )

    report = await run_cycle(engine)

    assert cancelled == items_for("Stuck", 1)
    _assert_timed_out(report, logs, state)


async def test_item_timeout_from_the_handlers_config_section(logs: LogCapture) -> None:
    class StuckOptions(HandlerOptions):
        pass

    cancelled: list[Item] = []
    state = _stuck_handler("Stuck", cancelled)

    class StuckHandler(FakeHandler):
        options_model = StuckOptions

        def __init__(self, options: StuckOptions) -> None:
            super().__init__(state)

    provider = add_handler(
        StuckHandler,
        name="Stuck",
        sections={"stuck": {"ItemTimeout": "00:00:00.05"}},  # keys match ignoring case
    )
    registration_ = provider()
    assert registration_.item_timeout == timedelta(milliseconds=50)

    report = await run_cycle(WorkItemProcessingEngine([registration_], max_concurrency=2))

    assert cancelled == items_for("Stuck", 1)
    _assert_timed_out(report, logs, state)


async def test_engine_wide_item_timeout_applies_when_the_registration_sets_none(
    logs: LogCapture,
) -> None:
    cancelled: list[Item] = []
    state = _stuck_handler("Stuck", cancelled)
    engine = WorkItemProcessingEngine(
        [registration(state)], max_concurrency=2, item_timeout=timedelta(milliseconds=50)
    )

    report = await run_cycle(engine)

    _assert_timed_out(report, logs, state)


async def test_disabled_registrations_are_not_run() -> None:
    on = HandlerState("On", items_for("On", 2))
    off = HandlerState("Off", items_for("Off", 2))
    engine = WorkItemProcessingEngine(
        [registration(on), registration(off, enabled=False, disabled_reason="switched off")]
    )

    report = await run_cycle(engine)

    assert off.instances == 0
    assert "Off" not in report.handlers
    assert report.handlers["On"].succeeded == 2


async def test_filled_quota_is_reported_as_more_work_waiting() -> None:
    full = HandlerState("Full", items_for("Full", 3))
    partial = HandlerState("Partial", items_for("Partial", 1))

    report = await run_cycle(engine_for(full, partial, quota_Full=3, quota_Partial=5))

    assert report.handlers["Full"].filled_quota
    assert not report.handlers["Partial"].filled_quota
    assert report.more_work_waiting
    assert not (await run_cycle(engine_for(partial, quota_Partial=5))).more_work_waiting


async def test_a_timeout_error_raised_by_the_handler_itself_is_an_ordinary_failure(
    logs: LogCapture,
) -> None:
    """No item timeout is configured: a TimeoutError from inside process() (an upstream read
    timeout) is the handler's error, logged as such with the exception, not "timed out"."""
    upstream = TimeoutError("upstream read timed out")

    async def raise_timeout(item: Item) -> None:
        raise upstream

    items = items_for("Upstream", 1)
    state = HandlerState("Upstream", items, process_hook=raise_timeout)

    report = await run_cycle(engine_for(state))

    assert report.handlers["Upstream"].failed == 1
    records = logs.starting_with(f"Error processing work item {items[0].id} from handler Upstream")
    assert [r.level for r in records] == ["ERROR"]
    assert "TimeoutError: upstream read timed out" in records[0].message
    assert logs.containing("timed out after") == []


async def test_a_full_quota_that_all_failed_is_not_more_work_waiting() -> None:
    async def always_fails(item: Any) -> None:
        raise RuntimeError("poison")

    stuck = HandlerState("Stuck", items_for("Stuck", 3), process_hook=always_fails)

    report = await run_cycle(engine_for(stuck, quota_Stuck=3))

    assert report.handlers["Stuck"].filled_quota
    assert report.handlers["Stuck"].failed == 3
    assert not report.more_work_waiting
