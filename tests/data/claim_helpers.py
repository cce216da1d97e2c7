"""Helpers for the claim tests: a spec over ProductPhoto, one-shot calls in fresh sessions, and
the database's clock (read it; move a table's lease ends and retry times as if it ran on)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from myapp.data.models import ProcessingStatus, ProductPhoto
from myapp.processing import ClaimColumns, ClaimSpec, RetryPolicy
from myapp.processing.claims import Claims, FailOutcome
from myapp.processing.sql_time import database_time
from tests.fixtures.clock import FakeClock

LEASE = timedelta(minutes=5)
NO_JITTER = RetryPolicy(base=timedelta(seconds=10), cap=timedelta(hours=1), jitter=0.0)


def photo_spec(**overrides: Any) -> ClaimSpec[ProductPhoto]:
    values: dict[str, Any] = {
        "model": ProductPhoto,
        "status": ProductPhoto.status,
        "queued": ProcessingStatus.QUEUED,
        "started": ProcessingStatus.STARTED,
        "completed": ProcessingStatus.COMPLETED,
        "failed": ProcessingStatus.FAILED,
        "order_by": (ProductPhoto.created_at,),
        "lease": LEASE,
        "retry": NO_JITTER,
    }
    values.update(overrides)
    return ClaimSpec(**values)


async def add_photos(
    factory: async_sessionmaker[AsyncSession], clock: FakeClock, count: int, **columns: Any
) -> list[uuid.UUID]:
    """`count` Queued photos, created one second apart from the clock's now (oldest first)."""
    ids = [uuid.uuid4() for _ in range(count)]
    rows = [
        {
            "id": id,
            "url": f"https://images.test/{index}.jpg",
            "created_at": clock.now + timedelta(seconds=index),
            "updated_at": clock.now,
            **columns,
        }
        for index, id in enumerate(ids)
    ]
    async with factory() as session:
        await session.execute(insert(ProductPhoto), rows)
        await session.commit()
    return ids


async def load(factory: async_sessionmaker[AsyncSession], id: uuid.UUID) -> ProductPhoto:
    async with factory() as session:
        return (
            await session.execute(select(ProductPhoto).where(ProductPhoto.id == id))
        ).scalar_one()


class Worker:
    """One worker: every call runs in a fresh session, as the engine does."""

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        clock: FakeClock,
        worker_id: str,
        spec: ClaimSpec[ProductPhoto] | None = None,
    ) -> None:
        self.factory, self.clock, self.id = factory, clock, worker_id
        self.spec = spec or photo_spec()

    async def claim(self, limit: int) -> list[ProductPhoto]:
        async with self.factory() as session:
            return await self._claims(session).claim(limit)

    async def complete(self, ids: Sequence[uuid.UUID], **values: Any) -> set[uuid.UUID]:
        async with self.factory() as session:
            return await self._claims(session).complete(ids, values)

    async def fail(
        self, id: uuid.UUID, error: BaseException | str, permanent: bool = False
    ) -> FailOutcome:
        async with self.factory() as session:
            return await self._claims(session).fail(id, error, permanent=permanent)

    async def extend(self, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        async with self.factory() as session:
            return await self._claims(session).extend(ids)

    async def release(self, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        async with self.factory() as session:
            return await self._claims(session).release(ids)

    def _claims(self, session: AsyncSession) -> Claims[ProductPhoto]:
        return Claims(session, self.spec, worker_id=self.id, clock=self.clock)


async def database_now(factory: async_sessionmaker[AsyncSession]) -> datetime:
    """The time the claims read: the database's."""
    async with factory() as session:
        moment = database_time(session.get_bind().dialect.name)
        return (await session.execute(select(moment))).scalar_one()


async def pass_time(
    factory: async_sessionmaker[AsyncSession], model: type[ClaimColumns], delta: timedelta
) -> None:
    """As if `delta` went by on the database's clock (which tests cannot move): every lease end
    and retry time in `model`'s table moves `delta` earlier."""

    def earlier(moment: datetime | None) -> datetime | None:
        return None if moment is None else moment - delta

    table: Any = model
    async with factory() as session:
        rows = await session.execute(select(table.id, table.locked_until, table.next_attempt_at))
        for id, locked_until, next_attempt_at in rows.all():
            await session.execute(
                update(table)
                .where(table.id == id)
                .values(
                    locked_until=earlier(locked_until), next_attempt_at=earlier(next_attempt_at)
                )
            )
        await session.commit()
