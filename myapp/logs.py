"""Logging through loguru: one sink, text or JSON, with stdlib loggers routed into it.

Every record made during a handler's call carries the handler's registered name and the item's
id in `extra` (`handler`, `item_id`; see myapp.processing.log_context), and a worker's records
its id (`worker`, from `tag_worker`).

`json` writes ONE FLAT JSON object per line, what log shippers (Vector, Fluent Bit, Loki's
promtail, Datadog) read without a parsing rule:

    {"time": "2026-11-29T21:10:03.123456+00:00", "level": "ERROR", "message": "...",
     "logger": "myapp.processing.engine", "handler": "Shein", "item_id": "6f1c...",
     "worker": "host-4242-a1b2c3", "exception": "Traceback (most recent call last): ..."}

`handler`, `item_id` and `worker` are always there (null when the line is about none);
`exception` only when the line carries one (its traceback as text, never local variables'
values); any other bound value follows as a key of its own, as text.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC
from typing import TYPE_CHECKING, Any

from loguru import logger

from myapp.processing.log_context import add_work_context

if TYPE_CHECKING:
    from loguru import Record

# .NET level names (appsettings.json) -> loguru levels.
LEVELS = {
    "trace": "TRACE",
    "debug": "DEBUG",
    "information": "INFO",
    "warning": "WARNING",
    "error": "ERROR",
    "critical": "CRITICAL",
    "none": "CRITICAL",
}
TEXT_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <8}</level> | "
    "<cyan>{name}</cyan> - <level>{message}</level>"
)
NOISY_LIBRARIES = {
    "sqlalchemy.engine": logging.WARNING,
    "httpx": logging.WARNING,
    "alembic": logging.WARNING,
}


class InterceptHandler(logging.Handler):
    """Sends stdlib `logging` records (sqlalchemy, httpx, asyncio, azure) to loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame, depth = logging.currentframe(), 2
        while frame is not None and frame.f_code.co_filename == logging.__file__:
            frame, depth = frame.f_back, depth + 1  # type: ignore[assignment]
        logger.opt(depth=depth, exception=record.exc_info).log(level, record.getMessage())


def configure_logging(level: str = "Information", fmt: str = "text", sink: Any = None) -> None:
    loguru_level = LEVELS.get(level.lower(), "INFO")
    logger.remove()
    logger.configure(patcher=add_work_context)
    # diagnose=False: loguru would otherwise print the value of every local variable in a
    # logged traceback (API keys, cookies, connection strings).
    if fmt == "json":
        logger.add(sink or sys.stderr, level=loguru_level, format=_json_format, diagnose=False)
    else:
        logger.add(sink or sys.stderr, level=loguru_level, format=TEXT_FORMAT, diagnose=False)
    logging.basicConfig(handlers=[InterceptHandler()], level=logging.INFO, force=True)
    for name, library_level in NOISY_LIBRARIES.items():
        logging.getLogger(name).setLevel(library_level)
    # azure-core logs request headers at INFO; they are redacted, but keep them out entirely.
    logging.getLogger("azure").setLevel(logging.WARNING)


def tag_worker(worker_id: str) -> None:
    """Every record from now on says which worker wrote it (`worker`)."""
    logger.configure(extra={"worker": worker_id})


# The fixed keys of a JSON line, in order; `exception` follows when there is one.
JSON_KEYS = ("time", "level", "message", "logger", "handler", "item_id", "worker")
_JSON_FIELD = "_json_line"


def json_line(record: Record) -> str:
    """The record as one flat JSON object (no newline)."""
    extra = record["extra"]
    line: dict[str, Any] = {
        "time": record["time"].astimezone(UTC).isoformat(),
        "level": record["level"].name,
        "message": record["message"],
        "logger": record["name"],
        "handler": _text(extra.get("handler")),
        "item_id": _text(extra.get("item_id")),
        "worker": _text(extra.get("worker")),
    }
    if record["exception"] is not None and record["exception"].value is not None:
        kind, error, trace = record["exception"]
        line["exception"] = "".join(traceback.format_exception(kind, error, trace)).rstrip()
    for key, value in extra.items():
        if key not in line and key != _JSON_FIELD:
            line[key] = _text(value)
    return json.dumps(line, ensure_ascii=False)


def _json_format(record: Record) -> str:
    # A callable format returns a template loguru fills in: the line goes through `extra` so
    # its braces are not read as fields, and loguru appends no traceback of its own.
    record["extra"][_JSON_FIELD] = json_line(record)
    return "{extra[" + _JSON_FIELD + "]}\n"


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
