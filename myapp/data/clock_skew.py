"""How far this worker's clock is from the database's, and a start-up warning when it is far.

Leases and due times use the database's clock (myapp.processing.sql_time), so a skewed worker
clock cannot cause a double run; it only skews the timestamps handlers write themselves
(`completed_at`, `vectorized_at`, ...). The warning says so.
"""

from __future__ import annotations

from datetime import timedelta

from loguru import logger
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from myapp.clock import Clock, utc_now
from myapp.processing.claims import error_text
from myapp.processing.sql_time import database_time

DEFAULT_SKEW_TOLERANCE = timedelta(seconds=1)
# The sample with the shortest round trip brackets the database's reading most tightly.
OFFSET_SAMPLES = 3


async def database_clock_offset(engine: AsyncEngine, clock: Clock = utc_now) -> timedelta:
    """The database's time minus `clock`'s, each database reading compared with the local
    time halfway through its round trip; of OFFSET_SAMPLES readings, the tightest one's."""
    samples: list[tuple[timedelta, timedelta]] = []
    now = select(database_time(engine.dialect.name))
    async with engine.connect() as connection:
        await connection.scalar(now)  # the first query opens the transaction: not timed
        for _ in range(OFFSET_SAMPLES):
            before = clock()
            database_now = (await connection.execute(now)).scalar_one()
            after = clock()
            round_trip = after - before
            samples.append((round_trip, database_now - (before + round_trip / 2)))
    return min(samples, key=lambda sample: sample[0])[1]


async def warn_if_clock_skewed(
    engine: AsyncEngine, clock: Clock = utc_now, tolerance: timedelta = DEFAULT_SKEW_TOLERANCE
) -> timedelta | None:
    """Log one warning if this worker's clock is more than `tolerance` from the database's;
    the offset (database minus local) either way. None, with a warning, if the database
    cannot be reached: a worker starting before its database keeps starting (its cycles
    retry the database), as it did before this check."""
    local_now = clock()
    try:
        offset = await database_clock_offset(engine, clock)
    except (OSError, SQLAlchemyError) as error:
        cause = error.orig if isinstance(error, DBAPIError) and error.orig else error
        logger.warning(
            "Could not compare this worker's clock with the database's: {}", error_text(cause)
        )
        return None
    if abs(offset) > tolerance:
        logger.warning(
            "Clock skew: this worker's clock reads {} while the database's reads {} "
            "(database minus worker: {:+.3f} s; tolerance {} s). Leases and retry times use "
            "the database's clock, so this cannot make an item run twice; it only shifts the "
            "timestamps handlers write themselves (e.g. completed_at). Sync this machine's "
            "clock (NTP).",
            local_now.isoformat(timespec="milliseconds"),
            (local_now + offset).isoformat(timespec="milliseconds"),
            offset.total_seconds(),
            tolerance.total_seconds(),
        )
    return offset
