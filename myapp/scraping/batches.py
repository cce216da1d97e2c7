"""Submitting cookie files as Shein batches, listing them, and queueing one again: the services
behind the CLI.

Errors are `BatchError`s with a message fit for a terminal: never a cookie value, never the
database's own message (SQLAlchemy's carries the statement's parameters, the cookie file among
them).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from myapp.data.models import (
    ProcessingStatus,
    StagingBatch,
    StagingPurchaseOrder,
    Supplier,
)
from myapp.scraping.cookie_cipher import CookieCipher
from myapp.scraping.cookie_limits import DEFAULT_MAX_COOKIE_FILE_BYTES
from myapp.scraping.cookie_storage import SealedCookieFile, read_and_seal
from myapp.scraping.shein import SUPPLIER_NAME

BATCH_PROCESSOR_NAME = "Shein"
DEFAULT_SUPPLIER_NAME = SUPPLIER_NAME
REQUEUEABLE_STATUSES = (ProcessingStatus.COMPLETED, ProcessingStatus.FAILED)
# SQLite's messages for constraint failures name the constraint kind and columns, never values.
_SQLITE_CONSTRAINT = re.compile(r"[A-Z][A-Z ]* constraint failed(: [\w.]+(, [\w.]+)*)?")


class BatchError(Exception):
    """A batch operation was refused or failed; the message says why."""


class DuplicateBatchError(BatchError):
    def __init__(self, batch_id: uuid.UUID, status: ProcessingStatus) -> None:
        super().__init__(
            f"this cookie file was already submitted as batch {batch_id} (status {status.value})"
        )
        self.batch_id = batch_id
        self.status = status


class SubmitError(BatchError):
    """The batch could not be saved (a database constraint refused it)."""


class RequeueError(BatchError):
    """The batch cannot be queued again in its current state."""

    def __init__(self, message: str, batch_id: uuid.UUID, status: ProcessingStatus | None) -> None:
        super().__init__(message)
        self.batch_id = batch_id
        self.status = status


class BatchNotFoundError(RequeueError):
    """No Shein batch (not deleted) has that id."""


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
    *,
    cipher: CookieCipher,
    max_bytes: int = DEFAULT_MAX_COOKIE_FILE_BYTES,
) -> StagingBatch:
    """A new Queued Shein batch for the cookie file at `path` (committed), stored sealed.

    Raises `CookieFileError` for a file that cannot be read, is larger than `max_bytes`, nests
    too deep or is not a cookie file, `CookiesExpiredError` for expired cookies,
    `DuplicateBatchError` for a file already submitted, `SubmitError` when the database refuses
    the batch for another reason. Nothing is stored when it raises.
    """
    now = clock()
    sealed = await read_and_seal(path, cipher, max_bytes, now)
    await _refuse_duplicate(session, sealed.file_hash)
    try:
        supplier = await _supplier(session, (supplier_name or DEFAULT_SUPPLIER_NAME).strip())
        batch = StagingBatch(
            batch_processor_name=BATCH_PROCESSOR_NAME,
            supplier_id=supplier.id,
            started_at=now,
            file_hash=sealed.file_hash,
            status=ProcessingStatus.QUEUED,
            file_contents=sealed.token,
        )
        session.add(batch)
        await session.commit()
    except IntegrityError as error:
        constraint = _violated_constraint(error)
    else:
        return batch
    # Outside the `except`: the errors below must not chain the IntegrityError, whose text holds
    # the INSERT's parameters and would print with their traceback.
    await session.rollback()
    await _refuse_duplicate(session, sealed.file_hash)  # submitted by someone else since our check
    raise SubmitError(f"could not save the batch: {constraint}")


def _violated_constraint(error: IntegrityError) -> str:
    """Which constraint refused the write, from the driver's fields, never from the statement."""
    driver_error = error.orig.__cause__ if error.orig is not None else None  # asyncpg's own
    name = getattr(driver_error, "constraint_name", None)
    if isinstance(name, str) and name:
        return f"constraint {name} was violated"
    match = _SQLITE_CONSTRAINT.fullmatch(str(error.orig))
    return match.group(0) if match else "a database constraint was violated"


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


async def requeue_batch(
    session: AsyncSession,
    batch_id: uuid.UUID,
    clock: Callable[[], datetime],
    cookie_file: SealedCookieFile | None = None,
) -> StagingBatch:
    """Put a Completed or Failed Shein batch back in the queue for another scrape (committed).

    Its claim bookkeeping and errors are cleared and `started_at` is now, so it waits behind the
    batches already queued. Scraping it again upserts: staged orders are updated, failed ones
    retried, imported ones left alone. A finished batch's cookie file was erased, so it takes
    `cookie_file` (read and sealed by `read_and_seal`); without one only a batch that still has
    its contents can go back. Raises `BatchNotFoundError` for an unknown (or deleted) batch,
    `RequeueError` for one that is Queued or Started (or Cancelled), or has no cookie file.
    """
    now = clock()
    has_cookie_file = StagingBatch.file_contents.is_not(None) if cookie_file is None else true()
    new_contents = {} if cookie_file is None else {"file_contents": cookie_file.token}
    # One conditional UPDATE: a worker claiming the batch meanwhile makes it match nothing.
    statement = (
        update(StagingBatch)
        .where(
            StagingBatch.id == batch_id,
            StagingBatch.batch_processor_name == BATCH_PROCESSOR_NAME,
            StagingBatch.deleted_at.is_(None),
            StagingBatch.status.in_(REQUEUEABLE_STATUSES),
            has_cookie_file,
        )
        .values(
            status=ProcessingStatus.QUEUED,
            attempts=0,
            next_attempt_at=None,
            locked_by=None,
            locked_until=None,
            last_error=None,
            error_message=None,
            completed_at=None,
            started_at=now,
            updated_at=now,
            **new_contents,
        )
        .returning(StagingBatch.id)
        .execution_options(synchronize_session=False)
    )
    requeued = (await session.execute(statement)).scalar_one_or_none()
    if requeued is None:
        await session.rollback()
        raise await _requeue_refusal(session, batch_id)
    await session.commit()
    return await session.get_one(StagingBatch, batch_id, populate_existing=True)


async def _requeue_refusal(session: AsyncSession, batch_id: uuid.UUID) -> RequeueError:
    found = (
        await session.execute(
            select(StagingBatch.status, StagingBatch.file_contents.is_(None)).where(
                StagingBatch.id == batch_id,
                StagingBatch.batch_processor_name == BATCH_PROCESSOR_NAME,
                StagingBatch.deleted_at.is_(None),
            )
        )
    ).one_or_none()
    if found is None:
        return BatchNotFoundError(f"there is no Shein batch {batch_id}", batch_id, None)
    status, erased = found
    if status in REQUEUEABLE_STATUSES and erased:
        return RequeueError(
            f"batch {batch_id} is {status.value} and its cookie file was erased when it "
            f"finished: give it again with `shein retry {batch_id} --cookies FILE`",
            batch_id,
            status,
        )
    reasons = {
        ProcessingStatus.QUEUED: "it is already waiting to be scraped",
        ProcessingStatus.STARTED: "a worker is scraping it now",
    }
    reason = reasons.get(status, "only a Completed or Failed batch can be scraped again")
    return RequeueError(f"batch {batch_id} is {status.value}: {reason}", batch_id, status)


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
