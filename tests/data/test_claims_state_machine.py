"""Hypothesis drives several workers and a fake clock through the claim protocol on SQLite.

The model only knows what the workers were told (claims returned, writes won), so it checks the
database's answers against the protocol:
- no row is ever held by two live leases (a lease a worker was granted and has not seen end);
- attempts never exceed max_attempts;
- completed rows are never claimed again;
- complete/extend/release win exactly the rows the caller still holds, fail reports NOT_OWNER
  otherwise.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import select

from myapp.data.database import create_engine, create_session_factory
from myapp.data.models import ProcessingStatus, ProductPhoto
from myapp.processing.claims import FailOutcome
from tests.data.claim_helpers import LEASE, Worker, add_photos
from tests.fixtures.clock import FakeClock

ROWS = 3
MAX_ATTEMPTS = 2
WORKERS = ("w1", "w2", "w3")
row_indexes = st.lists(st.integers(0, ROWS - 1), min_size=1, max_size=3, unique=True)
workers = st.sampled_from(WORKERS)


class ClaimProtocolMachine(RuleBasedStateMachine):
    template: Path
    directory: Path

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        path = self.directory / f"{uuid.uuid4().hex}.db"
        shutil.copyfile(self.template, path)
        self.engine = create_engine(f"sqlite+aiosqlite:///{path}")
        factory = create_session_factory(self.engine)
        self.clock = FakeClock()
        self.ids = self.run(add_photos(factory, self.clock, ROWS, max_attempts=MAX_ATTEMPTS))
        self.workers = {name: Worker(factory, self.clock, name) for name in WORKERS}
        self.factory = factory
        # What each worker believes it holds: row id -> lease end it was granted.
        self.leases: dict[str, dict[uuid.UUID, datetime]] = {name: {} for name in WORKERS}
        self.holder: dict[uuid.UUID, str] = {}  # the last worker granted each row
        self.completed: set[uuid.UUID] = set()

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        self.run(self.engine.dispose())
        self.loop.close()

    def _forget(self, ids: set[uuid.UUID]) -> None:
        for id in ids:
            self.holder.pop(id, None)

    def _reconcile_dead_letters(self) -> None:
        # A claim may dead-letter exhausted rows without returning them.
        statuses = self._statuses()
        self._forget({id for id in self.holder if statuses[id] is not ProcessingStatus.STARTED})

    def _statuses(self) -> dict[uuid.UUID, ProcessingStatus]:
        async def load() -> dict[uuid.UUID, ProcessingStatus]:
            async with self.factory() as session:
                rows = await session.execute(select(ProductPhoto.id, ProductPhoto.status))
                return {id: status for id, status in rows.all()}

        return dict(self.run(load()))

    @rule(worker=workers, limit=st.integers(1, 3))
    def claim(self, worker: str, limit: int) -> None:
        rows = self.run(self.workers[worker].claim(limit))
        now = self.clock.now
        for row in rows:
            assert row.id not in self.completed, "a completed row was claimed again"
            for other, leases in self.leases.items():
                if other != worker and row.id in leases:
                    assert leases[row.id] <= now, f"{row.id} granted while {other} holds it"
            assert row.attempts <= MAX_ATTEMPTS
            self.leases[worker][row.id] = now + LEASE
            self.holder[row.id] = worker
        self._reconcile_dead_letters()

    @rule(worker=workers, indexes=row_indexes)
    def complete(self, worker: str, indexes: list[int]) -> None:
        ids = [self.ids[index] for index in indexes]
        expected = {id for id in ids if self.holder.get(id) == worker}
        won = self.run(self.workers[worker].complete(ids))
        assert won == expected
        self.completed |= won
        self._forget(won)
        for id in ids:
            self.leases[worker].pop(id, None)

    @rule(worker=workers, index=st.integers(0, ROWS - 1), permanent=st.booleans())
    def fail(self, worker: str, index: int, permanent: bool) -> None:
        id = self.ids[index]
        held = self.holder.get(id) == worker
        outcome = self.run(self.workers[worker].fail(id, ValueError("boom"), permanent=permanent))
        if not held:
            assert outcome is FailOutcome.NOT_OWNER
        else:
            assert outcome is not FailOutcome.NOT_OWNER
            if permanent:
                assert outcome is FailOutcome.DEAD_LETTERED
            self._forget({id})
        self.leases[worker].pop(id, None)

    @rule(worker=workers, indexes=row_indexes)
    def extend(self, worker: str, indexes: list[int]) -> None:
        ids = [self.ids[index] for index in indexes]
        expected = {id for id in ids if self.holder.get(id) == worker}
        won = self.run(self.workers[worker].extend(ids))
        assert won == expected
        for id in ids:
            if id in won:
                self.leases[worker][id] = self.clock.now + LEASE
            else:
                self.leases[worker].pop(id, None)

    @rule(worker=workers, indexes=row_indexes)
    def release(self, worker: str, indexes: list[int]) -> None:
        ids = [self.ids[index] for index in indexes]
        expected = {id for id in ids if self.holder.get(id) == worker}
        won = self.run(self.workers[worker].release(ids))
        assert won == expected
        self._forget(won)
        for id in ids:
            self.leases[worker].pop(id, None)

    @rule(seconds=st.sampled_from([10, 240, 301, 600]))
    def advance_clock(self, seconds: int) -> None:
        self.clock.advance(timedelta(seconds=seconds))

    @invariant()
    def no_row_has_two_live_leases(self) -> None:
        now = self.clock.now
        for id in self.ids:
            live = [w for w, leases in self.leases.items() if leases.get(id, now) > now]
            assert len(live) <= 1, f"{id} is held by {live}"

    @invariant()
    def attempts_stay_within_max_and_completed_rows_stay_completed(self) -> None:
        async def load() -> list[tuple[uuid.UUID, ProcessingStatus, int, int]]:
            async with self.factory() as session:
                rows = await session.execute(
                    select(
                        ProductPhoto.id,
                        ProductPhoto.status,
                        ProductPhoto.attempts,
                        ProductPhoto.max_attempts,
                    )
                )
                return [(r[0], r[1], r[2], r[3]) for r in rows.all()]

        for id, status, attempts, max_attempts in self.run(load()):
            assert 0 <= attempts <= max_attempts
            if id in self.completed:
                assert status is ProcessingStatus.COMPLETED


def test_claim_protocol_state_machine(sqlite_template_path: Path, tmp_path: Path) -> None:
    machine = type(
        "Machine",
        (ClaimProtocolMachine,),
        {"template": sqlite_template_path, "directory": tmp_path},
    )
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=30,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
