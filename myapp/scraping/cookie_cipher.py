"""Cookie files sealed for storage with Fernet (AES-128-CBC with an HMAC-SHA256, so a token that
was altered or sealed with another key is refused, never decrypted to garbage).

A stored cookie file is a live session for the user's Shein account: the database only ever
holds the sealed token, so a dump or a backup of it hands out nothing without the key.

`Secrets:CookieKey` holds one key, or several separated by commas to rotate: the first seals,
every one of them opens (Fernet's MultiFernet). A key is never logged and never part of an error.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from myapp.scraping.errors import ScrapeError

COOKIE_KEY_SETTING = "Secrets:CookieKey"
KEY_SEPARATOR = ","
KEY_BYTES = 32
# What a Fernet token adds to the sealed bytes: version (1), timestamp (8), IV (16), HMAC (32).
_TOKEN_OVERHEAD = 1 + 8 + 16 + 32
_AES_BLOCK = 16
GENERATE_KEY_COMMAND = (
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)
KEY_EXPECTED = (
    f"one or more Fernet keys separated by '{KEY_SEPARATOR}' (each 32 random bytes in url-safe "
    f"base64, 44 characters; make one with {GENERATE_KEY_COMMAND})"
)


class CookieKeyError(ScrapeError):
    """A stored cookie file cannot be opened with the configured key (another key sealed it, or
    it was altered). Permanent: the same key will not open it on a later attempt either."""


def parse_cookie_keys(text: str) -> MultiFernet:
    """The keys in `text` (comma-separated, the first seals). Raises ValueError saying what is
    expected, never repeating the text."""
    parts = [part.strip() for part in text.split(KEY_SEPARATOR)]
    if not all(parts):
        raise ValueError(KEY_EXPECTED)
    return MultiFernet([_fernet(part) for part in parts])


def _fernet(key: str) -> Fernet:
    try:
        raw = base64.urlsafe_b64decode(key.encode("ascii"))
    except (UnicodeEncodeError, binascii.Error):
        raise ValueError(KEY_EXPECTED) from None
    if len(raw) != KEY_BYTES:
        raise ValueError(KEY_EXPECTED)
    return Fernet(key)


def sealed_length(contents_bytes: int) -> int:
    """How long the token sealing `contents_bytes` bytes is, in characters (base64 of the
    padded ciphertext and its overhead): the most a stored batch within the cap can hold."""
    padded = (contents_bytes // _AES_BLOCK + 1) * _AES_BLOCK
    return 4 * -(-(padded + _TOKEN_OVERHEAD) // 3)


class CookieCipher:
    """Seals cookie files for the database and opens them again."""

    def __init__(self, keys: MultiFernet, key_source: str) -> None:
        self._keys = keys
        self.key_source = key_source  # where the key came from, for error messages

    @classmethod
    def from_key_text(cls, text: str, key_source: str) -> CookieCipher:
        return cls(parse_cookie_keys(text), key_source)

    def seal(self, contents: bytes) -> str:
        return self._keys.encrypt(contents).decode("ascii")

    def open(self, token: str) -> bytes:
        try:
            return self._keys.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            raise CookieKeyError(
                f"the stored cookie file cannot be decrypted with {self.key_source}: it was "
                f"sealed with another key or altered (set {COOKIE_KEY_SETTING} to the key it "
                "was sealed with, or give the file again: shein retry BATCH --cookies FILE)"
            ) from None

    def __repr__(self) -> str:
        return f"CookieCipher(key from {self.key_source})"
