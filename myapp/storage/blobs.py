"""The blob operations myapp needs, over the real `azure-storage-blob` async client.

One `BlobStore` per process (a singleton in the container): it owns the `BlobServiceClient`
and remembers which missing containers it has already warned about, so a container that does
not exist is one warning, not an error every cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError, ServiceRequestError
from azure.storage.blob.aio import BlobServiceClient, ExponentialRetry
from loguru import logger

from myapp.lifetime import AsyncClosing
from myapp.processing.errors import PermanentError

# Listing pages are cheap; the biggest page the service allows keeps round trips few.
LIST_PAGE_SIZE = 5000
BLOB_URL_SCHEME = "blob"
# Few, quick retries inside one call: the SDK default (15 s, 18 s, 24 s) would stall a cycle,
# and whatever still fails is tried again next cycle anyway.
STORAGE_RETRIES = 2
STORAGE_RETRY_BACKOFF_SECONDS = 1
_CONTAINER_NOT_FOUND = "ContainerNotFound"


@dataclass(frozen=True)
class BlobInfo:
    container: str
    name: str
    created_at: datetime
    etag: str


class BlobTooLargeError(PermanentError):
    """The blob is bigger than the caller accepts."""

    def __init__(self, container: str, name: str, size: int | None, max_bytes: int) -> None:
        self.size = size
        actual = f"{size} bytes, " if size is not None else ""
        super().__init__(f"blob {container}/{name} is {actual}over the limit of {max_bytes} bytes")


class BlobStore(AsyncClosing):
    def __init__(self, service: BlobServiceClient) -> None:
        self._service = service
        self._warned_missing: set[str] = set()
        self._warned_unreachable = False

    @classmethod
    def from_connection_string(
        cls, connection_string: str, *, retries: int = STORAGE_RETRIES
    ) -> BlobStore:
        retry = ExponentialRetry(
            initial_backoff=STORAGE_RETRY_BACKOFF_SECONDS,
            increment_base=2,
            retry_total=retries,
            # Storage that cannot be reached now will not be in a few seconds either: fail the
            # call at once (one warning) instead of holding the cycle open for ~8 s.
            retry_connect=0,
            random_jitter_range=1,
        )
        return cls(BlobServiceClient.from_connection_string(connection_string, retry_policy=retry))

    @property
    def account_url(self) -> str:
        """The account's blob endpoint, e.g. `http://127.0.0.1:10000/devstoreaccount1`."""
        return str(self._service.url).rstrip("/")

    async def list_created_before(
        self, container: str, cutoff: datetime, limit: int
    ) -> list[BlobInfo]:
        """At most `limit` blobs of `container` created strictly before `cutoff`, in name order.

        The service cannot filter on creation time, so the listing is paged through until
        `limit` matches are found. A missing container is logged once and yields nothing.
        """
        found: list[BlobInfo] = []
        if limit <= 0:
            return found
        client = self._service.get_container_client(container)
        try:
            async for blob in client.list_blobs(results_per_page=LIST_PAGE_SIZE):
                created_at = _as_utc(blob.creation_time)
                if created_at < cutoff:
                    found.append(BlobInfo(container, blob.name, created_at, blob.etag))
                    if len(found) >= limit:
                        break
        except ResourceNotFoundError as error:
            if getattr(error, "error_code", None) != _CONTAINER_NOT_FOUND:
                raise
            self._warn_missing_once(container)
            return []
        except ServiceRequestError:
            # Nothing answers at the endpoint (e.g. Azurite not started): one warning per outage.
            self._warn_unreachable_once()
            return []
        if self._warned_unreachable:
            logger.info("Blob storage at {url} is reachable again", url=self.account_url)
            self._warned_unreachable = False
        self._warned_missing.discard(container)
        return found

    async def delete_if_unchanged(self, blob: BlobInfo) -> bool:
        """Delete the blob (and its snapshots) unless it changed since it was listed.

        Returns False when there was nothing to delete: already gone, or rewritten since the
        listing (its ETag moved, so it is no longer the old blob the cleanup chose).
        """
        client = self._service.get_blob_client(blob.container, blob.name)
        try:
            await client.delete_blob(
                delete_snapshots="include",
                etag=blob.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except ResourceNotFoundError:
            return False
        except ResourceModifiedError:
            logger.bind(container=blob.container, blob=blob.name).info(
                "Blob {blob} changed since it was listed; kept", blob=blob.name
            )
            return False
        return True

    async def download(self, container: str, name: str, *, max_bytes: int) -> bytes:
        """The blob's content; PermanentError when it does not exist or exceeds `max_bytes`."""
        client = self._service.get_blob_client(container, name)
        try:
            size = (await client.get_blob_properties()).size
            if size > max_bytes:
                raise BlobTooLargeError(container, name, size, max_bytes)
            # Ranged, one byte past the limit: a blob that grew since is still caught.
            downloader = await client.download_blob(offset=0, length=max_bytes + 1)
            content = await downloader.readall()
        except ResourceNotFoundError as error:
            raise PermanentError(f"blob {container}/{name} does not exist") from error
        if len(content) > max_bytes:
            raise BlobTooLargeError(container, name, None, max_bytes)
        return content

    def parse_blob_url(self, url: str) -> tuple[str, str] | None:
        """(container, name) for `blob://container/name` or a URL on this account's endpoint."""
        parts = urlsplit(url)
        if parts.scheme == BLOB_URL_SCHEME:
            container, _, name = (parts.netloc + parts.path).partition("/")
            return (unquote(container), unquote(name)) if container and name else None
        account = urlsplit(self.account_url)
        if (parts.scheme, parts.netloc) != (account.scheme, account.netloc):
            return None
        prefix = account.path.rstrip("/") + "/"
        if not parts.path.startswith(prefix):
            return None
        container, _, name = parts.path[len(prefix) :].partition("/")
        return (unquote(container), unquote(name)) if container and name else None

    def _warn_missing_once(self, container: str) -> None:
        if container in self._warned_missing:
            return
        self._warned_missing.add(container)
        logger.bind(container=container).warning(
            "Blob container {container} does not exist; nothing to clean up until it is created",
            container=container,
        )

    def _warn_unreachable_once(self) -> None:
        if self._warned_unreachable:
            return
        self._warned_unreachable = True
        logger.warning(
            "Blob storage at {url} is not reachable; blob cleanup waits until it is "
            "(ConnectionStrings:BlobStorage; the default is the Azurite emulator on 127.0.0.1)",
            url=self.account_url,
        )

    async def close(self) -> None:
        await self._service.close()


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
