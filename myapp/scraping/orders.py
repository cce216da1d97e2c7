"""What a scraper reads from a supplier's site: order summaries, orders, their items.

Plain frozen values, supplier-neutral, so writing them to staging does not depend on how a
particular site's pages were parsed. Money is `Decimal`; times are aware UTC datetimes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

_ENCODER = json.JSONEncoder(ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Page:
    """A fetched page: the URL it came from (after same-site redirects) and its text."""

    url: str
    text: str


@dataclass(frozen=True, slots=True)
class OrderSummary:
    """One row of the orders list page: enough to find the order's detail page."""

    reference: str
    placed_at: datetime | None = None
    paid_at: datetime | None = None
    total_text: str | None = None
    status: str | None = None


@dataclass(frozen=True, slots=True)
class OrderList:
    summaries: tuple[OrderSummary, ...]
    # Orders left out (no order number, duplicates): logged, and kept here for the caller.
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OrderItem:
    supplier_reference: str | None
    name: str
    description: str | None
    quantity: int
    unit_price: Decimal
    product_url: str | None
    raw_json: str


@dataclass(frozen=True, slots=True)
class ScrapedOrder:
    reference: str
    placed_at: datetime | None
    paid_at: datetime | None
    currency: str | None
    total: Decimal | None
    payment_method: str | None
    items: tuple[OrderItem, ...]
    raw_json: str


@dataclass(frozen=True, slots=True)
class FailedOrder:
    """An order whose page could not be fetched or parsed; the rest of the batch goes on."""

    reference: str
    placed_at: datetime | None
    error: str


OrderOutcome = ScrapedOrder | FailedOrder


@dataclass(frozen=True, slots=True)
class ScrapeResult:
    outcomes: tuple[OrderOutcome, ...]
    warnings: tuple[str, ...] = field(default=())

    @property
    def failed(self) -> tuple[FailedOrder, ...]:
        return tuple(o for o in self.outcomes if isinstance(o, FailedOrder))


def to_raw_json(value: Any) -> str:
    """JSON text of a decoded page fragment, kept on the staging row as the source record.

    A `Decimal` is written as the JSON number it was on the page, digit for digit (`1.50` stays
    `1.50`): the standard encoder would write it through a float. The decoder bounds how long a
    number can be, so its text is short.
    """
    parts: list[str] = []
    _write_json(value, parts)
    return "".join(parts)


def _write_json(value: Any, parts: list[str]) -> None:
    if isinstance(value, Decimal):
        parts.append(_decimal_number(value))
    elif isinstance(value, dict):
        parts.append("{")
        for index, (key, member) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys are strings, not {type(key).__name__}")
            parts.append("," if index else "")
            parts.append(_plain_json(key))
            parts.append(":")
            _write_json(member, parts)
        parts.append("}")
    elif isinstance(value, list | tuple):
        parts.append("[")
        for index, member in enumerate(value):
            parts.append("," if index else "")
            _write_json(member, parts)
        parts.append("]")
    else:
        parts.append(_plain_json(value))  # str, int, bool, None: the standard encoding


def _plain_json(value: object) -> str:
    return _ENCODER.encode(value)


def _decimal_number(value: Decimal) -> str:
    # str() of a finite Decimal is always a valid JSON number ("1.50", "-0.0", "1E+5", "1E-7").
    if not value.is_finite():
        raise ValueError(f"{value} is not a JSON number")
    return str(value)
