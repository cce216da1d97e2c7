"""The workers table's writer: each worker keeps its own row in `myapp_workers` fresh.

`WorkerHeartbeat` is a hosted service. At start it writes the worker's row (id, host, pid,
version, handlers); then, at the engine's lease heartbeat interval, one upsert refreshes
`last_heartbeat_at` (the database's clock), `in_flight` and `handlers`; a graceful stop sets
`stopped_at`. A worker that dies keeps its row and goes stale (myapp.data.worker_liveness). At
most once an hour a worker deletes the rows whose last heartbeat is older than the retention:
workers stopped, or gone, that long ago.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from loguru import logger
from sqlalchemy import delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

import myapp
from myapp.data.models import WorkerRow
from myapp.data.wakeups import claim_specs
from myapp.processing.engine import LEASE_RENEWALS, MIN_HEARTBEAT_SECONDS, WorkItemProcessingEngine
from myapp.processing.sql_time import database_time
from myapp.processing.transient import describe_database_error

DEFAULT_WORKER_RETENTION_DAYS = 7
PRUNE_EVERY = timedelta(hours=1)


def heartbeat_interval(configured: timedelta, leases: Iterable[timedelta]) -> timedelta:
    """As often as the engine renews leases: `HeartbeatInterval`, or a third of the shortest
    lease if that is sooner (never more often than every 50 ms)."""
    renewals = [lease.total_seconds() / LEASE_RENEWALS for lease in leases]
    seconds = min([configured.total_seconds(), *renewals])
    return timedelta(seconds=max(seconds, MIN_HEARTBEAT_SECONDS))


class WorkerHeartbeat:
    """Keeps this worker's row in `myapp_workers` fresh while the host runs."""

    def __init__(
        self,
        database: AsyncEngine,
        engine: WorkItemProcessingEngine,
        worker_id: str,
        *,
        retention: timedelta = timedelta(days=DEFAULT_WORKER_RETENTION_DAYS),
        interval: timedelta | None = None,
    ) -> None:
        self._database = database
        self._engine = engine
        self.worker_id = worker_id
        self.retention = retention
        self.interval = interval
        self._pruned = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.interval is None:
            specs = await claim_specs(self._engine, quiet=True)  # the wake-ups tell failures
            leases = [spec.lease for spec in specs.values()]
            self.interval = heartbeat_interval(self._engine.heartbeat_interval, leases)
        await self.beat()
        self._task = asyncio.create_task(self._beat_every_interval(), name="worker-heartbeat")

    async def stop(self) -> None:
        """Stopped after the processing service (started before it): its row says `stopped_at`
        once every item has finished or been released."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await self._mark_stopped()
        except Exception as error:
            logger.warning(
                "Could not mark worker {} stopped: {}",
                self.worker_id,
                describe_database_error(error),
            )

    async def _beat_every_interval(self) -> None:
        assert self.interval is not None
        seconds = self.interval.total_seconds()
        prune_every = max(1, round(PRUNE_EVERY.total_seconds() / seconds))
        beats = 0
        while True:
            await asyncio.sleep(seconds)
            await self.beat()
            beats += 1
            if beats % prune_every == 0:
                await self.prune_quietly()

    async def beat(self) -> bool:
        """Write this worker's row now (one upsert); False if the database could not be
        reached (told once per failure, tried again at the next beat)."""
        try:
            async with self._database.begin() as connection:
                await connection.execute(self._upsert(connection.dialect.name))
                if not self._pruned:  # the first beat prunes too: a worker restarted hourly
                    self._pruned = True
                    await self._prune(connection)
        except Exception as error:
            logger.warning(
                "Could not refresh worker {}: {}", self.worker_id, describe_database_error(error)
            )
            return False
        return True

    def _upsert(self, dialect_name: str) -> Any:
        now = database_time(dialect_name)
        insert = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
        statement = insert(WorkerRow).values(
            id=self.worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            version=myapp.__version__,
            started_at=now,
            last_heartbeat_at=now,
            stopped_at=None,
            handlers=self._handlers(),
            in_flight=self._in_flight(),
            heartbeat_seconds=(self.interval or self._engine.heartbeat_interval).total_seconds(),
        )
        new = statement.excluded
        return statement.on_conflict_do_update(
            index_elements=["id"],
            set_={
                "last_heartbeat_at": new.last_heartbeat_at,
                "stopped_at": None,
                "handlers": new.handlers,
                "in_flight": new.in_flight,
                "heartbeat_seconds": new.heartbeat_seconds,
            },
        )

    def _handlers(self) -> str:
        return json.dumps([r.name for r in self._engine.enabled_registrations])

    def _in_flight(self) -> int:
        return sum(running for _, running in self._engine.load().values())

    async def _mark_stopped(self) -> None:
        async with self._database.begin() as connection:
            now = database_time(connection.dialect.name)
            await connection.execute(
                update(WorkerRow)
                .where(WorkerRow.id == self.worker_id)
                .values(stopped_at=now, last_heartbeat_at=now, in_flight=0)
            )

    async def prune_quietly(self) -> None:
        try:
            async with self._database.begin() as connection:
                await self._prune(connection)
        except Exception as error:
            logger.warning("Could not prune the workers table: {}", describe_database_error(error))

    async def _prune(self, connection: AsyncConnection) -> int:
        """Delete the rows of workers whose last heartbeat (a stopped worker's: its stop) is
        older than the retention; how many went."""
        cutoff = database_time(connection.dialect.name, -self.retention)
        statement = delete(WorkerRow).where(WorkerRow.last_heartbeat_at < cutoff)
        result = await connection.execute(statement)
        return int(result.rowcount)
