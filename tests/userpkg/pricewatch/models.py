from __future__ import annotations

import uuid
from decimal import Decimal

from myapp.data.types import ExactDecimal
from myapp.processing import ClaimColumns
from sqlalchemy import Index, MetaData, String, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    # pricewatch's own MetaData, not myapp's: each side's migrations see their own tables only.
    metadata = MetaData(naming_convention={"ix": "ix_%(table_name)s_%(column_0_N_name)s"})


class PriceCheck(ClaimColumns, Base):
    """A competitor's price to look up; several workers may claim these rows."""

    __tablename__ = "pricewatch_price_checks"
    __table_args__ = (
        # The rows a claim may pick, in its order (id): claims stay an index scan however
        # many finished rows pile up.
        Index(
            None,
            "id",
            postgresql_where=text("status IN ('Queued', 'Started')"),
            sqlite_where=text("status IN ('Queued', 'Started')"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    sku: Mapped[str] = mapped_column(String(100))
    competitor_url: Mapped[str] = mapped_column(String(2000))
    status: Mapped[str] = mapped_column(String(20), default="Queued", server_default="Queued")
    price: Mapped[Decimal | None] = mapped_column(ExactDecimal())
