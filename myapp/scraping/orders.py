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
    """JSON text of a decoded page fragment, kept on the staging row as the source record."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_decimal_number)


def _decimal_number(value: object) -> object:
    # Fractional numbers were decoded as Decimal; written back as the JSON number they were.
    # (Money fields are read from the decoded Decimal, never from this text.)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
