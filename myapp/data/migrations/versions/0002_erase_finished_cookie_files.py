"""erase the cookie files of finished Shein batches

Until this revision a batch kept its cookie file (a live session for the user's Shein account)
in plain text for ever. New batches store it sealed and lose it when they finish; this erases
what finished batches still hold, so no dump or backup taken from now on carries those sessions.
Queued and Started batches keep theirs: the worker reads such a plain-text file as it is and
erases it when the batch finishes. Erased data cannot come back: the downgrade changes nothing.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 18:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        sa.text(
            "UPDATE staging_batches SET file_contents = NULL "
            "WHERE file_contents IS NOT NULL "
            "AND (status IN ('Completed', 'Failed', 'Cancelled') OR deleted_at IS NOT NULL)"
        )
    )


def downgrade() -> None:
    pass
