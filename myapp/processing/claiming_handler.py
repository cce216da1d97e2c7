"""ClaimingHandler: the base of handlers over a claimable table."""

from __future__ import annotations

import functools
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from myapp.processing.claim_columns import ClaimColumns
from myapp.processing.claims import Claims, ClaimSpec
from myapp.processing.errors import PermanentError

M = TypeVar("M", bound=ClaimColumns)


class ClaimingHandler(ABC, Generic[M]):
    """Base for handlers over a table with ClaimColumns. Subclasses implement `claim_spec()`
    and `process()`; fetching claims rows, and the engine's lifecycle calls finish them."""

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

    async def complete(self, items: Sequence[M]) -> None:
        ids = [item.id for item in items]
        won = await self.claims.complete(ids, self.completion_values(self._clock()))
        self._warn_lost(ids, won, "complete")

    async def fail(self, item: M, error: BaseException) -> None:
        # A timeout (TimeoutError) is transient: only PermanentError skips the retries.
        await self.claims.fail(item.id, error, permanent=isinstance(error, PermanentError))

    async def extend(self, items: Sequence[M]) -> None:
        ids = [item.id for item in items]
        self._warn_lost(ids, await self.claims.extend(ids), "extend")

    async def release(self, items: Sequence[M]) -> None:
        ids = [item.id for item in items]
        self._warn_lost(ids, await self.claims.release(ids), "release")

    def _warn_lost(self, ids: Sequence[uuid.UUID], won: set[uuid.UUID], action: str) -> None:
        lost = [id for id in ids if id not in won]
        if lost:
            logger.bind(worker=self._worker_id).warning(
                "Could not {} {} items: their lease was taken over: {}", action, len(lost), lost
            )
