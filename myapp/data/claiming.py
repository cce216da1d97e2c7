"""Claim specs for our tables, whose status column is a `ProcessingStatus`."""

from __future__ import annotations

from typing import Any, TypeVar

from myapp.data.models import ProcessingStatus
from myapp.processing import ClaimColumns, ClaimSpec

M = TypeVar("M", bound=ClaimColumns)


def status_claim_spec(model: type[M], **options: Any) -> ClaimSpec[M]:
    """A ClaimSpec over `model.status` with the ProcessingStatus values; `options` are the
    rest of ClaimSpec (order_by, where, lease, retry, error_column)."""
    return ClaimSpec(
        model=model,
        status=model.status,  # type: ignore[attr-defined]
        queued=ProcessingStatus.QUEUED,
        started=ProcessingStatus.STARTED,
        completed=ProcessingStatus.COMPLETED,
        failed=ProcessingStatus.FAILED,
        **options,
    )
