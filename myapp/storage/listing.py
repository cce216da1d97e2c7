"""Which blobs of a container are old enough to delete, read from one paged listing.

A blob is old when nothing about it is younger than the cutoff: it was created *and* last
written before it (a blob rewritten yesterday holds yesterday's data, however long ago it was
first created), and none of its snapshots was taken since (someone who snapshotted it recently
meant to keep that copy; deleting the blob takes its snapshots with it). A blob with a young
snapshot is offered again once the snapshot is older than the cutoff too.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import UTC, datetime

from azure.storage.blob import BlobProperties
from azure.storage.blob.aio import ContainerClient


@dataclass(frozen=True)
class BlobInfo:
    container: str
    name: str
    created_at: datetime
    last_modified: datetime
    etag: str

    @classmethod
    def of(cls, container: str, blob: BlobProperties) -> BlobInfo:
        created_at, last_modified = _as_utc(blob.creation_time), _as_utc(blob.last_modified)
        return cls(container, blob.name, created_at, last_modified, str(blob.etag))


async def old_blobs(
    client: ContainerClient, container: str, cutoff: datetime, page_size: int
) -> AsyncGenerator[BlobInfo, None]:
    """The container's old blobs (see the module docstring), in name order."""
    # Snapshots are listed next to their blob (same name, in no order we rely on), so each
    # name's entries are gathered before the blob is judged.
    name: str | None = None
    base: BlobProperties | None = None
    young_snapshot = False
    entries = client.list_blobs(include=["snapshots"], results_per_page=page_size)
    async for entry in entries:
        if entry.name != name:
            if base is not None and not young_snapshot and _written_before(base, cutoff):
                yield BlobInfo.of(container, base)
            name, base, young_snapshot = entry.name, None, False
        if entry.snapshot:
            young_snapshot = young_snapshot or _snapshot_time(entry.snapshot) >= cutoff
        else:
            base = entry
    if base is not None and not young_snapshot and _written_before(base, cutoff):
        yield BlobInfo.of(container, base)


def _written_before(blob: BlobProperties, cutoff: datetime) -> bool:
    return _as_utc(blob.creation_time) < cutoff and _as_utc(blob.last_modified) < cutoff


def _snapshot_time(snapshot: str) -> datetime:
    """The snapshot's timestamp, e.g. `2026-11-29T06:56:06.3640000Z`; unreadable counts as now."""
    try:
        return _as_utc(datetime.fromisoformat(snapshot))
    except ValueError:
        return datetime.max.replace(tzinfo=UTC)  # unknown age: keep the blob


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
