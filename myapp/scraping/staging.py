"""Writing scraped orders to the staging tables, safely more than once.

A batch can be processed again (a worker died, a lease ran out): orders are upserted by
(batch, order number) and a scraped order's items replace the ones written before, so a re-run
never duplicates. A failure does not overwrite an order an earlier run staged cleanly, and an
order already imported is left alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from myapp.data.models import (
    ProcessingStatus,
    StagingPurchaseOrder,
    StagingPurchaseOrderItem,
)
from myapp.scraping.limits import ORDER_REFERENCE_LENGTH
from myapp.scraping.orders import FailedOrder, OrderOutcome, ScrapedOrder

_UPSERT_INSERTS: dict[str, Callable[..., Any]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}


@dataclass(frozen=True, slots=True)
class StagedCounts:
    orders: int
    failed: int
    items: int


async def stage_orders(
    session: AsyncSession, batch_id: uuid.UUID, outcomes: Sequence[OrderOutcome], now: datetime
) -> StagedCounts:
    """Upsert every outcome into the batch's staging orders (the caller commits)."""
    dialect = session.get_bind().dialect.name
    upsert = _UPSERT_INSERTS.get(dialect)
    if upsert is None:
        raise NotImplementedError(f"staging upserts need PostgreSQL or SQLite, not {dialect}")
    items = 0
    for outcome in outcomes:
        order_id = await _upsert_order(session, upsert, batch_id, outcome, now)
        if order_id is not None and isinstance(outcome, ScrapedOrder):
            items += await _replace_items(session, order_id, outcome, now)
    failed = sum(isinstance(outcome, FailedOrder) for outcome in outcomes)
    return StagedCounts(orders=len(outcomes), failed=failed, items=items)


async def _upsert_order(
    session: AsyncSession,
    upsert: Callable[..., Any],
    batch_id: uuid.UUID,
    outcome: OrderOutcome,
    now: datetime,
) -> uuid.UUID | None:
    """The staged order's id, or None when the existing row is kept as it is."""
    reference = outcome.reference
    if isinstance(outcome, ScrapedOrder):
        values: dict[str, Any] = {
            "order_date": outcome.placed_at,
            "raw_data": outcome.raw_json,
            "status": ProcessingStatus.COMPLETED,
            "error_message": None,
        }
        keep_existing: ColumnElement[bool] = StagingPurchaseOrder.is_imported.is_(True)
    else:
        # A failure may be that the order number is too long: it is recorded under its first
        # characters (its error says so) rather than failing the whole batch's insert.
        reference = reference[:ORDER_REFERENCE_LENGTH]
        values = {
            "order_date": outcome.placed_at,
            "raw_data": None,
            "status": ProcessingStatus.FAILED,
            "error_message": outcome.error,
        }
        # An order staged cleanly by an earlier run keeps its data when this run fails it.
        keep_existing = (StagingPurchaseOrder.is_imported.is_(True)) | (
            StagingPurchaseOrder.status == ProcessingStatus.COMPLETED
        )
    statement = (
        upsert(StagingPurchaseOrder)
        .values(
            id=uuid.uuid4(),
            batch_id=batch_id,
            supplier_reference=reference,
            created_at=now,
            updated_at=now,
            **values,
        )
        .on_conflict_do_update(
            index_elements=[StagingPurchaseOrder.batch_id, StagingPurchaseOrder.supplier_reference],
            set_={**values, "updated_at": now},
            where=~keep_existing,
        )
        .returning(StagingPurchaseOrder.id)
    )
    result = await session.execute(statement)
    order_id: uuid.UUID | None = result.scalar_one_or_none()
    return order_id


async def _replace_items(
    session: AsyncSession, order_id: uuid.UUID, order: ScrapedOrder, now: datetime
) -> int:
    previous_items = StagingPurchaseOrderItem.order_id == order_id
    await session.execute(delete(StagingPurchaseOrderItem).where(previous_items))
    if not order.items:
        return 0
    rows = [
        {
            "id": uuid.uuid4(),
            "order_id": order_id,
            "supplier_reference": item.supplier_reference,
            "supplier_product_url": item.product_url,
            "name": item.name,
            "description": item.description,
            "quantity": item.quantity,
            "listed_unit_price": item.unit_price,
            "actual_unit_price": item.unit_price,
            "raw_data": item.raw_json,
            "created_at": now,
            "updated_at": now,
        }
        for item in order.items
    ]
    await session.execute(insert(StagingPurchaseOrderItem), rows)
    return len(rows)
