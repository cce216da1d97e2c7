"""Fixtures for the scraping tests: fake Shein sites, cookie files, captured logs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from loguru import logger

from myapp.scraping.cookie_cipher import COOKIE_KEY_SETTING, CookieCipher
from myapp.scraping.cookies import CookieFile
from myapp.scraping.session import ScraperSettings
from tests.scraping.server import FakeSite, running_site

# Distinctive, so a grep of logs and stored errors for it cannot match anything else.
SESSION_COOKIE_VALUE = "s3cr3t-SESSION-9f8e7d6c5b4a"
TOKEN_COOKIE_VALUE = "tok-ABCDEF-123456-zyxw"
SECURE_COOKIE_VALUE = "secure-only-7a6b5c"
COOKIE_VALUES = (SESSION_COOKIE_VALUE, TOKEN_COOKIE_VALUE, SECURE_COOKIE_VALUE)
CAPTURED_AT = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
# Fixed test keys (Fernet.generate_key()), never used outside the tests.
TEST_COOKIE_KEY = "kS0k5NnQ0b1xJ9c3wG1oX7QjvWQ2bHq7mQxk8d1xq4E="
OTHER_COOKIE_KEY = "3bK1u2mF9YpQ6wZ0rT5vX8cN4hJ7aL2sD6fG1kP0qRw="
TEST_CIPHER = CookieCipher.from_key_text(TEST_COOKIE_KEY, COOKIE_KEY_SETTING)


def cookie_file_data(
    domain: str = "127.0.0.1",
    expires_at: datetime | None = None,
    session_value: str = SESSION_COOKIE_VALUE,
) -> dict[str, Any]:
    return {
        "domain": domain,
        "capturedAt": CAPTURED_AT.isoformat(),
        "expiresAt": (expires_at or CAPTURED_AT + timedelta(days=3650)).isoformat(),
        "cookies": {
            "sessionID_shein": {
                "name": "sessionID_shein",
                "value": session_value,
                "secure": False,
                "httpOnly": True,
            },
            "token": {
                "name": "token",
                "value": TOKEN_COOKIE_VALUE,
                "domain": domain,
                "path": "/user",
                "secure": False,
                "httpOnly": False,
                "sameSite": "Lax",
            },
            "secure_only": {
                "name": "secure_only",
                "value": SECURE_COOKIE_VALUE,
                "secure": True,
                "httpOnly": True,
            },
        },
        "metadata": {"collector": "shein-cookie-collector 1.2", "browser": "Chrome 131"},
    }


def cookie_file_text(**kwargs: Any) -> str:
    return json.dumps(cookie_file_data(**kwargs), indent=2)


@pytest.fixture
def cookie_file() -> CookieFile:
    return CookieFile.from_json(cookie_file_text())


@pytest.fixture
async def site() -> AsyncIterator[FakeSite]:
    async with running_site() as fake:
        yield fake


@pytest.fixture
async def elsewhere() -> AsyncIterator[FakeSite]:
    """Another server on loopback: the scraper must never reach it."""
    async with running_site() as fake:
        yield fake


def fast_settings(base_url: str, **overrides: Any) -> ScraperSettings:
    values: dict[str, Any] = {
        "base_url": base_url,
        "request_delay": timedelta(0),
        "request_timeout": timedelta(seconds=10),
        "retry_attempts": 3,
        "retry_backoff": timedelta(milliseconds=10),
        "retry_max_wait": timedelta(seconds=5),
        "extra_headers": {"X-Test-Header": "yes", "Accept-Language": "en-ZA"},
    } | overrides
    return ScraperSettings(**values)


@pytest.fixture
def captured_logs() -> Iterator[list[str]]:
    """Everything loguru writes at any level, with tracebacks and their variables."""
    lines: list[str] = []
    sink_id = logger.add(
        lambda message: lines.append(str(message)),
        level="TRACE",
        format="{time} {level} {message} | {extra} | {exception}",
        backtrace=True,
        diagnose=True,
    )
    yield lines
    logger.remove(sink_id)
