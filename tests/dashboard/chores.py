"""A user's own claimable table and handler, registered beside the built-in ones: what the
dashboard tests look at and what their worker (`python -m myapp run --container
tests.dashboard.chores:ChoresApp`) processes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import MetaData, String, Text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from containers.application import ApplicationContainer
from containers.processing import ProcessingContainer
from myapp.data.types import UtcDateTime
from myapp.processing import ProcessorPurpose
from myapp.processing.claim_columns import ClaimColumns
from myapp.processing.claiming_handler import ClaimingHandler
from myapp.processing.claims import ClaimSpec
from myapp.processing.wiring import add_handler

HANDLER = "Chores"


class ChoresBase(DeclarativeBase):
    metadata = MetaData()


class Chore(ClaimColumns, ChoresBase):
    __tablename__ = "chores"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="Queued")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=lambda: datetime.now(UTC))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=lambda: datetime.now(UTC))
    done_by: Mapped[str | None] = mapped_column(Text)


class ChoreHandler(ClaimingHandler[Chore]):
    def claim_spec(self) -> ClaimSpec[Chore]:
        return ClaimSpec(
            model=Chore,
            status=Chore.status,
            queued="Queued",
            started="Started",
            completed="Completed",
            failed="Failed",
            order_by=(Chore.id,),
        )

    async def process(self, item: Chore) -> None:
        pass  # done: completing it is the engine's acknowledgement


class ChoresProcessing(ProcessingContainer):
    chores = add_handler(
        ChoreHandler,
        name=HANDLER,
        max_items_per_cycle=50,
        purpose=ProcessorPurpose.INTERNAL,
    )


ChoresApp = ApplicationContainer.with_processing(ChoresProcessing)


CONTAINER = "tests.dashboard.chores:ChoresApp"


async def create_chores_table(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(ChoresBase.metadata.drop_all)
        await connection.run_sync(ChoresBase.metadata.create_all)
