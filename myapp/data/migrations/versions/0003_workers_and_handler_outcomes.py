"""the workers table and per-minute handler outcome counters

`myapp_workers`: one row per running worker, refreshed with the lease heartbeat.
`myapp_handler_outcomes`: per handler and minute, what finished (summed over every worker,
written in batches). Both belong to the framework; see docs/operations.md.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 21:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import myapp.data.types

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "myapp_workers",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=50), nullable=False),
        sa.Column("started_at", myapp.data.types.UtcDateTime(), nullable=False),
        sa.Column("last_heartbeat_at", myapp.data.types.UtcDateTime(), nullable=False),
        sa.Column("stopped_at", myapp.data.types.UtcDateTime(), nullable=True),
        sa.Column("handlers", sa.Text(), nullable=False),
        sa.Column("in_flight", sa.Integer(), nullable=False),
        sa.Column("heartbeat_seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_myapp_workers")),
    )
    op.create_table(
        "myapp_handler_outcomes",
        sa.Column("handler", sa.String(length=200), nullable=False),
        sa.Column("minute", myapp.data.types.UtcDateTime(), nullable=False),
        sa.Column("succeeded", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("dead_lettered", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("total_duration_ms", sa.Float(), nullable=False),
        sa.Column("max_duration_ms", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("handler", "minute", name=op.f("pk_myapp_handler_outcomes")),
    )
    with op.batch_alter_table("myapp_handler_outcomes", schema=None) as batch_op:
        batch_op.create_index("ix_myapp_handler_outcomes_minute", ["minute"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("myapp_handler_outcomes", schema=None) as batch_op:
        batch_op.drop_index("ix_myapp_handler_outcomes_minute")
    op.drop_table("myapp_handler_outcomes")
    op.drop_table("myapp_workers")
