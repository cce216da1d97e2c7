"""Logging: one loguru sink (text or JSON), stdlib loggers routed into it, no secrets in
exception tracebacks."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest
from loguru import logger

from myapp.logs import configure_logging

SECRET = "s3cr3t-Pa55w0rd-do-not-print"


@pytest.fixture
def sink() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield stream
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


def test_json_format_writes_one_json_object_per_line(sink: io.StringIO) -> None:
    configure_logging("Debug", "json", sink=sink)

    logger.bind(handler="Orders").debug("Handler '{}' fetched {} work items", "Orders", 3)

    records = [json.loads(line) for line in sink.getvalue().splitlines()]
    assert len(records) == 1
    record = records[0]["record"]
    assert record["message"] == "Handler 'Orders' fetched 3 work items"
    assert record["level"]["name"] == "DEBUG"
    assert record["extra"] == {"handler": "Orders"}


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
