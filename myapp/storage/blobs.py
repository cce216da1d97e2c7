"""The blob operations myapp needs, over the real `azure-storage-blob` async client.

One `BlobStore` per process (a singleton in the container): it owns the `BlobServiceClient`
and remembers what it has already warned about, so a container that does not exist or storage
that refuses to list is one warning per outage, not an error every cycle. It also remembers the
blobs it could not delete (a lease, a legal hold), so the cleanup does not pick them every cycle.
"""

from __future__ import annotations

import enum
from contextlib import aclosing
from datetime import datetime
from urllib.parse import unquote, urlsplit

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.storage.blob.aio import BlobServiceClient, ExponentialRetry
from loguru import logger

from myapp.lifetime import AsyncClosing
from myapp.processing import PermanentError
from myapp.storage.listing import BlobInfo, old_blobs
from myapp.storage.problems import describe, is_permanent_refusal
from myapp.storage.undeletable import UndeletableBlobs

# Listing pages are cheap; the biggest page the service allows keeps round trips few.
LIST_PAGE_SIZE = 5000
BLOB_URL_SCHEME = "blob"
# Few, quick retries inside one call: the SDK default (15 s, 18 s, 24 s) would stall a cycle,
# and whatever still fails is tried again next cycle anyway.
STORAGE_RETRIES = 2
STORAGE_RETRY_BACKOFF_SECONDS = 1
_CONTAINER_NOT_FOUND = "ContainerNotFound"
_CONDITION_NOT_MET = "ConditionNotMet"
# A delete the service refuses with these will be refused again for a while: a lease someone
# else holds (412 LeaseIdMissing), an immutability policy or legal hold (409).
_UNDELETABLE_STATUSES = frozenset({409, 412})
_UNREACHABLE = "unreachable"


class DeleteOutcome(enum.Enum):
    DELETED = "deleted"
    GONE = "already gone"
    CHANGED = "changed since it was listed"
    REFUSED = "refused by the service"


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
        self._outage: str | None = None  # the listing problem already warned about
        self._undeletable = UndeletableBlobs()

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
        service = BlobServiceClient.from_connection_string(connection_string, retry_policy=retry)
        return cls(service)

    @property
    def account_url(self) -> str:
        """The account's blob endpoint, e.g. `http://127.0.0.1:10000/devstoreaccount1`."""
        return str(self._service.url).rstrip("/")

    async def list_older_than(self, container: str, cutoff: datetime, limit: int) -> list[BlobInfo]:
        """At most `limit` blobs of `container` untouched since before `cutoff`, in name order.

        A blob qualifies when it was created and last written strictly before `cutoff` and has
        no snapshot taken since (see `old_blobs`). Blobs whose delete was refused recently are
        skipped. The service cannot filter on time, so the listing is paged through until
        `limit` are found. A missing container or failing storage is a warning and yields [].
        """
        found: list[BlobInfo] = []
        if limit <= 0:
            return found
        client = self._service.get_container_client(container)
        try:
            async with aclosing(old_blobs(client, container, cutoff, LIST_PAGE_SIZE)) as blobs:
                async for blob in blobs:
                    if self._undeletable.holds(blob, cutoff):
                        continue
                    found.append(blob)
                    if len(found) >= limit:
                        break
        except ServiceRequestError:
            # Nothing answers at the endpoint (e.g. Azurite not started): one warning per outage.
            self._warn_outage_once(_UNREACHABLE, container)
            return []
        except AzureError as error:
            if getattr(error, "error_code", None) == _CONTAINER_NOT_FOUND:
                self._warn_missing_once(container)
            else:
                self._warn_outage_once(describe(error), container)
            return []
        if self._outage is not None:
            logger.info("Blob storage at {url} lists blobs again", url=self.account_url)
            self._outage = None
        self._warned_missing.discard(container)
        return found

    async def delete_if_unchanged(self, blob: BlobInfo, *, now: datetime) -> DeleteOutcome:
        """Delete the blob (and its snapshots) unless it changed since it was listed.

        Snapshots go with it ("include"): the listing only offers blobs whose snapshots were
        all taken before the cutoff. A blob rewritten since the listing (its ETag moved) is
        kept. A delete the service refuses for a reason that lasts (a lease, a legal hold) is
        logged once and the blob is skipped by listings whose cutoff is not past `now` (the
        caller's clock, the one its cutoffs come from): until MaxAge has passed again.
        """
        client = self._service.get_blob_client(blob.container, blob.name)
        log = logger.bind(container=blob.container, blob=blob.name)
        try:
            await client.delete_blob(
                delete_snapshots="include",
                etag=blob.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except ResourceNotFoundError:
            return DeleteOutcome.GONE
        except HttpResponseError as error:
            code = getattr(error, "error_code", None)
            if isinstance(error, ResourceModifiedError) or code == _CONDITION_NOT_MET:
                log.info("Blob {blob} changed since it was listed; kept", blob=blob.name)
                return DeleteOutcome.CHANGED
            if error.status_code not in _UNDELETABLE_STATUSES:
                raise
            self._undeletable.remember(blob, now)
            log.warning(
                "Blob {blob} in container {container} cannot be deleted ({problem}); "
                "blob cleanup skips it until MaxAge has passed again",
                blob=blob.name,
                container=blob.container,
                problem=describe(error),
            )
            return DeleteOutcome.REFUSED
        return DeleteOutcome.DELETED

    async def download(self, container: str, name: str, *, max_bytes: int) -> bytes:
        """The blob's content.

        PermanentError when it does not exist, exceeds `max_bytes` or the service refuses the
        request itself (a 4xx that is not about throttling or our credentials); other
        `AzureError`s are left to the caller as transient.
        """
        client = self._service.get_blob_client(container, name)
        try:
            size = (await client.get_blob_properties()).size
            if size > max_bytes:
                raise BlobTooLargeError(container, name, size, max_bytes)
            if size == 0:  # a ranged read of an empty blob is a 416, not b""
                return b""
            # Ranged, one byte past the limit: a blob that grew since is still caught.
            downloader = await client.download_blob(offset=0, length=max_bytes + 1)
            content = await downloader.readall()
        except ResourceNotFoundError as error:
            raise PermanentError(f"blob {container}/{name} does not exist") from error
        except HttpResponseError as error:
            if is_permanent_refusal(error):
                raise PermanentError(f"blob {container}/{name}: {describe(error)}") from error
            raise
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

    def _warn_outage_once(self, problem: str, container: str) -> None:
        if self._outage == problem:
            return
        self._outage = problem
        log = logger.bind(container=container)
        if problem == _UNREACHABLE:
            log.warning(
                "Blob storage at {url} is not reachable; blob cleanup waits until it is "
                "(ConnectionStrings:BlobStorage; the default is the Azurite emulator on 127.0.0.1)",
                url=self.account_url,
            )
        else:
            log.warning(
                "Listing blob container {container} at {url} failed ({problem}); blob cleanup "
                "tries again every cycle and warns again only if the problem changes",
                container=container,
                url=self.account_url,
                problem=problem,
            )

    async def close(self) -> None:
        await self._service.close()
