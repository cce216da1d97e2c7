"""Errors the framework gives meaning to."""

from __future__ import annotations


class PermanentError(Exception):
    """Processing failed in a way a retry cannot fix (a 404 image, a 400 from a model, bad input).

    A claiming handler dead-letters the item at once instead of scheduling another attempt.
    """


SECRET_KEY_PARTS = ("apikey", "password", "secret", "connectionstring", "accountkey", "token")


class ConfigurationError(Exception):
    """A configuration value is invalid: names the key, the value and what was expected.

    The value of a key that may hold a secret is never repeated.
    """

    def __init__(self, key: str, value: object, expected: str) -> None:
        compact = key.lower().replace(":", "").replace("_", "")
        if any(part in compact for part in SECRET_KEY_PARTS):
            value = "***"
        self.key = key
        self.value = value
        self.expected = expected
        super().__init__(f"{key} = {value!r} is invalid: expected {expected}")
