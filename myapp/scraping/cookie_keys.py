"""Where the key that seals cookie files comes from.

`Secrets:CookieKey` when it is set. Otherwise, on the embedded SQLite database, a key file
beside the database file (`data/myapp.db` -> `data/myapp.cookie.key`), created on first use
with mode 0600 and reused by every later run: one machine, one worker, one file. On PostgreSQL
many workers on many machines share the batches, which a key file on one of them cannot serve:
there the setting is required, and without it no key can be had (`find_cookie_key` is None).
"""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet
from loguru import logger
from pydantic import SecretStr

from myapp.data.database import normalize_url
from myapp.processing import ConfigurationError
from myapp.processing.errors import NOT_SHOWN
from myapp.scraping.cookie_cipher import (
    COOKIE_KEY_SETTING,
    GENERATE_KEY_COMMAND,
    CookieCipher,
    parse_cookie_keys,
)

KEY_FILE_SUFFIX = ".cookie.key"
KEY_FILE_MODE = 0o600
MISSING_KEY_EXPECTED = (
    "a key when the database is PostgreSQL: every worker, on every machine, must open the "
    "cookie files the others sealed, which a key file on one machine cannot do "
    f"(make one with {GENERATE_KEY_COMMAND})"
)


@dataclass(frozen=True, slots=True)
class CookieKey:
    """The configured key, or the key file to read or create, or neither (an in-memory database,
    whose batches last as long as the process: a key made now serves them)."""

    configured: SecretStr | None = None
    key_file: Path | None = None

    def open_cipher(self) -> CookieCipher:
        if self.configured is not None:
            key = self.configured.get_secret_value()
            return CookieCipher.from_key_text(key, COOKIE_KEY_SETTING)
        if self.key_file is not None:
            key = load_or_create_key_file(self.key_file)
            source = f"the key file {self.key_file} ({COOKIE_KEY_SETTING} is not set)"
            return CookieCipher.from_key_text(key, source)
        source = f"a key made for this in-memory database ({COOKIE_KEY_SETTING} is not set)"
        return CookieCipher.from_key_text(Fernet.generate_key().decode("ascii"), source)


def find_cookie_key(cookie_key: SecretStr | str | None, database_url: str) -> CookieKey | None:
    """Where this process gets its cookie key; None on PostgreSQL without `Secrets:CookieKey`."""
    if isinstance(cookie_key, str):
        cookie_key = SecretStr(cookie_key)
    if cookie_key is not None and cookie_key.get_secret_value().strip():
        return CookieKey(configured=cookie_key)
    url = normalize_url(database_url)
    if url.get_backend_name() != "sqlite":
        return None
    return CookieKey(key_file=key_file_path(url.database))


def open_cookie_cipher(cookie_key: CookieKey | None) -> CookieCipher:
    """The cipher for `cookie_key`; a `ConfigurationError` naming the setting when there is none."""
    if cookie_key is None:
        raise ConfigurationError(COOKIE_KEY_SETTING, NOT_SHOWN, MISSING_KEY_EXPECTED)
    return cookie_key.open_cipher()


def key_file_path(database: str | None) -> Path | None:
    """`<dir>/<name>.cookie.key` beside a SQLite database file; None for an in-memory one."""
    if database and database.startswith("file:"):  # a SQLite URI filename
        database = database.removeprefix("file:").split("?", 1)[0]
    if not database or database == ":memory:":
        return None
    path = Path(database).expanduser()
    return path.with_name(path.stem + KEY_FILE_SUFFIX)


def load_or_create_key_file(path: Path) -> str:
    """The key in `path`, created first if there is none. Creation is atomic: the key is written
    and flushed under a temporary name with mode 0600, then hard-linked into place, which fails
    if another process got there first (its key is then the one read), so no process ever reads
    half a key or replaces one already in use."""
    if not path.exists():
        _create_key_file(path)
    return _read_key_file(path)


def _create_key_file(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
        try:
            try:
                os.fchmod(descriptor, KEY_FILE_MODE)  # whatever the umask allowed
                os.write(descriptor, Fernet.generate_key() + b"\n")
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            os.link(temporary, path)
        except FileExistsError:
            return  # another process created it first: read theirs
        finally:
            temporary.unlink(missing_ok=True)
        _sync_directory(path.parent)
    except OSError as error:
        raise ConfigurationError(
            str(path), NOT_SHOWN, f"a key file this process can create ({error.strerror})"
        ) from None
    logger.info(
        "Created the cookie key file {} (mode 0600): back it up with the database; "
        "without it, queued cookie files cannot be read",
        path,
    )


def _read_key_file(path: Path) -> str:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        key = path.read_text(encoding="ascii").strip()
        parse_cookie_keys(key)
    except OSError as error:
        raise ConfigurationError(
            str(path), NOT_SHOWN, f"a readable key file ({error.strerror})"
        ) from None
    except ValueError:
        raise ConfigurationError(
            str(path),
            NOT_SHOWN,
            f"a key file as myapp writes it: one Fernet key (set {COOKIE_KEY_SETTING} instead, "
            "or remove the file to make a new one: queued batches sealed with it then fail)",
        ) from None
    if mode & 0o077:
        logger.warning(
            "The cookie key file {} can be read by other users (mode {:04o}): chmod 600 it",
            path,
            mode,
        )
    return key


def _sync_directory(directory: Path) -> None:
    """Make the new name durable: a key lost in a crash would leave queued batches unreadable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
