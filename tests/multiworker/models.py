"""Test-only tables on their own metadata: a claimable `multiworker_rows` table and the
append-only `process_calls` journal the test handler writes to.

`process_calls` gets one row when a process call starts and one when it ends (`event` "start" /
"finish" / "error"), each committed at once and stamped with the database's clock, so the tests
can pair them into calls and look for two calls of one row that overlap in time.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, Enum, Index, String, func, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from myapp.data.claiming import status_claim_spec
from myapp.data.models import CLAIMABLE_ROWS, ProcessingStatus
from myapp.processing import ClaimColumns, ClaimSpec, RetryPolicy, UtcDateTime

ROWS_TABLE = "multiworker_rows"
CALLS_TABLE = "process_calls"


class TestBase(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime()}


class WorkRow(ClaimColumns, TestBase):
    __tablename__ = ROWS_TABLE
    __table_args__ = (
        Index(
            "ix_multiworker_rows_claimable",
            "created_at",
            "id",
            postgresql_where=text(CLAIMABLE_ROWS),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    deleted_at: Mapped[datetime | None]
    status: Mapped[ProcessingStatus] = mapped_column(
        Enum(
            ProcessingStatus,
            native_enum=False,
            length=20,
            values_callable=lambda members: [m.value for m in members],
        ),
        default=ProcessingStatus.QUEUED,
        server_default=ProcessingStatus.QUEUED.value,
    )
    # A poison row raises on every process call.
    poison: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    # Incremented by every won `complete`: the benchmark's exactly-once check.
    completions: Mapped[int] = mapped_column(default=0, server_default="0")


class ProcessCall(TestBase):
    __tablename__ = CALLS_TABLE
    __table_args__ = (Index("ix_process_calls_row_id", "row_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    call_id: Mapped[uuid.UUID]
    row_id: Mapped[uuid.UUID]
    worker_id: Mapped[str] = mapped_column(String(200))
    event: Mapped[str] = mapped_column(String(10))
    at: Mapped[datetime] = mapped_column(server_default=text("clock_timestamp()"))


def work_row_spec(lease_seconds: float, retry_base_seconds: float) -> ClaimSpec[WorkRow]:
    return status_claim_spec(
        WorkRow,
        order_by=(WorkRow.created_at,),
        lease=timedelta(seconds=lease_seconds),
        retry=RetryPolicy(
            base=timedelta(seconds=retry_base_seconds),
            cap=timedelta(seconds=retry_base_seconds * 8),
            jitter=0.1,
        ),
    )
