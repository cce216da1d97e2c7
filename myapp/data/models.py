"""The market-manager tables: SQLAlchemy 2.0 typed ORM models.

Every entity has a UUID `id`, `created_at`, `updated_at` and `deleted_at` (soft delete: rows with
`deleted_at` set are never fetched or claimed). Datetimes are timezone-aware UTC on every
database (`UtcDateTime`), money is exact (`ExactDecimal` -> `Decimal`), and an embedding is a 1-D
float32 numpy array (`Float32Vector`, raw bytes in a BLOB/BYTEA).

Claimable tables (`StagingBatch`, `ProductPhoto`) carry `ClaimColumns` and a partial index over
their eligible rows only (status Queued/Started, not deleted), ordered like their claims, so a
claim stays an index range scan however many finished rows pile up.

The framework's operational tables (`WorkerRow`, `HandlerOutcomeRow`, prefixed `myapp_`) are not
entities: their keys are a worker id and (handler, minute), with no soft delete or timestamps.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import (
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from myapp.data.types import Embedding, ExactDecimal, Float32Vector, UtcDateTime
from myapp.processing.claim_columns import WORKER_ID_LENGTH, ClaimColumns

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}
STATUS_LENGTH = 20
HANDLER_NAME_LENGTH = 200
# The rows a claim can pick: the WHERE of every partial claim index (and repeated in the claim
# statement, so the planner can prove the index applies).
CLAIMABLE_ROWS = "status IN ('Queued', 'Started') AND deleted_at IS NULL"
# Finished rows that did not complete (Failed, Cancelled): few, and what an operator looks for.
# Their partial index keeps `status` and `requeue --failed` index scans however many completed
# rows pile up. It names no column the workers' updates change but `status` (already in the
# claimable index), so it costs them no HOT update.
UNSUCCESSFUL_ROWS = "status NOT IN ('Queued', 'Started', 'Completed') AND deleted_at IS NULL"


def utc_now() -> datetime:
    return datetime.now(UTC)


class ProcessingStatus(enum.StrEnum):
    QUEUED = "Queued"
    STARTED = "Started"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


class CandidateStatus(enum.StrEnum):
    PENDING = "Pending"
    APPROVED = "Approved"
    REJECTED = "Rejected"
    IMPORTED = "Imported"


def _status_type(enum_class: type[enum.StrEnum]) -> Enum:
    # Stored as the member's value ("Queued") in a VARCHAR: portable, readable, no native enum
    # type to migrate when a member is added.
    return Enum(
        enum_class,
        native_enum=False,
        length=STATUS_LENGTH,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


class Base(AsyncAttrs, DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UtcDateTime(), Decimal: ExactDecimal()}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4, sort_order=-10)
    created_at: Mapped[datetime] = mapped_column(
        default=utc_now, server_default=func.now(), sort_order=10
    )
    updated_at: Mapped[datetime] = mapped_column(
        default=utc_now, onupdate=utc_now, server_default=func.now(), sort_order=10
    )
    deleted_at: Mapped[datetime | None] = mapped_column(sort_order=10)


class Supplier(Base):
    __tablename__ = "suppliers"

    name: Mapped[str] = mapped_column(String, unique=True)
    website_url: Mapped[str | None]
    contact_info: Mapped[str | None] = mapped_column(Text)


class StagingBatch(ClaimColumns, Base):
    """One upload/scrape request, e.g. a Shein order-history scrape with its cookie file."""

    __tablename__ = "staging_batches"
    __table_args__ = (
        UniqueConstraint("batch_processor_name", "file_hash"),
        Index(
            "ix_staging_batches_claimable",
            "batch_processor_name",
            "started_at",
            "id",
            postgresql_where=text(CLAIMABLE_ROWS),
            sqlite_where=text(CLAIMABLE_ROWS),
        ),
        Index(
            "ix_staging_batches_unsuccessful",
            "id",
            postgresql_where=text(UNSUCCESSFUL_ROWS),
            sqlite_where=text(UNSUCCESSFUL_ROWS),
        ),
    )

    batch_processor_name: Mapped[str] = mapped_column(String(100))
    supplier_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("suppliers.id", ondelete="SET NULL"), index=True
    )
    # Set when the batch is queued/submitted; claims take the oldest first.
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    file_hash: Mapped[str] = mapped_column(String(128))
    status: Mapped[ProcessingStatus] = mapped_column(
        _status_type(ProcessingStatus), default=ProcessingStatus.QUEUED
    )
    notes: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    # Sealed (myapp.scraping.cookie_storage); deferred: claiming or listing batches never loads
    # it, the handler reads it once its length is known to be within the cap.
    file_contents: Mapped[str | None] = mapped_column(Text, deferred=True)

    supplier: Mapped[Supplier | None] = relationship()
    orders: Mapped[list[StagingPurchaseOrder]] = relationship(
        back_populates="batch", cascade="all, delete-orphan", passive_deletes=True
    )


class StagingPurchaseOrder(Base):
    """An order found in a batch. `status` is the outcome of parsing it: Completed when staged
    cleanly (the default), Failed with `error_message` when its data could not be read."""

    __tablename__ = "staging_purchase_orders"
    __table_args__ = (UniqueConstraint("batch_id", "supplier_reference"),)

    batch_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("staging_batches.id", ondelete="CASCADE")
    )
    supplier_reference: Mapped[str] = mapped_column(String(200))
    order_date: Mapped[datetime | None]
    raw_data: Mapped[str | None] = mapped_column(Text)  # JSON text as scraped
    is_imported: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    status: Mapped[ProcessingStatus] = mapped_column(
        _status_type(ProcessingStatus), default=ProcessingStatus.COMPLETED
    )
    error_message: Mapped[str | None] = mapped_column(Text)

    batch: Mapped[StagingBatch] = relationship(back_populates="orders")
    items: Mapped[list[StagingPurchaseOrderItem]] = relationship(
        back_populates="order", cascade="all, delete-orphan", passive_deletes=True
    )


class StagingPurchaseOrderItem(Base):
    __tablename__ = "staging_purchase_order_items"

    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("staging_purchase_orders.id", ondelete="CASCADE"), index=True
    )
    supplier_reference: Mapped[str | None] = mapped_column(String(200))
    supplier_product_url: Mapped[str | None]
    name: Mapped[str | None]
    description: Mapped[str | None] = mapped_column(Text)
    quantity: Mapped[int] = mapped_column(default=1, server_default="1")
    listed_unit_price: Mapped[Decimal | None]
    actual_unit_price: Mapped[Decimal | None]
    raw_data: Mapped[str | None] = mapped_column(Text)
    is_imported: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    status: Mapped[CandidateStatus] = mapped_column(
        _status_type(CandidateStatus), default=CandidateStatus.PENDING
    )

    order: Mapped[StagingPurchaseOrder] = relationship(back_populates="items")


class Product(Base):
    __tablename__ = "products"

    sku: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str]
    description: Mapped[str | None] = mapped_column(Text)
    stock_on_hand: Mapped[int] = mapped_column(default=0, server_default="0")

    photos: Mapped[list[ProductPhoto]] = relationship(back_populates="product")


class ProductPhoto(ClaimColumns, Base):
    """A product photo. `status` Queued means "needs vectorizing"; Completed means `embedding`
    holds its vector (float32 numpy array), made by `embedding_model` at `vectorized_at`."""

    __tablename__ = "product_photos"
    __table_args__ = (
        Index(
            "ix_product_photos_claimable",
            "created_at",
            "id",
            postgresql_where=text(CLAIMABLE_ROWS),
            sqlite_where=text(CLAIMABLE_ROWS),
        ),
        Index(
            "ix_product_photos_unsuccessful",
            "id",
            postgresql_where=text(UNSUCCESSFUL_ROWS),
            sqlite_where=text(UNSUCCESSFUL_ROWS),
        ),
    )

    product_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("products.id", ondelete="SET NULL"), index=True
    )
    url: Mapped[str]
    caption: Mapped[str | None] = mapped_column(Text)
    status: Mapped[ProcessingStatus] = mapped_column(
        _status_type(ProcessingStatus), default=ProcessingStatus.QUEUED
    )
    embedding: Mapped[Embedding | None] = mapped_column(Float32Vector())
    embedding_model: Mapped[str | None] = mapped_column(String(200))
    embedding_dimensions: Mapped[int | None]
    vectorized_at: Mapped[datetime | None]

    product: Mapped[Product | None] = relationship(back_populates="photos")


class OperationalBase(AsyncAttrs, DeclarativeBase):
    """The framework's own bookkeeping tables: same metadata (one migration history), none of
    an entity's columns."""

    metadata = Base.metadata
    type_annotation_map = {datetime: UtcDateTime()}


