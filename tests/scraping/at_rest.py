"""What an attacker with a copy of the database would see: a dump of it, and a batch's stored
cookie file as the database holds it."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from myapp.data.models import StagingBatch

PG_DUMP_TIMEOUT_S = 60
SQLITE_COMPANION_SUFFIXES = ("", "-wal", "-shm", "-journal")


async def database_dump(db_url: str) -> bytes:
    """PostgreSQL: `pg_dump` of the database. SQLite: the raw bytes of the database file and of
    its WAL (and shared-memory and journal files, if any), free pages and old frames included."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        files = [Path(f"{path}{suffix}") for suffix in SQLITE_COMPANION_SUFFIXES]
        return b"".join(file.read_bytes() for file in files if file.exists())
    process = await asyncio.create_subprocess_exec(
        "pg_dump",
        "--host",
        url.host or "127.0.0.1",
        "--port",
        str(url.port or 5432),
        "--username",
        url.username or "postgres",
        "--no-password",
        url.database or "",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    output, errors = await asyncio.wait_for(process.communicate(), PG_DUMP_TIMEOUT_S)
    assert process.returncode == 0, errors.decode()
    assert b"COPY public.staging_batches" in output  # the dump does hold the table's data
    return output


async def stored_contents(
    factory: async_sessionmaker[AsyncSession], batch_id: uuid.UUID
) -> str | None:
    """`staging_batches.file_contents` of the batch, as stored."""
    async with factory() as session:
        return await session.scalar(
            select(StagingBatch.file_contents).where(StagingBatch.id == batch_id)
        )


def pieces(token: str, size: int = 24) -> list[str]:
    """`token` cut in pieces: none may be found in a dump once the token is erased (a long value
    spans several database pages, so it is searched piece by piece, not whole)."""
    return [token[start : start + size] for start in range(0, len(token) - size + 1, size)]
