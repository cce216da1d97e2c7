"""Reading single values out of Shein's decoded page data, with errors that name the field.

Shein writes the same kind of value several ways (unix seconds as a number or a string, money as
"132" or as `{"amount": "132", ...}`), and values from a page are untrusted: each reader accepts
the known forms and says plainly what it found otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from myapp.scraping.errors import PageParseError

SHOWN_VALUE_LENGTH = 40
# Bounds that keep a nonsense value from a page out of the staging tables' numeric columns.
MAX_PRICE = Decimal(10) ** 12
MAX_QUANTITY = 1_000_000
# 9999-12-31T23:59:59Z: checked before `int()`, which on `1E+1000000` would take minutes.
MAX_UNIX_TIME = Decimal(253_402_300_799)
# A numeric string longer than this is no price, quantity or time (and is slow to convert).
MAX_NUMBER_TEXT_LENGTH = 100
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def show(value: object) -> str:
    """A page value for an error message: short, and typed when it is not a string."""
    text = repr(value)
    return text if len(text) <= SHOWN_VALUE_LENGTH else text[: SHOWN_VALUE_LENGTH - 3] + "..."


def text(value: object) -> str | None:
    """A non-blank string (numbers become their digits), else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def first_text(*values: object) -> str | None:
    for value in values:
        found = text(value)
        if found is not None:
            return found
    return None


def mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def unix_time(value: object, field: str) -> datetime | None:
    """Unix seconds (a number or a string of digits) as an aware UTC datetime; absent is None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number = _decimal(value)
    if number is None or number < 0:
        raise PageParseError(f"{field} {show(value)} is not a time in unix seconds")
    if number > MAX_UNIX_TIME:
        raise PageParseError(f"{field} {show(value)} is out of range for a time (years 1970-9999)")
    try:
        return datetime.fromtimestamp(int(number), UTC)
    except (OverflowError, OSError, ValueError):
        raise PageParseError(f"{field} {show(value)} is out of range for a time") from None


def money(value: object, field: str) -> Decimal:
    """A price as Decimal, from "132.50", 132, or `{"amount": "132.50", ...}`."""
    if isinstance(value, Mapping):
        if "amount" not in value:
            raise PageParseError(f"{field} has no amount")
        value = value["amount"]
        field = f"{field}.amount"
    if value is None or (isinstance(value, str) and not value.strip()):
        raise PageParseError(f"{field} is missing")
    number = _decimal(value)
    if number is None or number < 0 or number >= MAX_PRICE:
        raise PageParseError(f"{field} {show(value)} is not a price")
    return number


def optional_money(value: object) -> Decimal | None:
    try:
        return money(value, "price")
    except PageParseError:
        return None


def quantity(value: object, field: str) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise PageParseError(f"{field} is missing")
    number = _decimal(value)
    if number is None or number != number.to_integral_value() or not 1 <= number <= MAX_QUANTITY:
        raise PageParseError(
            f"{field} {show(value)} is not a whole number from 1 to {MAX_QUANTITY:,}"
        )
    return int(number)


def _decimal(value: object) -> Decimal | None:
    """Decimal of a JSON number or a numeric string; None for anything else (never via float)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        number = Decimal(value)
    elif (
        isinstance(value, str)
        and len(value) <= MAX_NUMBER_TEXT_LENGTH
        and _NUMBER.fullmatch(value.strip())
    ):
        number = Decimal(value.strip())
    else:
        return None
    return number if number.is_finite() else None
