"""Logging through loguru: one sink, text or JSON, with stdlib loggers routed into it.

Every record made during a handler's call carries the handler's registered name and the item's
id in `extra` (`handler`, `item_id`; see myapp.processing.log_context): JSON lines show them.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from loguru import logger

from myapp.processing.log_context import add_work_context

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
        logger.add(sink or sys.stderr, level=loguru_level, serialize=True, diagnose=False)
    else:
        logger.add(sink or sys.stderr, level=loguru_level, format=TEXT_FORMAT, diagnose=False)
    logging.basicConfig(handlers=[InterceptHandler()], level=logging.INFO, force=True)
    for name, library_level in NOISY_LIBRARIES.items():
        logging.getLogger(name).setLevel(library_level)
    # azure-core logs request headers at INFO; they are redacted, but keep them out entirely.
    logging.getLogger("azure").setLevel(logging.WARNING)
