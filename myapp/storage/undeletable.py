"""Blobs the service refused to delete, remembered so listings skip them for a while.

A blob under a lease or a legal hold stays undeletable for a long time; without this memory the
cleanup, which lists in name order and stops at MaxItemsPerCycle, would pick the same blobs
every cycle and never reach the others. A refusal is remembered until the cutoff passes the
time it happened, i.e. until MaxAge has passed again (or the process restarts); then the blob is
tried once more. The memory is bounded: past `MAX_REMEMBERED` the oldest refusal is forgotten.
"""

from __future__ import annotations

from datetime import datetime

from myapp.storage.listing import BlobInfo

MAX_REMEMBERED = 10_000


class UndeletableBlobs:
    def __init__(self, max_remembered: int = MAX_REMEMBERED) -> None:
        self._max = max_remembered
        self._refused_at: dict[tuple[str, str], datetime] = {}  # insertion order = age

    def remember(self, blob: BlobInfo, refused_at: datetime) -> None:
        key = (blob.container, blob.name)
        self._refused_at.pop(key, None)
        self._refused_at[key] = refused_at
        while len(self._refused_at) > self._max:
            del self._refused_at[next(iter(self._refused_at))]

    def holds(self, blob: BlobInfo, cutoff: datetime) -> bool:
        """Whether `blob` was refused after `cutoff` (still skipped); forgets older refusals."""
        key = (blob.container, blob.name)
        refused_at = self._refused_at.get(key)
        if refused_at is None:
            return False
        if refused_at >= cutoff:
            return True
        del self._refused_at[key]
        return False

    def __len__(self) -> int:
        return len(self._refused_at)
