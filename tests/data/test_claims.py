"""The claim protocol on SQLite and PostgreSQL: what is claimed, in what order, and fencing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from myapp.data.claiming import status_claim_spec
from myapp.data.models import ProcessingStatus, ProductPhoto, StagingBatch
from myapp.processing.claims import ERROR_TEXT_LIMIT, Claims, FailOutcome
from tests.data.claim_helpers import LEASE, Worker, add_photos, load, photo_spec
from tests.fixtures.clock import FakeClock
from tests.fixtures.statements import Statement, recorded_statements

Factory = async_sessionmaker[AsyncSession]


async def test_claim_takes_the_oldest_rows_up_to_the_limit(
    session_factory: Factory, clock: FakeClock
) -> None:
    ids = await add_photos(session_factory, clock, 5)
    first, second = Worker(session_factory, clock, "w1"), Worker(session_factory, clock, "w2")

    claimed = await first.claim(3)

    assert [row.id for row in claimed] == ids[:3]
    for row in claimed:  # detached rows, every attribute loaded
        assert row.status is ProcessingStatus.STARTED
        assert row.locked_by == "w1"
        assert row.locked_until == clock.now + LEASE
        assert row.attempts == 1
        assert row.url.startswith("https://images.test/")
    assert [row.id for row in await second.claim(10)] == ids[3:]
    assert await second.claim(10) == []


async def test_claim_returns_rows_in_the_specs_order_descending(
    session_factory: Factory, clock: FakeClock
) -> None:
    ids = await add_photos(session_factory, clock, 4)
    worker = Worker(
        session_factory, clock, "w1", photo_spec(order_by=(ProductPhoto.created_at.desc(),))
    )

    assert [row.id for row in await worker.claim(3)] == [ids[3], ids[2], ids[1]]


async def test_finished_deleted_and_not_yet_due_rows_are_never_claimed(
    session_factory: Factory, clock: FakeClock
) -> None:
    for status in (ProcessingStatus.COMPLETED, ProcessingStatus.FAILED, ProcessingStatus.CANCELLED):
        await add_photos(session_factory, clock, 1, status=status)
    await add_photos(session_factory, clock, 1, deleted_at=clock.now)
    [later] = await add_photos(
        session_factory, clock, 1, next_attempt_at=clock.now + timedelta(minutes=1)
    )
    worker = Worker(session_factory, clock, "w1")

    assert await worker.claim(10) == []
    clock.advance(timedelta(minutes=1))
    assert [row.id for row in await worker.claim(10)] == [later]


async def test_extra_filters_and_order_of_a_handler_spec(
    session_factory: Factory, clock: FakeClock
) -> None:
    async with session_factory() as session:
        batches = [
            StagingBatch(
                batch_processor_name=name,
                file_hash=f"h{index}",
                started_at=clock.now - timedelta(minutes=index),
            )
            for index, name in enumerate(["Shein", "Other", "Shein", "Shein"])
        ]
        session.add_all(batches)
        await session.commit()
    spec = status_claim_spec(
        StagingBatch,
        order_by=(StagingBatch.started_at,),
        where=(StagingBatch.batch_processor_name == "Shein",),
    )
    async with session_factory() as session:
        claimed = await Claims(session, spec, worker_id="w1", clock=clock).claim(10)

    # Oldest started_at first: batches 3, 2, 0 ("Other" is not this handler's).
    assert [row.file_hash for row in claimed] == ["h3", "h2", "h0"]


async def test_an_expired_lease_is_reclaimed_and_the_old_owner_loses_every_write(
    session_factory: Factory, clock: FakeClock
) -> None:
    [id] = await add_photos(session_factory, clock, 1)
    old, new = Worker(session_factory, clock, "old"), Worker(session_factory, clock, "new")
    await old.claim(1)

    clock.advance(LEASE - timedelta(seconds=1))
    assert await new.claim(1) == []
    clock.advance(timedelta(seconds=2))
    [row] = await new.claim(1)
    assert (row.locked_by, row.attempts) == ("new", 2)

    assert await old.complete([id]) == set()
    assert await old.fail(id, ValueError("late")) is FailOutcome.NOT_OWNER
    assert await old.extend([id]) == set()
    assert await old.release([id]) == set()
    after = await load(session_factory, id)
    assert (after.status, after.locked_by, after.attempts, after.last_error) == (
        ProcessingStatus.STARTED,
        "new",
        2,
        None,
    )

    assert await new.complete([id], vectorized_at=clock.now) == {id}
    done = await load(session_factory, id)
    assert (done.status, done.locked_by, done.locked_until) == (
        ProcessingStatus.COMPLETED,
        None,
        None,
    )
    assert done.vectorized_at == clock.now


async def test_extend_keeps_a_long_item_from_being_reclaimed(
    session_factory: Factory, clock: FakeClock
) -> None:
    [id] = await add_photos(session_factory, clock, 1)
    owner, other = Worker(session_factory, clock, "owner"), Worker(session_factory, clock, "other")
    await owner.claim(1)

    clock.advance(timedelta(minutes=4))
    assert await owner.extend([id]) == {id}
    clock.advance(timedelta(minutes=4))  # past the first lease, inside the renewed one

    assert await other.claim(1) == []
    assert (await load(session_factory, id)).locked_until == clock.now + timedelta(minutes=1)


async def test_failures_back_off_exponentially_then_dead_letter(
    session_factory: Factory, clock: FakeClock
) -> None:
    [id] = await add_photos(session_factory, clock, 1, max_attempts=3)
    worker = Worker(session_factory, clock, "w1")

    for attempt, backoff in [(1, timedelta(seconds=10)), (2, timedelta(seconds=20))]:
        [row] = await worker.claim(1)
        assert row.attempts == attempt
        assert await worker.fail(id, ValueError(f"boom {attempt}")) is FailOutcome.RETRY_SCHEDULED
        queued = await load(session_factory, id)
        assert queued.status is ProcessingStatus.QUEUED
        assert queued.next_attempt_at == clock.now + backoff
        assert queued.last_error == f"ValueError: boom {attempt}"
        assert queued.locked_by is None
        clock.advance(backoff - timedelta(seconds=1))
        assert await worker.claim(1) == []
        clock.advance(timedelta(seconds=1))

    await worker.claim(1)
    assert await worker.fail(id, ValueError("boom 3")) is FailOutcome.DEAD_LETTERED
    dead = await load(session_factory, id)
    assert (dead.status, dead.attempts, dead.last_error) == (
        ProcessingStatus.FAILED,
        3,
        "ValueError: boom 3",
    )
    clock.advance(timedelta(days=1))
    assert await worker.claim(1) == []


async def test_a_permanent_failure_dead_letters_at_once(
    session_factory: Factory, clock: FakeClock
) -> None:
    [id] = await add_photos(session_factory, clock, 1)
    worker = Worker(session_factory, clock, "w1")
    await worker.claim(1)

    assert await worker.fail(id, "404 Not Found", permanent=True) is FailOutcome.DEAD_LETTERED

    dead = await load(session_factory, id)
    assert (dead.status, dead.attempts, dead.last_error) == (
        ProcessingStatus.FAILED,
        1,
        "404 Not Found",
    )


async def test_stored_error_text_is_truncated(session_factory: Factory, clock: FakeClock) -> None:
    [id] = await add_photos(session_factory, clock, 1)
    worker = Worker(session_factory, clock, "w1")
    await worker.claim(1)

    await worker.fail(id, RuntimeError("x" * 10 * ERROR_TEXT_LIMIT))

    stored = (await load(session_factory, id)).last_error
    assert stored is not None
    assert len(stored) == ERROR_TEXT_LIMIT
    assert stored.startswith("RuntimeError: xxx")


async def test_a_lease_expiring_on_the_last_attempt_dead_letters_instead_of_running_again(
    session_factory: Factory, clock: FakeClock
) -> None:
    [id] = await add_photos(session_factory, clock, 1, max_attempts=1)
    clock.advance(timedelta(seconds=1))
    [other] = await add_photos(session_factory, clock, 1)
    crashed, survivor = (
        Worker(session_factory, clock, "crashed"),
        Worker(session_factory, clock, "survivor"),
    )
    assert [row.id for row in await crashed.claim(1)] == [id]

    clock.advance(LEASE + timedelta(seconds=1))
    claimed = await survivor.claim(5)

    assert [row.id for row in claimed] == [other]
    dead = await load(session_factory, id)
    assert (dead.status, dead.attempts, dead.locked_by) == (ProcessingStatus.FAILED, 1, None)
    assert dead.last_error is not None and "attempts exhausted" in dead.last_error


async def test_release_returns_rows_without_charging_an_attempt(
    session_factory: Factory, clock: FakeClock
) -> None:
    ids = await add_photos(session_factory, clock, 2)
    worker = Worker(session_factory, clock, "w1")
    await worker.claim(2)

    assert await worker.release(ids) == set(ids)

    for id in ids:
        released = await load(session_factory, id)
        assert (released.status, released.attempts, released.locked_by) == (
            ProcessingStatus.QUEUED,
            0,
            None,
        )
    assert [row.attempts for row in await worker.claim(2)] == [1, 1]


@pytest.fixture
def statements(db_engine: AsyncEngine) -> Iterator[list[Statement]]:
    with recorded_statements(db_engine) as seen:
        yield seen


async def test_claim_and_batch_complete_are_one_statement_each(
    session_factory: Factory, clock: FakeClock, statements: list[Statement]
) -> None:
    ids = await add_photos(session_factory, clock, 20)
    worker = Worker(session_factory, clock, "w1")

    statements.clear()
    await worker.claim(20)
    assert len(statements) == 1 and statements[0].startswith("UPDATE")

    statements.clear()
    assert await worker.complete(ids) == set(ids)
    assert len(statements) == 1 and statements[0].startswith("UPDATE")
    async with session_factory() as session:
        finished = (await session.execute(select(ProductPhoto.status))).scalars().all()
    assert set(finished) == {ProcessingStatus.COMPLETED}


async def test_complete_only_wins_the_rows_this_worker_holds(
    session_factory: Factory, clock: FakeClock
) -> None:
    ids = await add_photos(session_factory, clock, 4)
    first, second = Worker(session_factory, clock, "w1"), Worker(session_factory, clock, "w2")
    await first.claim(2)
    await second.claim(2)

    assert await first.complete(ids) == set(ids[:2])
    assert {(await load(session_factory, id)).status for id in ids[2:]} == {
        ProcessingStatus.STARTED
    }


async def test_writes_over_many_ids_are_split_into_statements_and_still_fenced(
    session_factory: Factory, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both databases cap bind parameters near 32k; a heartbeat may carry more held ids.
    monkeypatch.setattr("myapp.processing.claims.IDS_PER_STATEMENT", 2)
    ids = await add_photos(session_factory, clock, 5)
    first, second = Worker(session_factory, clock, "w1"), Worker(session_factory, clock, "w2")
    await first.claim(4)
    await second.claim(1)

    assert await first.extend(ids) == set(ids[:4])
    assert await first.complete(ids) == set(ids[:4])
    assert (await load(session_factory, ids[4])).status == ProcessingStatus.STARTED
