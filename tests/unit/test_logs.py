"""Logging: one loguru sink (text or JSON), stdlib loggers routed into it, no secrets in
exception tracebacks."""

from __future__ import annotations

import io
import json
import logging
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from loguru import logger

from myapp.logs import configure_logging, tag_worker

SECRET = "s3cr3t-Pa55w0rd-do-not-print"


@pytest.fixture
def sink() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    logger.configure(extra={})  # an in-process `run` earlier in this process tagged its worker
    yield stream
    logger.configure(extra={})
    logger.remove()
    logger.add(sys.stderr)
    root.handlers[:] = handlers
    root.setLevel(level)


def connect_with(api_key: str) -> None:
    password = api_key
    raise ConnectionError(f"refused ({len(password)} chars of credentials)")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_exception_tracebacks_never_show_local_variable_values(sink: io.StringIO, fmt: str) -> None:
    configure_logging("Information", fmt, sink=sink)

    try:
        connect_with(SECRET)
    except ConnectionError:
        logger.exception("Could not connect")

    output = sink.getvalue()
    assert "Could not connect" in output
    assert "ConnectionError" in output  # the traceback itself is kept
    assert SECRET not in output


def test_stdlib_loggers_are_routed_into_loguru(sink: io.StringIO) -> None:
    configure_logging("Information", "text", sink=sink)

    logging.getLogger("asyncio").warning("event loop is slow")
    logging.getLogger("sqlalchemy.engine").info("SELECT noise")  # quietened library

    output = sink.getvalue()
    assert "event loop is slow" in output
    assert "WARNING" in output
    assert "SELECT noise" not in output


def json_lines(sink: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in sink.getvalue().splitlines()]


def test_json_format_writes_one_flat_json_object_per_line(sink: io.StringIO) -> None:
    configure_logging("Debug", "json", sink=sink)

    logger.bind(handler="Orders").debug("Handler '{}' fetched {} work items", "Orders", 3)
    logger.info("a {brace} in the text")

    first, second = json_lines(sink)
    assert list(first) == ["time", "level", "message", "logger", "handler", "item_id", "worker"]
    assert first["message"] == "Handler 'Orders' fetched 3 work items"
    assert first["level"] == "DEBUG"
    assert first["handler"] == "Orders"
    assert first["item_id"] is None and first["worker"] is None
    assert first["logger"] == __name__
    assert datetime.fromisoformat(first["time"]).utcoffset() == timedelta(0)
    assert second["message"] == "a {brace} in the text"
    assert "exception" not in first


def test_a_json_line_carries_the_item_the_worker_and_the_exception_as_text(
    sink: io.StringIO,
) -> None:
    configure_logging("Information", "json", sink=sink)
    tag_worker("host-42-abcdef")
    item_id = uuid.uuid4()
    try:
        try:
            connect_with(SECRET)
        except ConnectionError:
            logger.bind(handler="Photos", item_id=item_id, table="product_photos").exception(
                "Error processing work item {}", item_id
            )
    finally:
        logger.configure(extra={})

    (line,) = json_lines(sink)
    assert line["handler"] == "Photos"
    assert line["item_id"] == str(item_id)
    assert line["worker"] == "host-42-abcdef"
    assert line["table"] == "product_photos"  # other bound values: flat keys of their own
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert line["exception"].endswith("ConnectionError: refused (28 chars of credentials)")
    assert SECRET not in sink.getvalue()


def test_a_stdlib_error_with_a_traceback_is_one_json_line(sink: io.StringIO) -> None:
    configure_logging("Information", "json", sink=sink)
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        logging.getLogger("azure.core").error("request failed", exc_info=True)

    (line,) = json_lines(sink)
    assert line["message"] == "request failed"
    assert "ValueError: bad" in line["exception"]


@pytest.mark.parametrize(
    ("level", "shown", "hidden"),
    [("Warning", "a warning", "some info"), ("information", "some info", "a debug line")],
)
def test_the_dotnet_level_name_sets_the_minimum_level(
    sink: io.StringIO, level: str, shown: str, hidden: str
) -> None:
    configure_logging(level, "text", sink=sink)

    logger.debug("a debug line")
    logger.info("some info")
    logger.warning("a warning")

    assert shown in sink.getvalue()
    assert hidden not in sink.getvalue()
