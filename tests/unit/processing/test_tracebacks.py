"""A failing item's Error entry: one line naming the item, the handler and the exception, then the
handler's own frames only; the whole traceback at Debug; never a local variable's value."""

from __future__ import annotations

import asyncio
import importlib
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from myapp.processing import HandlerRegistration, PermanentError, WorkItemProcessingEngine
from myapp.processing.tracebacks import MAX_FRAMES, describe_failure
from tests.fixtures.logs import LogCapture
from tests.unit.support import HandlerState, Item, items_for, registration

SECRET = "s3cr3t-Pa55w0rd-do-not-print"
DEADLOCK_GUARD_S = 20


async def failure_entry(logs: LogCapture, state: HandlerState) -> list[str]:
    """Run one cycle of `state`'s handler (one item, which fails): its Error entry's lines."""
    async with asyncio.timeout(DEADLOCK_GUARD_S):
        await WorkItemProcessingEngine([registration(state)]).run_cycle()
    [entry] = logs.starting_with(f"Error processing work item {state.items[0].id}")
    assert entry.level == "ERROR" and entry.exception is None
    return entry.message.splitlines()


def parse_settings(text: str) -> dict[str, Any]:
    # The standard library raises from inside json/: those frames are not shown.
    document: dict[str, Any] = json.loads(text)
    return document


async def test_the_entry_is_the_exception_and_the_handlers_frames_outermost_first(
    logs: LogCapture,
) -> None:
    async def process(item: Item) -> None:
        parse_settings("{not json")

    state = HandlerState("Settings", items_for("Settings", 1), process_hook=process)

    lines = await failure_entry(logs, state)

    assert lines[0] == (
        f"Error processing work item {state.items[0].id} from handler Settings: "
        "JSONDecodeError: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)"
    )
    # support.py's FakeHandler.process, this test's hook, parse_settings; no json/, asyncio/,
    # engine frames
    assert [line.split(" in ")[1].split(":")[0] for line in lines[1:]] == [
        "process",
        "process",
        "parse_settings",
    ]
    assert lines[-1].endswith("in parse_settings: document: dict[str, Any] = json.loads(text)")
    assert all(line.startswith("  tests/unit/") for line in lines[1:])


async def test_the_whole_traceback_is_logged_at_debug(logs: LogCapture) -> None:
    boom = RuntimeError("camera on fire")

    async def process(item: Item) -> None:
        raise boom

    state = HandlerState("Photos", items_for("Photos", 1), process_hook=process)

    await failure_entry(logs, state)

    [debug] = logs.containing(f"traceback of work item {state.items[0].id} from handler Photos")
    assert (debug.level, debug.exception) == ("DEBUG", boom)


async def test_a_cause_is_shown_with_its_own_frames(logs: LogCapture) -> None:
    async def process(item: Item) -> None:
        try:
            # Raises inside site-packages (sqlalchemy): those frames are not shown.
            make_url("not a url")
        except Exception as error:
            raise PermanentError("the source URL is malformed") from error

    state = HandlerState("Urls", items_for("Urls", 1), process_hook=process)

    lines = await failure_entry(logs, state)

    assert lines[0].endswith(": PermanentError: the source URL is malformed")
    [cause] = [line for line in lines if line.startswith("caused by ")]
    assert cause.startswith("caused by ArgumentError: Could not parse SQLAlchemy URL")
    after_cause = lines[lines.index(cause) + 1 :]
    assert len(after_cause) == 1 and 'make_url("not a url")' in after_cause[0]
    assert not any("site-packages" in line for line in lines)


async def test_from_none_hides_the_context_as_python_does(logs: LogCapture) -> None:
    async def process(item: Item) -> None:
        try:
            raise ValueError(f"cookie={SECRET}")
        except ValueError:
            raise PermanentError("the cookie file is unreadable") from None

    state = HandlerState("Cookies", items_for("Cookies", 1), process_hook=process)

    lines = await failure_entry(logs, state)

    assert not any(line.startswith(("caused by", "while handling")) for line in lines)
    assert SECRET not in logs.text


