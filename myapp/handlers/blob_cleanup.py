"""BlobCleanup: delete blobs older than `MaxAge` from one container.

Items are the blobs themselves (no table): fetch lists blobs created and last written before
`clock() - MaxAge` (and with no snapshot taken since), process deletes one. Deleting is
idempotent (a blob already gone is done) and conditional on the blob being unchanged since it
was listed, so a blob rewritten in between is never deleted. A blob the service refuses to
delete (a lease, a legal hold) is a warning once, then skipped by listings until MaxAge has
passed again (`BlobStore` remembers it), so it cannot hold the cleanup back.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

from loguru import logger
from pydantic import Field

from myapp.processing import AgeTimeSpan, HandlerOptions
from myapp.storage.blobs import BlobStore, DeleteOutcome
from myapp.storage.listing import BlobInfo

DEFAULT_CONTAINER_NAME = "search-images"
DEFAULT_MAX_AGE = timedelta(hours=24)


class BlobCleanupOptions(HandlerOptions):
    container_name: str = Field(default=DEFAULT_CONTAINER_NAME, min_length=3, max_length=63)
    max_age: AgeTimeSpan = DEFAULT_MAX_AGE


@dataclass(frozen=True)
class ExpiredBlob:
    """A blob chosen for deletion; `id` is stable for the same container and name."""

    id: uuid.UUID
    blob: BlobInfo

    @property
    def name(self) -> str:
        return self.blob.name

    @classmethod
    def of(cls, blob: BlobInfo) -> ExpiredBlob:
        return cls(uuid.uuid5(uuid.NAMESPACE_URL, f"{blob.container}/{blob.name}"), blob)


class BlobCleanupHandler:
    options_model: ClassVar[type[HandlerOptions]] = BlobCleanupOptions

    def __init__(
        self,
        *,
        options: BlobCleanupOptions,
        blob_store: BlobStore,
        clock: Callable[[], datetime],
    ) -> None:
        self._options = options
        self._blobs = blob_store
        self._clock = clock

    async def fetch_work_items(self, max_items: int) -> Sequence[ExpiredBlob]:
        cutoff = self._clock() - self._options.max_age
        blobs = await self._blobs.list_older_than(self._options.container_name, cutoff, max_items)
        return [ExpiredBlob.of(blob) for blob in blobs]

    async def process(self, item: ExpiredBlob) -> None:
        outcome = await self._blobs.delete_if_unchanged(item.blob, now=self._clock())
        log = logger.bind(container=item.blob.container)  # handler and item_id: the engine's
        if outcome is DeleteOutcome.DELETED:
            log.info(
                "Deleted blob {name} (created {created_at:%Y-%m-%d %H:%M:%S})",
                name=item.name,
                created_at=item.blob.created_at,
            )
        elif outcome is DeleteOutcome.GONE:
            log.debug("Blob {name} was already gone", name=item.name)
        # CHANGED and REFUSED: the store has said why the blob was kept.
