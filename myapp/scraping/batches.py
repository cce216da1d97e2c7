"""Submitting cookie files as Shein batches, and listing batches: the services behind the CLI."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from myapp.data.models import (
    ProcessingStatus,
    StagingBatch,
    StagingPurchaseOrder,
    Supplier,
)
from myapp.scraping.cookies import CookieFile
from myapp.scraping.errors import CookieFileError
from myapp.scraping.shein import SUPPLIER_NAME

BATCH_PROCESSOR_NAME = "Shein"
DEFAULT_SUPPLIER_NAME = SUPPLIER_NAME


class DuplicateBatchError(Exception):
    def __init__(self, batch_id: uuid.UUID, status: ProcessingStatus) -> None:
        super().__init__(
            f"this cookie file was already submitted as batch {batch_id} (status {status.value})"
        )
        self.batch_id = batch_id
        self.status = status


@dataclass(frozen=True, slots=True)
class BatchSummary:
    id: uuid.UUID
    status: ProcessingStatus
    supplier: str | None
    started_at: datetime | None
    completed_at: datetime | None
    order_count: int
    failed_order_count: int
    error: str | None


async def submit_cookie_file(
    session: AsyncSession,
    path: Path,
    supplier_name: str | None,
    clock: Callable[[], datetime],
) -> StagingBatch:
    """A new Queued Shein batch for the cookie file at `path` (committed).

    Raises `CookieFileError` for a file that cannot be read or is not a cookie file,
    `CookiesExpiredError` for expired cookies, `DuplicateBatchError` for a file already submitted.
    """
    try:
        contents = await asyncio.to_thread(path.read_bytes)
        text = contents.decode("utf-8-sig")
    except OSError as error:
        raise CookieFileError(f"cannot read cookie file {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise CookieFileError(f"cookie file {path} is not UTF-8 text") from None
    now = clock()
    CookieFile.from_json(text).ensure_not_expired(now)
    file_hash = hashlib.sha256(contents).hexdigest()
    await _refuse_duplicate(session, file_hash)
    supplier = await _supplier(session, (supplier_name or DEFAULT_SUPPLIER_NAME).strip())
    batch = StagingBatch(
        batch_processor_name=BATCH_PROCESSOR_NAME,
        supplier_id=supplier.id,
        started_at=now,
        file_hash=file_hash,
        status=ProcessingStatus.QUEUED,
        file_contents=text,
    )
    session.add(batch)
    try:
        await session.commit()
    except IntegrityError:
        # Submitted by someone else between our check and our insert.
        await session.rollback()
        await _refuse_duplicate(session, file_hash)
        raise
    return batch


async def _refuse_duplicate(session: AsyncSession, file_hash: str) -> None:
    existing = (
        await session.execute(
            select(StagingBatch.id, StagingBatch.status).where(
                StagingBatch.batch_processor_name == BATCH_PROCESSOR_NAME,
                StagingBatch.file_hash == file_hash,
            )
        )
    ).one_or_none()
    if existing is not None:
        raise DuplicateBatchError(existing.id, existing.status)


async def _supplier(session: AsyncSession, name: str) -> Supplier:
    if not name:
        raise ValueError("the supplier name must not be blank")
    supplier = await session.scalar(select(Supplier).where(Supplier.name == name))
    if supplier is None:
        supplier = Supplier(name=name)
        session.add(supplier)
        await session.flush()
    return supplier


async def list_batches(session: AsyncSession) -> list[BatchSummary]:
    """Every batch, newest first, with its order counts and error."""
    orders = (
        select(
            StagingPurchaseOrder.batch_id,
            func.count().label("orders"),
            func.count()
            .filter(StagingPurchaseOrder.status == ProcessingStatus.FAILED)
            .label("failed"),
        )
        .where(StagingPurchaseOrder.deleted_at.is_(None))
        .group_by(StagingPurchaseOrder.batch_id)
        .subquery()
    )
    statement = (
        select(
            StagingBatch,
            Supplier.name,
            func.coalesce(orders.c.orders, 0),
            func.coalesce(orders.c.failed, 0),
        )
        .outerjoin(Supplier, Supplier.id == StagingBatch.supplier_id)
        .outerjoin(orders, orders.c.batch_id == StagingBatch.id)
        .where(StagingBatch.deleted_at.is_(None))
        .order_by(StagingBatch.started_at.desc().nulls_last(), StagingBatch.id)
    )
    rows = (await session.execute(statement)).all()
    return [
        BatchSummary(
            id=batch.id,
            status=batch.status,
            supplier=supplier,
            started_at=batch.started_at,
            completed_at=batch.completed_at,
            order_count=order_count,
            failed_order_count=failed_count,
            error=batch.error_message or batch.last_error,
        )
        for batch, supplier, order_count, failed_count in rows
    ]
