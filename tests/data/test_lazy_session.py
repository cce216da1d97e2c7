"""The scoped session is built on first use: a call that never touches it builds no `Session`
and awaits no close (no task); a call that does gets exactly one, shared within the call,
closed at its end and rolled back when not committed. On SQLite and PostgreSQL, through the
application's own container."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from dependency_injector import containers, providers
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from containers.core import CoreContainer
from containers.database import DatabaseContainer
from myapp.data.database import LazyAsyncSession, close_session
from myapp.data.models import ProductPhoto
from myapp.processing import HandlerRegistration, Scope, WorkItemProcessingEngine
from tests.unit.support import Item, items_for

ITEMS = 20


class Recorder:
    """A collaborator on the scoped session: it proves the call shares one session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session


class SessionHandler:
    """Records the session of every call; `touch` makes process write a row and not commit."""

    sessions: list[tuple[AsyncSession, AsyncSession]]
    touch: bool

    def __init__(self, session: AsyncSession, recorder: Recorder) -> None:
        self.session = session
        self.recorder = recorder

    async def fetch_work_items(self, max_items: int) -> Sequence[Item]:
        return items_for("lazy", ITEMS)

    async def process(self, item: Item) -> None:
        self.sessions.append((self.session, self.recorder.session))
        if self.touch:
            await self.session.execute(insert(ProductPhoto).values(_photo(item.id)))
            await self.recorder.session.execute(select(func.count()).select_from(ProductPhoto))


def _photo(id: uuid.UUID) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"id": id, "url": f"https://images.test/{id}.jpg", "created_at": now, "updated_at": now}


class LazyContainer(containers.DeclarativeContainer):
    config = providers.Configuration()
    core = providers.Container(CoreContainer, config=config)
    database = providers.Container(DatabaseContainer, config=config, core=core)
    recorder = providers.Factory(Recorder, session=database.session)
    handler = providers.Factory(SessionHandler, session=database.session, recorder=recorder)


@pytest.fixture
async def container(db_url: str) -> AsyncIterator[LazyContainer]:
    container = LazyContainer()
    container.config.from_dict({"ConnectionStrings": {"Database": db_url}})
    try:
        yield container
    finally:
        await container.database.engine().dispose()


async def run_cycle(container: LazyContainer, *, touch: bool) -> list[tuple[Any, Any]]:
    SessionHandler.sessions, SessionHandler.touch = [], touch
    engine = WorkItemProcessingEngine(
        [HandlerRegistration(container.handler, name="Lazy", max_items_per_cycle=ITEMS)],
        max_concurrency=4,
    )
    report = await engine.run_cycle()
    assert report.handlers["Lazy"].fetch_error is None
    return SessionHandler.sessions


def checked_out(container: LazyContainer) -> int:
    pool: Any = container.database.engine().pool
    return int(pool.checkedout())


async def photos(container: LazyContainer) -> int:
    async with container.database.session_factory()() as session:
        return int((await session.execute(select(func.count()).select_from(ProductPhoto))).scalar())


async def test_a_call_that_never_touches_its_session_builds_none(
    container: LazyContainer,
) -> None:
    sessions = await run_cycle(container, touch=False)

    assert len(sessions) == ITEMS
    assert all(isinstance(session, LazyAsyncSession) for session, _ in sessions)
    assert not any(session.started for session, _ in sessions)
    assert all(close_session(session) is None for session, _ in sessions)


async def test_a_scope_whose_session_was_never_used_awaits_no_close(
    container: LazyContainer,
) -> None:
    tasks = await tasks_created_by_scope(container, use=False)
    assert tasks == []


async def test_a_scope_whose_session_was_used_closes_it_in_one_shielded_task(
    container: LazyContainer,
) -> None:
    tasks = await tasks_created_by_scope(container, use=True)
    assert len(tasks) == 1  # asyncio.shield around the close
    assert checked_out(container) == 0


async def tasks_created_by_scope(container: LazyContainer, *, use: bool) -> list[str]:
    """The tasks created while a scope ends (the loop's task factory sees every one)."""
    loop = asyncio.get_running_loop()
    created: list[str] = []
    ending = False

    def counting(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any]) -> Any:
        if ending:
            created.append(getattr(coro, "__qualname__", repr(coro)))
        return asyncio.Task(coro, loop=loop)

    scope = Scope()
    await scope.__aenter__()
    session = container.database.session()
    if use:
        await session.execute(select(1))
    loop.set_task_factory(counting)
    try:
        ending = True
        await scope.__aexit__(None, None, None)
    finally:
        loop.set_task_factory(None)
    return created


async def test_a_call_that_uses_its_session_gets_exactly_one_closed_and_rolled_back(
    container: LazyContainer,
) -> None:
    sessions = await run_cycle(container, touch=True)

    assert len(sessions) == ITEMS
    assert all(own is collaborators for own, collaborators in sessions)  # one per call
    assert len({id(own) for own, _ in sessions}) == ITEMS  # not shared between calls
    assert all(own.started for own, _ in sessions)
    assert not any(own.in_transaction() for own, _ in sessions)  # closed
    assert checked_out(container) == 0
    assert await photos(container) == 0  # never committed: rolled back


async def test_a_lazy_session_is_an_async_session_until_and_after_first_use(
    container: LazyContainer,
) -> None:
    factory = container.database.session_factory()
    async with factory() as unused:
        assert isinstance(unused, AsyncSession)
    assert not unused.started  # closing it built nothing

    async with factory() as session:
        assert not session.in_transaction()  # reading its state builds it
        assert session.started
        await session.execute(insert(ProductPhoto).values(_photo(uuid.uuid4())))
        await session.commit()
    assert await photos(container) == 1
    assert checked_out(container) == 0
