"""PostgreSQL connections are pinged before use only after sitting idle in the pool."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from sqlalchemy import text

from myapp.data import database
from myapp.data.database import create_engine
from tests.fixtures.database import postgres_admin_dsn

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


async def backend_pid(engine: Any) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def terminate(pid: int) -> None:
    admin = await asyncpg.connect(postgres_admin_dsn())
    try:
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()


async def test_an_idle_connection_killed_in_the_pool_is_replaced_before_use(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "PING_AFTER_IDLE_S", 0.0)  # every checkout counts as idle
    engine = create_engine(db_url)
    try:
        killed = await backend_pid(engine)
        await terminate(killed)
        assert await backend_pid(engine) != killed  # no error: the dead one was discarded
    finally:
        await engine.dispose()


async def test_a_connection_used_moments_ago_is_not_pinged(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "PING_AFTER_IDLE_S", 3600.0)
    engine = create_engine(db_url)
    pings: list[object] = []
    monkeypatch.setattr(engine.dialect, "do_ping", lambda connection: pings.append(connection))
    try:
        first = await backend_pid(engine)
        assert await backend_pid(engine) == first
        assert pings == []
    finally:
        await engine.dispose()


async def test_a_connection_idle_past_the_bound_is_pinged(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "PING_AFTER_IDLE_S", 0.0)
    engine = create_engine(db_url)
    pings: list[object] = []
    monkeypatch.setattr(engine.dialect, "do_ping", lambda connection: pings.append(connection))
    try:
        await backend_pid(engine)
        pinged = len(pings)
        await backend_pid(engine)
        assert len(pings) == pinged + 1
    finally:
        await engine.dispose()
