"""Wake-ups: tell a worker that a row may have become claimable, so it fetches now instead of at
its next poll.

Two sources, one shape: `on_wake(name)` with the name of a claim spec the source was given
(the engine passes its handler names), or `on_wake(None)` for "anything may have changed:
fetch everything" — once whenever a source (re)starts watching, and on SQLite for every change
(SQLite cannot say which table changed). A wake-up is a hint: it may come more than once for
one row, and a fetch after it may find nothing. `on_wake` runs on the event loop and must not
block (set an event).

- PostgreSQL: `ClaimableWatcher` probes "anything claimable?" for each spec every 50 ms on a
  dedicated connection, and LISTENs for `send_wakeup` (myapp.data.claimable_watcher).
- SQLite: `SqliteChangeWatcher` polls `PRAGMA data_version`, which changes when another
  connection commits (myapp.data.sqlite_changes).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Self

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncEngine

from myapp.clock import Clock
from myapp.data.database import normalize_url
from myapp.processing import ClaimingHandler, ClaimSpec, WorkItemProcessingEngine

OnWake = Callable[[str | None], None]


class WakeSource(ABC):
    """Calls `on_wake` from a background task between `start()` and `stop()`; also an async
    context manager. `stop()` leaves no task and no connection behind."""

    def __init__(self, on_wake: OnWake) -> None:
        self._on_wake = on_wake
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=type(self).__name__)
            self._task.add_done_callback(self._report_crash)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])  # never raises the task's error; our own cancel passes

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @abstractmethod
    async def _run(self) -> None:
        """Watch until cancelled, reconnecting as needed; returns only if there is nothing to
        watch."""

    def _wake(self, key: str | None) -> None:
        try:
            self._on_wake(key)
        except Exception:
            logger.exception("The wake-up callback failed for {}", key or "all tables")

    def _report_crash(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (error := task.exception()) is not None:
            logger.opt(exception=error).error("{} stopped: no more wake-ups", type(self).__name__)


def wakeup_source(
    url: str,
    specs: Mapping[str, ClaimSpec[Any]],
    on_wake: OnWake,
    *,
    clock: Clock | None = None,
    wanted: Callable[[], bool] | None = None,
) -> WakeSource:
    """The wake-up source for the database at `url`: the probing, listening ClaimableWatcher
    over `specs` (name -> claim spec) on PostgreSQL, which probes only while `wanted()` (if
    given) says a wake-up would be acted on; the `data_version` watcher on SQLite."""
    # Imported here: both modules build on WakeSource above.
    from myapp.data.claimable_watcher import ClaimableWatcher
    from myapp.data.sqlite_changes import SqliteChangeWatcher

    if normalize_url(url).get_backend_name() == "postgresql":
        return ClaimableWatcher(url, specs, on_wake, clock=clock, wanted=wanted)
    return SqliteChangeWatcher(url, on_wake)


class EngineWakeups:
    """The hosted service that wakes the engine's handlers: a wake-up source over the claim specs
    of its enabled claiming handlers, calling `engine.trigger`. Started after the processing
    service and stopped before it."""

    def __init__(self, url: str, engine: WorkItemProcessingEngine) -> None:
        self._url = url
        self._engine = engine
        self._names = {r.name for r in engine.enabled_registrations}
        self._source: WakeSource | None = None

    async def start(self) -> None:
        specs = await claim_specs(self._engine)
        self._source = wakeup_source(
            self._url, specs, self._on_wake, wanted=self._engine.waiting_for_work
        )
        await self._source.start()

    async def stop(self) -> None:
        if self._source is not None:
            await self._source.stop()

    def _on_wake(self, name: str | None) -> None:
        if name is None or name in self._names:  # another worker's handler is not ours
            self._engine.trigger(name)


async def claim_specs(
    engine: WorkItemProcessingEngine, *, quiet: bool = False
) -> dict[str, ClaimSpec[Any]]:
    """Handler name -> claim spec, for every enabled handler over a claimable table (a handler
    built in a scope of its own, as the engine builds them). A handler that cannot be built is
    left out, with a warning unless `quiet` (another caller tells it)."""
    specs: dict[str, ClaimSpec[Any]] = {}
    for registration in engine.enabled_registrations:
        try:
            async with engine.scope_factory():
                handler = registration.handler_factory()
                if isinstance(handler, ClaimingHandler):
                    specs[registration.name] = handler.claim_spec()
        except Exception as error:  # its fetch will say what is wrong; it is only not woken
            if not quiet:
                logger.warning("Handler {} gets no wake-ups: {}", registration.name, error)
    return specs


async def wake_workers(engine: AsyncEngine, name: str | None = None) -> None:
    """Wake the workers of this database now: `pg_notify` on PostgreSQL; on SQLite, a commit
    that changes nothing but the file's change counter, which its worker watches."""
    if engine.dialect.name == "postgresql":
        from myapp.data.claimable_watcher import send_wakeup

        await send_wakeup(engine, name)
        return
    async with engine.begin() as connection:
        version = (await connection.exec_driver_sql("PRAGMA user_version")).scalar_one()
        await connection.exec_driver_sql(f"PRAGMA user_version = {int(version)}")
