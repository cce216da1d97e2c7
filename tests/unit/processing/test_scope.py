"""Scopes with a real AsyncSession (SQLite file, aiosqlite): one session per call, shared within
it, closed on success, error and cancellation, rolled back when not committed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import containers, providers
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from containers.core import CoreContainer
from containers.database import DatabaseContainer
from myapp.processing import (
    HandlerRegistration,
    Scope,
    ScopeError,
    WorkItemProcessingEngine,
    scoped,
)
from tests.unit.support import Item, items_for

DEADLOCK_GUARD_S = 20


class NotesRepository:
    """A collaborator built on the scoped session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, body: str) -> None:
        await self.session.execute(text("INSERT INTO notes (body) VALUES (:body)"), {"body": body})


@dataclass
class Observed:
    """What the handlers saw, across every instance."""

    sessions: dict[int, AsyncSession] = field(default_factory=dict)
    repository_sessions: dict[int, AsyncSession] = field(default_factory=dict)
    both_running: asyncio.Event = field(default_factory=asyncio.Event)
    running: int = 0
    mode: str = "commit"  # commit | no-commit | raise | hang


class NotesHandler:
    observed: Observed  # set per test

    def __init__(self, session: AsyncSession, repository: NotesRepository) -> None:
        self.session = session
        self.repository = repository

    async def fetch_work_items(self, max_items: int) -> Sequence[Item]:
        await self.session.execute(text("SELECT 1"))
        return items_for("notes", 2)

    async def process(self, item: Item) -> None:
        seen = self.observed
        seen.sessions[item.index] = self.session
        seen.repository_sessions[item.index] = self.repository.session
        await self.session.execute(text("SELECT count(*) FROM notes"))
        seen.running += 1
        if seen.running == 2:
            seen.both_running.set()
        await seen.both_running.wait()  # the two calls overlap
        # Written after the barrier: SQLite has one writer; the other call waits for its lock.
        await self.repository.add(f"note {item.index}")
        if seen.mode == "commit":
            await self.session.commit()
        elif seen.mode == "raise":
            raise RuntimeError("process failed after writing")
        elif seen.mode == "hang":
            await asyncio.Event().wait()


class NotesContainer(containers.DeclarativeContainer):
    config = providers.Configuration()
    core = providers.Container(CoreContainer, config=config)
    database = providers.Container(DatabaseContainer, config=config, core=core)
    repository = providers.Factory(NotesRepository, session=database.session)
    handler = providers.Factory(NotesHandler, session=database.session, repository=repository)


@pytest.fixture
async def container(tmp_path: Path) -> AsyncIterator[NotesContainer]:
    container = NotesContainer()
    container.config.from_dict(
        {"ConnectionStrings": {"Database": f"sqlite+aiosqlite:///{tmp_path / 'scope.db'}"}}
    )
    engine = container.database.engine()
    async with engine.begin() as connection:
        await connection.execute(
            text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        )
    try:
        yield container
    finally:
        await engine.dispose()


async def notes(container: NotesContainer) -> list[str]:
    async with container.database.session_factory()() as session:
        rows = await session.execute(text("SELECT body FROM notes ORDER BY body"))
        return [row[0] for row in rows]


def checked_out(container: NotesContainer) -> int:
    pool: Any = container.database.engine().pool
    return int(pool.checkedout())


async def run_notes_cycle(container: NotesContainer, mode: str, **engine_options: Any) -> Observed:
    observed = Observed(mode=mode)
    NotesHandler.observed = observed
    engine = WorkItemProcessingEngine(
        [HandlerRegistration(container.handler, name="Notes")], max_concurrency=2, **engine_options
    )
    async with asyncio.timeout(DEADLOCK_GUARD_S):
        report = await engine.run_cycle()
    assert report.handlers["Notes"].fetch_error is None
    return observed


async def test_concurrent_calls_get_different_sessions_shared_with_their_collaborators(
    container: NotesContainer,
) -> None:
    observed = await run_notes_cycle(container, "commit")

    assert observed.sessions[0] is not observed.sessions[1]
    assert observed.repository_sessions[0] is observed.sessions[0]
    assert observed.repository_sessions[1] is observed.sessions[1]
    assert await notes(container) == ["note 0", "note 1"]
    assert checked_out(container) == 0


async def test_uncommitted_work_is_rolled_back_and_the_session_closed(
    container: NotesContainer,
) -> None:
    observed = await run_notes_cycle(container, "no-commit")

    assert await notes(container) == []
    assert not any(session.in_transaction() for session in observed.sessions.values())
    assert checked_out(container) == 0


async def test_the_session_is_closed_and_rolled_back_after_an_exception(
    container: NotesContainer,
) -> None:
    observed = await run_notes_cycle(container, "raise")

    assert len(observed.sessions) == 2
    assert await notes(container) == []
    assert not any(session.in_transaction() for session in observed.sessions.values())
    assert checked_out(container) == 0


async def test_the_session_is_closed_and_rolled_back_after_cancellation(
    container: NotesContainer,
) -> None:
    observed = await run_notes_cycle(container, "hang", item_timeout=timedelta(milliseconds=100))

    assert len(observed.sessions) == 2
    assert await notes(container) == []
    assert not any(session.in_transaction() for session in observed.sessions.values())
    assert checked_out(container) == 0


async def test_a_cancelled_task_closes_its_scope(container: NotesContainer) -> None:
    inside = asyncio.Event()
    sessions: list[AsyncSession] = []

    async def unit_of_work() -> None:
        async with Scope():
            handler = container.handler()
            sessions.append(handler.session)
            await handler.repository.add("never committed")
            inside.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(unit_of_work())
    await inside.wait()
    assert checked_out(container) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert checked_out(container) == 0
    assert not sessions[0].in_transaction()
    assert await notes(container) == []


async def test_one_scope_shares_a_session_and_two_scopes_do_not(container: NotesContainer) -> None:
    async with Scope():
        first = container.database.session()
        assert container.database.session() is first
        assert container.repository().session is first
    async with Scope():
        second = container.database.session()
    assert second is not first


def test_resolving_a_scoped_provider_outside_a_scope_raises_scope_error(
    container: NotesContainer,
) -> None:
    with pytest.raises(ScopeError, match="outside"):
        container.database.session()
    with pytest.raises(ScopeError):
        container.handler()


async def test_closes_run_last_created_first_and_all_run_when_one_fails() -> None:
    closed: list[str] = []

    async def close(name: str) -> None:
        closed.append(name)
        if name == "second":
            raise RuntimeError("close failed")

    def maker(name: str) -> Any:
        return lambda: name

    factories = [maker(name) for name in ("first", "second", "third")]  # kept: keyed by id
    with pytest.raises(RuntimeError, match="close failed"):
        async with Scope():
            for factory in factories:
                scoped(factory, close=close)

    assert closed == ["third", "second", "first"]


async def test_a_scope_whose_closers_have_nothing_to_close_creates_no_task() -> None:
    loop = asyncio.get_running_loop()
    created: list[object] = []

    def counting(loop: asyncio.AbstractEventLoop, coro: Any) -> asyncio.Task[Any]:
        created.append(coro)
        return asyncio.Task(coro, loop=loop)

    loop.set_task_factory(counting)
    untouched, touched = (lambda: "untouched"), (lambda: "touched")
    try:
        async with Scope():
            scoped(untouched, close=lambda _: None)
        assert created == []
        async with Scope():
            scoped(touched, close=lambda _: asyncio.sleep(0))
        assert len(created) == 1  # the shielded close
    finally:
        loop.set_task_factory(None)