async def test_local_variables_never_appear(logs: LogCapture) -> None:
    async def connect(api_key: str) -> None:
        raise ConnectionError(f"refused after {len(api_key)} characters of credentials")

    async def process(item: Item) -> None:
        await connect(SECRET)

    state = HandlerState("Remote", items_for("Remote", 1), process_hook=process)

    lines = await failure_entry(logs, state)

    assert SECRET not in "\n".join(lines)
    assert "in connect: raise ConnectionError(" in lines[-1]  # the line as written


def test_an_exception_never_raised_has_no_frames() -> None:
    assert describe_failure(ValueError("quantity 'two' is not a number")) == (
        "ValueError: quantity 'two' is not a number"
    )
    assert describe_failure(TimeoutError()) == "TimeoutError"


def test_deep_recursion_keeps_the_innermost_frames() -> None:
    def dive(depth: int) -> None:
        if depth == 0:
            raise RecursionError("too deep")
        dive(depth - 1)

    with pytest.raises(RecursionError) as raised:
        dive(20)

    lines = describe_failure(raised.value).splitlines()
    assert len(lines) == 1 + MAX_FRAMES
    assert lines[-1].endswith('in dive: raise RecursionError("too deep")')


def test_a_context_cycle_ends() -> None:
    first, second = ValueError("first"), ValueError("second")
    first.__context__, second.__context__ = second, first

    assert describe_failure(first).splitlines() == [
        "ValueError: first",
        "while handling ValueError: second",
    ]


INSTALLED_HANDLER = """
import installed_helper_tb


class Handler:
    def __init__(self, items):
        self.items = items

    async def fetch_work_items(self, max_items):
        return self.items

    async def process(self, item):
        installed_helper_tb.explode(item)
"""

INSTALLED_LIBRARY = """
def explode(item):
    raise LookupError(f"no such product for {item.index}")
"""


async def test_an_installed_handler_keeps_its_frames_and_drops_other_libraries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logs: LogCapture
) -> None:
    """A user's handler package installed in site-packages is still the handler's code."""
    site = tmp_path / "lib" / "site-packages"
    for package, text in [
        ("installed_handler_tb", INSTALLED_HANDLER),
        ("installed_helper_tb", INSTALLED_LIBRARY),
    ]:
        (site / package).mkdir(parents=True)
        (site / package / "__init__.py").write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(site))
    handler_class = importlib.import_module("installed_handler_tb").Handler
    items = items_for("Installed", 1)
    engine = WorkItemProcessingEngine(
        [HandlerRegistration(lambda: handler_class(items), name="Installed")]
    )

    await engine.run_cycle()

    [entry] = logs.starting_with(f"Error processing work item {items[0].id}")
    lines = entry.message.splitlines()
    assert lines[0].endswith("from handler Installed: LookupError: no such product for 0")
    assert len(lines) == 2
    assert "installed_handler_tb/__init__.py:" in lines[1]
    assert lines[1].endswith("in process: installed_helper_tb.explode(item)")


async def test_a_failed_batch_logs_one_entry_with_the_handlers_frames(logs: LogCapture) -> None:
    class BatchHandler:
        async def fetch_work_items(self, max_items: int) -> list[Item]:
            return items_for("Batch", 3)

        async def process_batch(self, items: list[Item]) -> None:
            raise OSError("the model endpoint is down")

        async def process(self, item: Item) -> None:
            raise AssertionError("a batch handler's items go to process_batch")

    engine = WorkItemProcessingEngine(
        [HandlerRegistration(BatchHandler, name="Batch", max_items_per_cycle=3)]
    )

    report = await engine.run_cycle()

    assert report.handlers["Batch"].failed == 3
    [entry] = logs.starting_with("Error processing a batch of 3 work items from handler Batch")
    lines = entry.message.splitlines()
    assert lines[0].endswith(": OSError: the model endpoint is down")
    assert len(lines) == 2 and lines[1].endswith(
        'in process_batch: raise OSError("the model endpoint is down")'
    )
    [debug] = logs.containing("traceback of that batch from handler Batch")
    assert debug.level == "DEBUG" and isinstance(debug.exception, OSError)
