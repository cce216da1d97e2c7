"""ClaimingHandler: the base of handlers over a claimable table."""

from __future__ import annotations

import functools
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, TypeVar

from loguru import logger
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession

from myapp.processing.claim_columns import ClaimColumns
from myapp.processing.claims import Claims, ClaimSpec, FailOutcome
from myapp.processing.errors import PermanentError

M = TypeVar("M", bound=ClaimColumns)


class ClaimingHandler(ABC, Generic[M]):
    """Base for handlers over a table with ClaimColumns. Subclasses implement `claim_spec()`
    and `process()`; fetching claims rows, and the engine's lifecycle calls finish them."""

    cancel_on_lost_lease: ClassVar[bool] = True
    """When another worker takes over a running item's lease (this worker stalled past it),
    the engine cancels `process`. A handler whose work must not be interrupted halfway (and is
    idempotent anyway) sets this to False: it then runs to its end, and its completion is not
    recorded."""

    def __init__(
        self,
        *,
        session: AsyncSession,
        worker_id: str,
        clock: Callable[[], datetime],
        lease_clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._session = session
        self._worker_id = worker_id
        self._clock = clock
        # Leases and due times use the database's clock, never `clock`; tests moving lease
        # time by hand give `lease_clock`.
        self._lease_clock = lease_clock

    @abstractmethod
    def claim_spec(self) -> ClaimSpec[M]: ...

    @abstractmethod
    async def process(self, item: M) -> None: ...

    def completion_values(self, now: datetime) -> Mapping[str, Any]:
        """Extra columns set when items complete (e.g. `completed_at`)."""
        return {}

    @property
    def claim_table(self) -> str:
        """The table this handler claims from: a notification about it wakes the handler."""
        return str(inspect(self.claim_spec().model).local_table.name)

    @property
    def lease(self) -> timedelta:
        """How long a claim lasts unrenewed; the engine renews held items well within it."""
        return self.claim_spec().lease

    @functools.cached_property
    def claims(self) -> Claims[M]:
        return Claims(
            self._session, self.claim_spec(), worker_id=self._worker_id, clock=self._lease_clock
        )

    async def fetch_work_items(self, max_items: int) -> Sequence[M]:
        return await self.claims.claim(max_items)

    async def next_due_in(self) -> timedelta | None:
        """When a row this worker could not claim becomes claimable (continuous mode sleeps
        until then at most): a retry's backoff ending, or another worker's lease running out."""
        return await self.claims.next_due_in()

    async def complete(self, items: Sequence[M]) -> Collection[uuid.UUID]:
        """Mark the items done; the ids this worker no longer held (not recorded)."""
        ids = [item.id for item in items]
        won = await self.claims.complete(ids, self.completion_values(self._clock()))
        return self._lost(ids, won)

    async def fail(self, item: M, error: BaseException) -> bool:
        """Schedule a retry or dead-letter the item; True if it was dead-lettered."""
        # A timeout (TimeoutError) is transient: only PermanentError skips the retries.
        outcome = await self.claims.fail(
            item.id, error, permanent=isinstance(error, PermanentError)
        )
        return outcome is FailOutcome.DEAD_LETTERED

    async def extend(self, items: Sequence[M]) -> Collection[uuid.UUID]:
        """Renew the leases; the ids whose lease another worker holds now (the engine stops
        renewing them, never starts them and cancels them if running)."""
        ids = [item.id for item in items]
        return self._lost(ids, await self.claims.extend(ids))

    async def release(self, items: Sequence[M]) -> None:
        ids = [item.id for item in items]
        lost = self._lost(ids, await self.claims.release(ids))
        if lost:
            logger.bind(worker=self._worker_id).warning(
                "Could not release {} items: their lease was taken over: {}", len(lost), lost
            )

    @staticmethod
    def _lost(ids: Sequence[uuid.UUID], won: set[uuid.UUID]) -> set[uuid.UUID]:
        return {id for id in ids if id not in won}
