"""The probe answers what a claim would find: for any mix of row states, "anything claimable?"
is yes exactly when a claim made at the same moment takes a row."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, text

from myapp.data.claimable_probe import NOW, probe_statement
from myapp.data.database import create_engine, create_session_factory
from myapp.data.models import ProductPhoto
from myapp.processing.claims import Claims
from tests.data.claim_helpers import photo_spec
from tests.fixtures.clock import FakeClock

MINE = "mine"
OFFSETS = st.sampled_from([None, timedelta(minutes=-1), timedelta(minutes=1)])
rows = st.lists(
    st.fixed_dictionaries(
        {
            "status": st.sampled_from(["Queued", "Started", "Completed", "Failed"]),
            "locked_until": OFFSETS,
            "next_attempt_at": OFFSETS,
            "deleted": st.booleans(),
            "caption": st.sampled_from([MINE, "theirs"]),
        }
    ),
    max_size=4,
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(rows=rows, filtered=st.booleans())
def test_probe_says_yes_exactly_when_a_claim_takes_a_row(
    db_url: str, rows: list[dict[str, Any]], filtered: bool
) -> None:
    asyncio.run(_probe_and_claim(db_url, rows, filtered))


async def _probe_and_claim(db_url: str, rows: list[dict[str, Any]], filtered: bool) -> None:
    clock = FakeClock()
    spec = photo_spec(where=(ProductPhoto.caption == MINE,) if filtered else ())
    engine = create_engine(db_url)
    factory = create_session_factory(engine)
    try:
        async with factory() as session:
            await session.execute(delete(ProductPhoto))
            if rows:
                await session.execute(insert(ProductPhoto), [_photo(row, clock) for row in rows])
            await session.commit()
        async with engine.connect() as connection:
            answer = (await connection.execute(probe_statement({"p": spec}), {NOW: clock()})).one()
        async with factory() as session:
            claimed = await Claims(session, spec, worker_id="w", clock=clock).claim(10)
        assert answer == (bool(claimed),)
    finally:
        await engine.dispose()


def _photo(row: dict[str, Any], clock: FakeClock) -> dict[str, Any]:
    def at(offset: timedelta | None) -> Any:
        return None if offset is None else clock.now + offset

    return {
        "id": uuid.uuid4(),
        "url": "https://images.test/p.jpg",
        "status": row["status"],
        "caption": row["caption"],
        "locked_until": at(row["locked_until"]),
        "next_attempt_at": at(row["next_attempt_at"]),
        "deleted_at": clock.now if row["deleted"] else None,
        "created_at": clock.now,
        "updated_at": clock.now,
        "attempts": 1,  # below max_attempts: a claim takes the row rather than dead-letter it
    }


def test_one_statement_answers_for_every_spec(db_url: str) -> None:
    async def check() -> None:
        clock = FakeClock()
        engine = create_engine(db_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(delete(ProductPhoto))
                await connection.execute(
                    insert(ProductPhoto),
                    [{"id": uuid.uuid4(), "url": "u", "status": "Queued", "caption": MINE}],
                )
            specs = {
                "mine": photo_spec(where=(ProductPhoto.caption == MINE,)),
                "theirs": photo_spec(where=(ProductPhoto.caption == "theirs",)),
                "all": photo_spec(),
            }
            async with engine.connect() as connection:
                answer = (await connection.execute(probe_statement(specs), {NOW: clock()})).one()
            assert answer._asdict() == {"mine": True, "theirs": False, "all": True}
        finally:
            await engine.dispose()

    asyncio.run(check())


def test_on_postgresql_the_probe_uses_the_partial_claim_index(postgres_session_url: str) -> None:
    async def plan() -> str:
        engine = create_engine(postgres_session_url)
        try:
            statement = probe_statement({"p": photo_spec()}).params({NOW: FakeClock()()})
            sql = statement.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})
            async with engine.connect() as connection:
                # An empty table has no statistics: price the scans as for a big one.
                await connection.execute(text("SET LOCAL enable_seqscan = off"))
                result = await connection.exec_driver_sql(f"EXPLAIN {sql}")
                return "\n".join(line for (line,) in result.all())
        finally:
            await engine.dispose()

    assert "ix_product_photos_claimable" in asyncio.run(plan())
