"""Errors the framework gives meaning to."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from myapp.processing.timespan import EXPECTED as TIMESPAN_EXPECTED


class PermanentError(Exception):
    """Processing failed in a way a retry cannot fix (a 404 image, a 400 from a model, bad input).

    A claiming handler dead-letters the item at once instead of scheduling another attempt.
    """


SECRET_KEY_PARTS = (
    "apikey",
    "password",
    "secret",
    "connectionstring",
    "accountkey",
    "token",
    "authorization",
    "cookie",
    "headers",
)
NOT_SHOWN: Any = object()
"""A value that is never repeated (an unknown key's value may be a misplaced secret)."""


class ConfigurationError(Exception):
    """A configuration value is invalid: names the key, the value and what was expected.

    The value of a key that may hold a secret is never repeated.
    """

    def __init__(self, key: str, value: object, expected: str) -> None:
        compact = key.lower().replace(":", "").replace("_", "")
        if value is not NOT_SHOWN and any(part in compact for part in SECRET_KEY_PARTS):
            value = "***"
        self.key = key
        self.value = value
        self.expected = expected
        shown = "" if value is NOT_SHOWN else f" = {value!r}"
        super().__init__(f"{key}{shown} is invalid: expected {expected}")

    @classmethod
    def from_validation_error(cls, error: ValidationError, prefix: str = "") -> ConfigurationError:
        """The first error of a pydantic validation, with `prefix` before its location."""
        first = error.errors()[0]
        key = ":".join([*([prefix] if prefix else []), *(str(part) for part in first["loc"])])
        value = first.get("input")
        expected = first["msg"].removeprefix("Value error, ")
        if first["type"].startswith("time_delta"):  # pydantic could not read a duration
            expected = TIMESPAN_EXPECTED
        if first["type"] == "extra_forbidden":
            value, expected = NOT_SHOWN, "no such key (check the spelling)"
        return cls(key or prefix, value, expected)


class RegistrationError(ConfigurationError):
    """A handler registration that cannot run: names the handler and what to do about it."""

    def __init__(self, message: str) -> None:
        Exception.__init__(self, message)
        self.key, self.value, self.expected = "", NOT_SHOWN, message
