"""Cookie files at rest: sealed on the way into `staging_batches.file_contents`, size-checked
and opened on the way out, erased when their batch is finished.

In: the file is measured before it is read, parsed (nesting checked) and sealed; only the token
is stored. Out: the stored length is checked in the database, so a batch over the cap is refused
before its contents are loaded. Erased: completing or dead-lettering a batch sets its contents
to NULL; SQLite also overwrites the freed bytes (`secure_delete`, set on every connection) and
here its WAL is checkpointed and truncated, which takes the last old copy of the page off disk.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from loguru import logger
from sqlalchemy import case, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from myapp.data.database import SQLITE_BUSY_TIMEOUT_MS
from myapp.data.models import StagingBatch
from myapp.scraping.cookie_cipher import CookieCipher, sealed_length
from myapp.scraping.cookie_limits import check_size, read_cookie_file, too_large
from myapp.scraping.cookies import CookieFile
from myapp.scraping.errors import CookieFileError

# The values that erase a batch's cookie file: on completion and on dead-letter.
ERASED_COOKIE_FILE: Mapping[str, Any] = MappingProxyType({"file_contents": None})
STORED = "the stored cookie file"
NO_CONTENTS = (
    "the batch has no cookie file contents (they are erased when a batch finishes; "
    "give the file again: shein retry BATCH --cookies FILE)"
)
_LEGACY_PLAINTEXT_START = "{"


@dataclass(frozen=True, slots=True)
class SealedCookieFile:
    """A cookie file read from disk, checked and sealed: what a batch stores."""

    token: str
    file_hash: str  # sha256 of the file's bytes: the same file is not submitted twice

    def __repr__(self) -> str:
        return f"SealedCookieFile(file_hash={self.file_hash!r})"


async def read_and_seal(
    path: Path, cipher: CookieCipher, max_bytes: int, now: datetime
) -> SealedCookieFile:
    """Read the file at `path` (at most `max_bytes`), check it is an unexpired cookie file and
    seal it. Raises `CookieFileError` (too large, too deep, not a cookie file) or
    `CookiesExpiredError`."""
    contents = await asyncio.to_thread(read_cookie_file, path, max_bytes)
    CookieFile.from_json(contents).ensure_not_expired(now)
    return SealedCookieFile(cipher.seal(contents), hashlib.sha256(contents).hexdigest())


async def load_stored_cookie_file(
    session: AsyncSession, batch_id: uuid.UUID, cipher: CookieCipher, max_bytes: int
) -> bytes:
    """The batch's cookie file, opened. Contents longer than a sealed file of `max_bytes` can be
    are not loaded at all (the database compares the length). Raises `CookieFileError` (none,
    too large), `CookieKeyError` (another key sealed it)."""
    stored_length = func.length(StagingBatch.file_contents)
    within_cap = case((stored_length <= sealed_length(max_bytes), StagingBatch.file_contents))
    row = (
        await session.execute(select(stored_length, within_cap).where(StagingBatch.id == batch_id))
    ).one_or_none()
    if row is None or not row[0]:
        raise CookieFileError(NO_CONTENTS)
    length: int = row[0]
    stored: str | None = row[1]
    if stored is None:
        raise too_large(f"{STORED} ({length:,} characters sealed)", None, max_bytes)
    if _is_legacy_plaintext(stored):
        logger.bind(item_id=str(batch_id)).warning(
            "Batch {} holds its cookie file in plain text (stored before encryption): it is "
            "read as it is and erased when the batch finishes",
            batch_id,
        )
        contents = stored.encode("utf-8")
    else:
        contents = cipher.open(stored)
    check_size(len(contents), max_bytes, STORED)
    return contents


def _is_legacy_plaintext(stored: str) -> bool:
    """Rows submitted before encryption hold the JSON itself; a Fernet token never has a `{`."""
    return stored.lstrip("\ufeff \t\r\n").startswith(_LEGACY_PLAINTEXT_START)


async def scrub_sqlite_wal(session: AsyncSession) -> None:
    """On SQLite, move every page into the database file and truncate the WAL, so the copies of
    pages written before an erasure (which still hold the sealed cookie file) are gone from disk.

    Never waits: with another connection reading, SQLite reports busy at once and the WAL is left
    as it is until the next erasure (or until the last connection closes, which checkpoints too).
    """
    if session.get_bind().dialect.name != "sqlite":
        return
    await session.execute(text("PRAGMA busy_timeout = 0"))
    try:
        busy, _, _ = (await session.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))).one()
    finally:
        await session.execute(text(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}"))
        await session.commit()
    if busy:
        logger.debug("The SQLite WAL is in use; it is truncated after a later erasure")