class WorkerRow(OperationalBase):
    """One running (or lately stopped) worker, refreshed with the lease heartbeat
    (myapp.data.worker_heartbeat). `last_heartbeat_at` is the database's time; live or not is
    `myapp.data.worker_liveness.worker_is_live` (with `database_now`)."""

    __tablename__ = "myapp_workers"

    id: Mapped[str] = mapped_column(String(WORKER_ID_LENGTH), primary_key=True)
    """The worker id (`core.worker_id`), the one written in `locked_by`."""
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String(50))
    started_at: Mapped[datetime]
    last_heartbeat_at: Mapped[datetime]
    stopped_at: Mapped[datetime | None]
    """Set on a graceful stop; a worker that died keeps None and goes stale."""
    handlers: Mapped[str] = mapped_column(Text, default="[]")
    """A JSON array of the names of the handlers this worker runs (enabled ones)."""
    in_flight: Mapped[int] = mapped_column(Integer, default=0)
    """Items being processed at the last heartbeat (not counting those queued in the worker)."""
    heartbeat_seconds: Mapped[float] = mapped_column(Float)
    """How often this worker refreshes its row: a reader decides staleness from it without
    knowing the worker's settings."""


class HandlerOutcomeRow(OperationalBase):
    """What one handler finished in one minute, summed over every worker (written in batches
    by myapp.data.outcome_counters). `failed` and `dead_lettered` are disjoint: a failure that
    ends the item's attempts counts as dead-lettered only."""

    __tablename__ = "myapp_handler_outcomes"
    # "The last hour, every handler" and the retention's prune read by minute.
    __table_args__ = (Index("ix_myapp_handler_outcomes_minute", "minute"),)

    handler: Mapped[str] = mapped_column(String(HANDLER_NAME_LENGTH), primary_key=True)
    minute: Mapped[datetime] = mapped_column(primary_key=True)
    """The minute's start, UTC."""
    succeeded: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    dead_lettered: Mapped[int] = mapped_column(Integer, default=0)
    count: Mapped[int] = mapped_column(Integer, default=0)
    """Items with a duration (succeeded ones): the divisor of `total_duration_ms`."""
    total_duration_ms: Mapped[float] = mapped_column(Float, default=0.0)
    max_duration_ms: Mapped[float] = mapped_column(Float, default=0.0)
