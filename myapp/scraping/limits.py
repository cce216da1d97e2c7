"""How long a scraped order number or item code may be: as long as its staging column.

The lengths are read from the models, so widening a column widens the check with it. A value
longer than its column would fail the whole batch's insert on PostgreSQL ("value too long"),
rolling back the good orders with it; SQLite would store it silently.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import QueryableAttribute

from myapp.data.models import StagingPurchaseOrder, StagingPurchaseOrderItem
from myapp.scraping.errors import PageParseError

SHOWN_PREFIX_LENGTH = 20


def column_length(column: QueryableAttribute[Any]) -> int:
    """The declared length of a `String(n)` column."""
    kind = column.type
    if not isinstance(kind, String) or kind.length is None:
        raise TypeError(f"{column} is not a String column with a length")
    return kind.length


ORDER_REFERENCE_LENGTH = column_length(StagingPurchaseOrder.supplier_reference)
ITEM_REFERENCE_LENGTH = column_length(StagingPurchaseOrderItem.supplier_reference)


def check_length(value: str, limit: int, what: str) -> None:
    """Refuse `value` if it is longer than `limit`, naming it by its first characters."""
    if len(value) > limit:
        raise PageParseError(
            f"{what} {value[:SHOWN_PREFIX_LENGTH]!r}... is {len(value):,} characters long; "
            f"staging holds at most {limit}"
        )
