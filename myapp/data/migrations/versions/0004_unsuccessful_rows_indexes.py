"""partial indexes over the rows that finished without completing

`status`, `items --status failed` and `requeue --failed` read the Failed (and Cancelled) rows of
each claimable table; with a million completed rows beside them, finding none took a full scan
(80-170 ms on PostgreSQL). These indexes hold only those rows.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 21:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNSUCCESSFUL_ROWS = "status NOT IN ('Queued', 'Started', 'Completed') AND deleted_at IS NULL"
TABLES = ("staging_batches", "product_photos")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(
                f"ix_{table}_unsuccessful",
                ["id"],
                unique=False,
                postgresql_where=sa.text(UNSUCCESSFUL_ROWS),
                sqlite_where=sa.text(UNSUCCESSFUL_ROWS),
            )


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(
                f"ix_{table}_unsuccessful",
                postgresql_where=sa.text(UNSUCCESSFUL_ROWS),
                sqlite_where=sa.text(UNSUCCESSFUL_ROWS),
            )
