"""database_time: the database's now plus an offset, in exactly the form UtcDateTime stores (on
SQLite, text that compares as text), read back as an aware UTC datetime."""

from __future__ import annotations

from datetime import UTC, timedelta

from sqlalchemy import String, select, text, type_coerce, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from myapp.data.models import ProductPhoto
from myapp.processing.sql_time import database_time
from tests.data.claim_helpers import add_photos
from tests.fixtures.clock import FakeClock

Factory = async_sessionmaker[AsyncSession]
OFFSETS = [
    timedelta(hours=-3),
    timedelta(seconds=-1.5),
    timedelta(milliseconds=1),
    timedelta(minutes=5),
    timedelta(days=1, microseconds=250_000),
]


async def test_an_offset_moves_the_time_by_exactly_that_much(session_factory: Factory) -> None:
    async with session_factory() as session:
        dialect = session.get_bind().dialect.name
        for offset in OFFSETS:
            now, later = (
                await session.execute(
                    select(database_time(dialect), database_time(dialect, offset))
                )
            ).one()
            assert now.tzinfo is UTC and later - now == offset  # one instant per statement


async def test_it_has_the_form_utc_datetime_stores(session_factory: Factory) -> None:
    [id] = await add_photos(session_factory, FakeClock(), 1)
    async with session_factory() as session:
        dialect = session.get_bind().dialect.name
        moment = database_time(dialect, timedelta(minutes=5))
        as_written, as_read = (
            await session.execute(select(type_coerce(moment, String()), moment))
        ).one()
        assert as_read.tzinfo is UTC
        await session.execute(
            update(ProductPhoto).where(ProductPhoto.id == id).values(locked_until=as_read)
        )
        await session.commit()
        stored = (await session.execute(text("SELECT locked_until FROM product_photos"))).scalar()

    # SQLite: the very text UtcDateTime writes ('YYYY-MM-DD HH:MM:SS.ffffff'), so comparing the
    # expression with stored times, which SQLite does as text, orders them as times.
    assert stored == (as_written if dialect == "sqlite" else as_read)
