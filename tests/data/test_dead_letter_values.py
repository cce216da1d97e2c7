"""ClaimSpec.dead_letter_values: written whenever a row is dead-lettered, by `fail` (permanent or
out of attempts) and by `claim` (attempts used up), and never otherwise."""

from __future__ import annotations

from datetime import timedelta, timezone
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from myapp.data.models import ProcessingStatus
from myapp.processing.claims import EXHAUSTED_ERROR, FailOutcome
from tests.data.claim_helpers import LEASE, Worker, add_photos, load, photo_spec
from tests.fixtures.clock import FakeClock

Factory = async_sessionmaker[AsyncSession]
SECRET = "a secret the row no longer needs"
# A value of each kind: erased, a marker, and a time given in another zone (it must be stored as
# the same instant, as every UtcDateTime write is).
DEAD_LETTER_VALUES: dict[str, Any] = {
    "caption": None,
    "embedding_model": "dead-lettered",
    "vectorized_at": FakeClock().now.astimezone(timezone(timedelta(hours=2))),
}
KEPT = {"caption": SECRET, "embedding_model": None, "vectorized_at": None}


def worker(factory: Factory, clock: FakeClock, name: str = "w1") -> Worker:
    return Worker(factory, clock, name, photo_spec(dead_letter_values=DEAD_LETTER_VALUES))


async def values_of(factory: Factory, id: Any) -> dict[str, Any]:
    row = await load(factory, id)
    return {key: getattr(row, key) for key in DEAD_LETTER_VALUES}


@pytest.mark.parametrize(
    ("max_attempts", "permanent"), [(5, True), (1, False)], ids=["permanent", "out-of-attempts"]
)
async def test_fail_writes_them_when_it_dead_letters(
    session_factory: Factory, clock: FakeClock, max_attempts: int, permanent: bool
) -> None:
    [id] = await add_photos(session_factory, clock, 1, caption=SECRET, max_attempts=max_attempts)
    w1 = worker(session_factory, clock)
    await w1.claim(1)

    assert await w1.fail(id, "broken", permanent=permanent) is FailOutcome.DEAD_LETTERED

    assert (await load(session_factory, id)).status is ProcessingStatus.FAILED
    assert await values_of(session_factory, id) == DEAD_LETTER_VALUES


async def test_a_scheduled_retry_and_a_completion_leave_them_alone(
    session_factory: Factory, clock: FakeClock
) -> None:
    retried, completed = await add_photos(session_factory, clock, 2, caption=SECRET)
    w1 = worker(session_factory, clock)
    await w1.claim(2)

    assert await w1.fail(retried, TimeoutError()) is FailOutcome.RETRY_SCHEDULED
    assert await w1.complete([completed]) == {completed}

    assert await values_of(session_factory, retried) == KEPT
    assert await values_of(session_factory, completed) == KEPT


async def test_claim_writes_them_on_the_rows_it_dead_letters_only(
    session_factory: Factory, clock: FakeClock
) -> None:
    [exhausted] = await add_photos(session_factory, clock, 1, caption=SECRET, max_attempts=1)
    clock.advance(timedelta(seconds=1))
    [healthy] = await add_photos(session_factory, clock, 1, caption=SECRET)
    await worker(session_factory, clock, "crashed").claim(2)
    clock.advance(LEASE + timedelta(seconds=1))  # the crashed worker's leases ran out

    [reclaimed] = await worker(session_factory, clock, "survivor").claim(2)

    assert reclaimed.id == healthy and reclaimed.caption == SECRET
    dead = await load(session_factory, exhausted)
    assert (dead.status, dead.last_error) == (ProcessingStatus.FAILED, EXHAUSTED_ERROR)
    assert await values_of(session_factory, exhausted) == DEAD_LETTER_VALUES
    assert await values_of(session_factory, healthy) == KEPT


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"no_such_column": None}, "ProductPhoto has no column 'no_such_column'"),
        ({"locked_by": None}, "may not set 'locked_by': the claim protocol does"),
        ({"status": ProcessingStatus.CANCELLED}, "may not set 'status'"),
    ],
)
def test_only_the_tables_own_columns_can_be_given(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        photo_spec(dead_letter_values=values)
