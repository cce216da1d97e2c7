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

from myapp.clock import Clock, utc_now
from myapp.data.database import normalize_url
from myapp.processing.claims import ClaimSpec

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
    url: str, specs: Mapping[str, ClaimSpec[Any]], on_wake: OnWake, *, clock: Clock = utc_now
) -> WakeSource:
    """The wake-up source for the database at `url`: the probing, listening ClaimableWatcher
    over `specs` (name -> claim spec) on PostgreSQL; the `data_version` watcher on SQLite."""
    # Imported here: both modules build on WakeSource above.
    from myapp.data.claimable_watcher import ClaimableWatcher
    from myapp.data.sqlite_changes import SqliteChangeWatcher

    if normalize_url(url).get_backend_name() == "postgresql":
        return ClaimableWatcher(url, specs, on_wake, clock=clock)
    return SqliteChangeWatcher(url, on_wake)
