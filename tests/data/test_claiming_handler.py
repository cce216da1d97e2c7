"""ClaimingHandler: the engine-facing lifecycle over claims, as a handler subclass uses it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from myapp.data.claiming import status_claim_spec
from myapp.data.models import ProcessingStatus, StagingBatch
from myapp.processing import (
    ClaimingHandler,
    ClaimLifecycle,
    ClaimSpec,
    PermanentError,
    WorkItemHandler,
)
from tests.fixtures.clock import FakeClock

Factory = async_sessionmaker[AsyncSession]


class BatchHandler(ClaimingHandler[StagingBatch]):
    def claim_spec(self) -> ClaimSpec[StagingBatch]:
        return status_claim_spec(
            StagingBatch,
            order_by=(StagingBatch.started_at,),
            where=(StagingBatch.batch_processor_name == "Shein",),
            error_column=StagingBatch.error_message,
        )

    def completion_values(self, now: datetime) -> Mapping[str, Any]:
        return {"completed_at": now}

    async def process(self, item: StagingBatch) -> None:
        return None


async def _add_batches(factory: Factory, clock: FakeClock, count: int) -> None:
    async with factory() as session:
        session.add_all(
            StagingBatch(
                batch_processor_name="Shein",
                file_hash=f"hash-{index}",
                started_at=clock.now + timedelta(seconds=index),
            )
            for index in range(count)
        )
        await session.commit()


async def _call(factory: Factory, clock: FakeClock, method: str, *args: Any) -> Any:
    """A fresh session and a fresh handler per call, as the engine does."""
    async with factory() as session:
        handler = BatchHandler(session=session, worker_id="w1", clock=clock, lease_clock=clock)
        return await getattr(handler, method)(*args)


async def _reload(factory: Factory, batch: StagingBatch) -> StagingBatch:
    async with factory() as session:
        return await session.get_one(StagingBatch, batch.id)


async def test_handler_satisfies_the_engine_protocols(session_factory: Factory) -> None:
    async with session_factory() as session:
        handler = BatchHandler(session=session, worker_id="w1", clock=FakeClock())
    assert isinstance(handler, WorkItemHandler)
    assert isinstance(handler, ClaimLifecycle)


async def test_fetch_complete_fail_extend_release(
    session_factory: Factory, clock: FakeClock
) -> None:
    await _add_batches(session_factory, clock, 4)
    done, permanent, transient, unstarted = await _call(
        session_factory, clock, "fetch_work_items", 10
    )

    clock.advance(timedelta(minutes=1))
    await _call(session_factory, clock, "extend", [done, permanent, transient, unstarted])
    await _call(session_factory, clock, "complete", [done])
    await _call(session_factory, clock, "fail", permanent, PermanentError("HTTP 404"))
    await _call(session_factory, clock, "fail", transient, TimeoutError())
    await _call(session_factory, clock, "release", [unstarted])

    finished = await _reload(session_factory, done)
    assert (finished.status, finished.completed_at) == (ProcessingStatus.COMPLETED, clock.now)
    dead = await _reload(session_factory, permanent)
    assert dead.status is ProcessingStatus.FAILED
    assert dead.last_error == dead.error_message == "PermanentError: HTTP 404"
    retried = await _reload(session_factory, transient)
    assert (retried.status, retried.last_error) == (ProcessingStatus.QUEUED, "TimeoutError")
    assert retried.next_attempt_at is not None and retried.next_attempt_at > clock.now
    released = await _reload(session_factory, unstarted)
    assert (released.status, released.attempts) == (ProcessingStatus.QUEUED, 0)
