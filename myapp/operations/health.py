"""`myapp health`: what a container orchestrator's probe asks. Healthy when the database
answers, the schema is at our head and, if asked, a worker is alive. Never raises for an
unusable database: it is one of the answers."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from myapp.data.database import redact_url
from myapp.data.errors import DatabaseStartupError, database_startup
from myapp.operations.schema import SchemaState, missing_sqlite_file, schema_state
from myapp.operations.workers import WorkerState, list_workers

DEFAULT_TIMEOUT = timedelta(seconds=10)


class HealthReport(BaseModel):
    healthy: bool
    database: str
    """The connection string, password masked."""
    reachable: bool
    database_schema: SchemaState | None = None
    live_workers: int | None = None
    """Counted only when a worker is required."""
    problems: list[str] = []


async def check_health(
    engine: AsyncEngine,
    *,
    require_worker: bool = False,
    answer_within: timedelta = DEFAULT_TIMEOUT,
) -> HealthReport:
    database = redact_url(engine.url)
    try:
        async with asyncio.timeout(answer_within.total_seconds()):
            return await _check(engine, database, require_worker)
    except DatabaseStartupError as error:
        problem = str(error)
    except TimeoutError:
        problem = f"Database {database} did not answer within {answer_within.total_seconds():g} s"
    return HealthReport(healthy=False, database=database, reachable=False, problems=[problem])


async def _check(engine: AsyncEngine, database: str, require_worker: bool) -> HealthReport:
    with database_startup(database):
        missing_sqlite_file(engine.url)
        schema = await schema_state(engine)
    problems = [] if schema.at_head else [f"Database {schema.describe()}"]
    live = None
    if require_worker:
        async with AsyncSession(engine) as session:
            workers = await list_workers(session)
        live = sum(1 for w in workers or [] if w.state is WorkerState.LIVE)
        if not live:
            problems.append("No live worker")
    return HealthReport(
        healthy=not problems,
        database=database,
        reachable=True,
        database_schema=schema,
        live_workers=live,
        problems=problems,
    )
