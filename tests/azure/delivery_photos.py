"""A second photo table, as the seed's "DeliveryImageVectorization" would use.

Test-only: mapped on its own metadata (so the application's schema and the migration drift
check never see it), created for one test and dropped after it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from sqlalchemy import String
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from myapp.data.models import ProcessingStatus, utc_now
from myapp.data.types import Embedding, Float32Vector, UtcDateTime
from myapp.processing import ClaimColumns


class DeliveryBase(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime()}


class DeliveryPhoto(ClaimColumns, DeliveryBase):
    __tablename__ = "test_delivery_photos"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)
    deleted_at: Mapped[datetime | None]
    url: Mapped[str]
    status: Mapped[ProcessingStatus] = mapped_column(String(20), default=ProcessingStatus.QUEUED)
    embedding: Mapped[Embedding | None] = mapped_column(Float32Vector())
    embedding_model: Mapped[str | None] = mapped_column(String(200))
    embedding_dimensions: Mapped[int | None]
    vectorized_at: Mapped[datetime | None]


@asynccontextmanager
async def delivery_photo_table(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[None]:
    engine = sessions.kw["bind"]
    assert isinstance(engine, AsyncEngine)
    async with engine.begin() as connection:
        await connection.run_sync(DeliveryBase.metadata.create_all)
    try:
        yield
    finally:
        async with engine.begin() as connection:
            await connection.run_sync(DeliveryBase.metadata.drop_all)
