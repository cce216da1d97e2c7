"""The test handler: claims `multiworker_rows`, journals every process call.

Its section `BackgroundProcessing:MultiWorker` (environment `BackgroundProcessing__MultiWorker__*`)
sets the lease, the retry backoff, a sleep per item (`SleepPerItem`, plus a random part up to
`SleepJitter`), and the journals: `Journal` (the `process_calls` table; the benchmark's no-op
run turns it off) and `JournalFile` (this worker's journal file, see journal.py).

`MultiWorkerBatchHandler` is the same work through the batch protocol (`process_batch`), under
its own name and section `BackgroundProcessing:MultiWorkerBatch`, off unless `Enabled` is true
(the benchmark turns it on and the per-item one off).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from myapp.processing import BatchResult, ClaimingHandler, ClaimSpec, HandlerOptions
from myapp.processing.timespan import NonNegativeTimeSpan, PositiveTimeSpan
from tests.multiworker.journal import append_event
from tests.multiworker.models import ProcessCall, WorkRow, work_row_spec

HANDLER_NAME = "MultiWorker"
BATCH_HANDLER_NAME = "MultiWorkerBatch"
POISON_MESSAGE = "poison row: this item always fails"
NO_CALL_ID = uuid.UUID(int=0)


class PoisonError(RuntimeError):
    pass


class MultiWorkerOptions(HandlerOptions):
    lease: PositiveTimeSpan = timedelta(seconds=30)
    retry_base: PositiveTimeSpan = timedelta(milliseconds=100)
    sleep_per_item: NonNegativeTimeSpan = timedelta(0)
    sleep_jitter: NonNegativeTimeSpan = timedelta(0)
    journal: bool = True
    journal_file: Path | None = None


class MultiWorkerHandler(ClaimingHandler[WorkRow]):
    options_model: ClassVar[type[HandlerOptions]] = MultiWorkerOptions

    def __init__(
        self,
        *,
        session: AsyncSession,
        worker_id: str,
        clock: Callable[[], datetime],
        options: MultiWorkerOptions,
    ) -> None:
        super().__init__(session=session, worker_id=worker_id, clock=clock)
        self._options = options

    def claim_spec(self) -> ClaimSpec[WorkRow]:
        return work_row_spec(
            self._options.lease.total_seconds(), self._options.retry_base.total_seconds()
        )

    def completion_values(self, now: datetime) -> Mapping[str, Any]:
        return {"completions": WorkRow.completions + 1}

    async def process(self, item: WorkRow) -> None:
        # A call id only when journaling: the benchmark's no-op runs measure the framework.
        journaling = self._options.journal or self._options.journal_file is not None
        call_id = uuid.uuid4() if journaling else NO_CALL_ID
        await self._journal(call_id, item, "start")
        try:
            if sleep := self._sleep_seconds():
                await asyncio.sleep(sleep)
            if item.poison:
                raise PoisonError(POISON_MESSAGE)
        except Exception:
            await self._journal(call_id, item, "error")
            raise
        await self._journal(call_id, item, "finish")

    def _sleep_seconds(self) -> float:
        jitter = self._options.sleep_jitter.total_seconds()
        return self._options.sleep_per_item.total_seconds() + random.uniform(0, jitter)

    async def _journal(self, call_id: uuid.UUID, item: WorkRow, event: str) -> None:
        if self._options.journal_file is not None:
            append_event(self._options.journal_file, self._worker_id, call_id, item.id, event)
        if not self._options.journal:
            return
        await self._session.execute(
            insert(ProcessCall).values(
                call_id=call_id, row_id=item.id, worker_id=self._worker_id, event=event
            )
        )
        await self._session.commit()


class MultiWorkerBatchOptions(MultiWorkerOptions):
    enabled: bool = False


class MultiWorkerBatchHandler(MultiWorkerHandler):
    """The same rows and the same per-item work, in batches: one call, one scope, one slot."""

    options_model: ClassVar[type[HandlerOptions]] = MultiWorkerBatchOptions

    async def process_batch(self, items: Sequence[WorkRow]) -> BatchResult | None:
        failed: dict[uuid.UUID, BaseException] = {}
        for item in items:
            try:
                await self.process(item)
            except PoisonError as error:
                failed[item.id] = error
        return BatchResult(failed) if failed else None
