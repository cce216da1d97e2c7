"""On PostgreSQL a claim, completion or release that is its own transaction commits without
waiting for the disk; a transaction of the caller's, and every later statement, keep the
server's setting. A renewal always waits (docs/operations.md says why)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from myapp.processing.claims import Claims
from tests.data.claim_helpers import add_photos, photo_spec
from tests.fixtures.clock import FakeClock
from tests.fixtures.statements import Statement, recorded_statements

Factory = async_sessionmaker[AsyncSession]
pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
ASYNCHRONOUS = "set_config"


@pytest.fixture
def seen(db_engine: AsyncEngine) -> Iterator[list[Statement]]:
    """The statements sent once the test starts recording (`seen.clear()`)."""
    with recorded_statements(db_engine) as statements:
        yield statements


async def test_claim_complete_and_release_commit_asynchronously_and_renewals_do_not(
    session_factory: Factory, db_engine: AsyncEngine, clock: FakeClock, seen: list[Statement]
) -> None:
    await add_photos(session_factory, clock, 4)
    seen.clear()
    async with session_factory() as session:
        claimed = await Claims(session, photo_spec(), worker_id="w").claim(4)
    for call in ("complete", "release", "extend"):
        async with session_factory() as session:
            claims = Claims(session, photo_spec(), worker_id="w")
            await getattr(claims, call)([claimed.pop().id])

    claim, complete, release, extend = (s.sql for s in seen if s.startswith("UPDATE"))
    assert ASYNCHRONOUS in claim and ASYNCHRONOUS in complete and ASYNCHRONOUS in release
    assert ASYNCHRONOUS not in extend
    async with db_engine.connect() as connection:  # the setting ended with each statement
        assert (await connection.execute(text("SHOW synchronous_commit"))).scalar() == "on"


async def test_a_claim_inside_the_callers_transaction_leaves_its_commit_alone(
    session_factory: Factory, db_engine: AsyncEngine, clock: FakeClock, seen: list[Statement]
) -> None:
    await add_photos(session_factory, clock, 2)
    seen.clear()
    async with session_factory() as session:
        await session.execute(text("SELECT 1"))  # the caller's transaction is open: joined
        claimed = await Claims(session, photo_spec(), worker_id="w").claim(2)

    assert len(claimed) == 2
    assert not any(ASYNCHRONOUS in s.sql for s in seen)
