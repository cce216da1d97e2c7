"""The seams every handler implements: a work item, where it comes from, how it is processed."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import IntEnum
from typing import Protocol, TypeVar, runtime_checkable


@runtime_checkable
class WorkItem(Protocol):
    """Anything with a UUID id can be processed."""

    @property
    def id(self) -> uuid.UUID: ...


T = TypeVar("T", bound=WorkItem)
T_co = TypeVar("T_co", bound=WorkItem, covariant=True)
T_contra = TypeVar("T_contra", bound=WorkItem, contravariant=True)


@runtime_checkable
class WorkItemSource(Protocol[T_co]):
    async def fetch_work_items(self, max_items: int) -> Sequence[T_co]: ...


@runtime_checkable
class WorkItemProcessor(Protocol[T_contra]):
    async def process(self, item: T_contra) -> None: ...


@runtime_checkable
class WorkItemHandler(Protocol[T]):
    """A source and a processor in one class: the usual shape of a handler."""

    async def fetch_work_items(self, max_items: int) -> Sequence[T]: ...

    async def process(self, item: T) -> None: ...


@runtime_checkable
class ClaimLifecycle(Protocol[T_contra]):
    """Optional: a handler whose items are claimed with leases implements these.

    The engine calls them (each in a fresh scope, with a fresh handler) instead of leaving
    completion to `process`: completions that finish together are acknowledged in one call,
    leases of held items are renewed, and items fetched but never started are released.
    `complete` and `extend` return the ids this worker no longer holds (another worker took
    them over): the engine does not count those completions as successes, never starts such an
    item, and cancels it if it is running (unless the handler sets `cancel_on_lost_lease`
    to False). Returning None means "all held". `fail` returns True when the failure
    dead-lettered the item (no attempt left, or a permanent error): the engine's observers count
    it as dead-lettered rather than failed.
    """

    async def complete(self, items: Sequence[T_contra]) -> Collection[uuid.UUID] | None: ...

    async def fail(self, item: T_contra, error: BaseException) -> bool | None: ...

    async def extend(self, items: Sequence[T_contra]) -> Collection[uuid.UUID] | None: ...

    async def release(self, items: Sequence[T_contra]) -> None: ...


@dataclass(frozen=True)
class BatchResult:
    """What `process_batch` reports: the items that failed, by id, with their errors. Every
    other item of the batch succeeded."""

    failed: Mapping[uuid.UUID, BaseException] = field(default_factory=dict)


@runtime_checkable
class BatchProcessor(Protocol[T_contra]):
    """Optional: a handler that processes several items in one call (one scope, one session,
    one request to a service that takes batches) defines `process_batch`; the engine then
    calls it instead of `process` with up to `MaxItemsPerCycle` of the handler's queued items.
    Raising fails the whole batch; returning None means every item succeeded."""

    async def process_batch(self, items: Sequence[T_contra]) -> BatchResult | None: ...


@runtime_checkable
class DueTime(Protocol):
    """Optional: a handler that knows when its next item falls due (a retry's backoff ending,
    another worker's lease running out) implements this, so that in continuous mode it is woken
    then rather than at its poll interval."""

    async def next_due_in(self) -> timedelta | None: ...


class ProcessorPurpose(IntEnum):
    INGESTION = 0
    INTERNAL = 1
    EXPORT = 2
