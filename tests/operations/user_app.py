"""A user's own claimable table and ClaimingHandler, registered beside ours: what every
operator command must see as it sees the built-in ones.

    python -m myapp --container tests.operations.user_app:UserApp status
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Index, MetaData, String, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from containers.application import ApplicationContainer
from containers.processing import ProcessingContainer
from myapp.processing.claim_columns import ClaimColumns, UtcDateTime
from myapp.processing.claiming_handler import ClaimingHandler
from myapp.processing.claims import ClaimSpec
from myapp.processing.errors import PermanentError
from myapp.processing.wiring import add_handler
from myapp.processing.work_item import ProcessorPurpose

HANDLER_NAME = "PriceCheck"
TABLE = "ops_price_checks"
SECRET_COLUMN_VALUE = "session=do-not-show-9f2c"
# The user's own status values: not ours.
WAITING, WORKING, DONE, GAVE_UP = "waiting", "working", "done", "gave-up"
BAD_SKU_PREFIX = "GONE-"


class UserBase(DeclarativeBase):
    metadata = MetaData()
    type_annotation_map = {datetime: UtcDateTime()}


class PriceCheck(ClaimColumns, UserBase):
    __tablename__ = TABLE
    __table_args__ = (Index(None, "id", postgresql_where=text("state IN ('waiting', 'working')")),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    sku: Mapped[str] = mapped_column(String(100), default="SKU-1")
    state: Mapped[str] = mapped_column(String(20), default=WAITING)
    # A column of the user's own that may hold a secret: never shown by the operator's view.
    credentials: Mapped[str | None] = mapped_column(String(200))


def price_check_spec() -> ClaimSpec[PriceCheck]:
    return ClaimSpec(
        model=PriceCheck,
        status=PriceCheck.state,
        queued=WAITING,
        started=WORKING,
        completed=DONE,
        failed=GAVE_UP,
        order_by=(PriceCheck.id,),
    )


class PriceCheckHandler(ClaimingHandler[PriceCheck]):
    def claim_spec(self) -> ClaimSpec[PriceCheck]:
        return price_check_spec()

    async def process(self, item: PriceCheck) -> None:
        if item.sku.startswith(BAD_SKU_PREFIX):  # the docs' sample run has a few of these
            raise PermanentError(f"no price on the competitor's page for {item.sku}")


class UserProcessing(ProcessingContainer):
    price_check = add_handler(
        PriceCheckHandler,
        name=HANDLER_NAME,
        max_items_per_cycle=10,
        purpose=ProcessorPurpose.EXPORT,
    )


UserApp = ApplicationContainer.with_processing(UserProcessing)


async def create_user_table(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(UserBase.metadata.create_all)
