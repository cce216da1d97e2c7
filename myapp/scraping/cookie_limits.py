"""How large and how deeply nested a cookie file may be, checked before it can cost anything.

A collector's file is a few kilobytes, four levels deep. Without limits a 200 MB file was read,
stored and loaded by every worker that claimed its batch (1.15 GB of memory), and a file nested
200,000 levels deep ended the JSON decoder with a 75-line RecursionError. Here a file is
measured (`stat`) before it is opened, read no further than one byte past the limit, and its
nesting is counted without recursion before the decoder sees it.
"""

from __future__ import annotations

import re
from pathlib import Path

from myapp.scraping.errors import CookieFileError

DEFAULT_MAX_COOKIE_FILE_BYTES = 1_048_576
MAX_COOKIE_FILE_DEPTH = 32
MAX_BYTES_SETTING = "BackgroundProcessing:Shein:MaxCookieFileBytes"
# A JSON string (skipped whole: brackets inside it do not nest; unterminated, it runs to the end)
# or one bracket. Possessive: linear time whatever the input, no backtracking.
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]++|\\.?)*+"?|[\[\]{}]', re.DOTALL)
_OPENING = frozenset("[{")
_CLOSING = frozenset("]}")


class CookieFileTooLargeError(CookieFileError):
    """The cookie file is larger than `MaxCookieFileBytes`."""


class CookieFileTooDeepError(CookieFileError):
    """The cookie file nests objects or arrays deeper than `MAX_COOKIE_FILE_DEPTH`."""


def read_cookie_file(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, refused if it is larger than `max_bytes`: by its size before it is
    opened, and by reading at most one byte more (a file that grows, a pipe, a device)."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise too_large(f"cookie file {path}", size, max_bytes)
        with path.open("rb") as file:
            contents = file.read(max_bytes + 1)
    except OSError as error:
        raise CookieFileError(f"cannot read cookie file {path}: {error.strerror}") from None
    if len(contents) > max_bytes:
        raise too_large(f"cookie file {path}", None, max_bytes)
    return contents


def check_size(size: int, max_bytes: int, what: str) -> None:
    if size > max_bytes:
        raise too_large(what, size, max_bytes)


def too_large(what: str, size: int | None, max_bytes: int) -> CookieFileTooLargeError:
    measured = f" {size:,} bytes," if size is not None else ""
    return CookieFileTooLargeError(
        f"{what} is{measured} over the limit of {max_bytes:,} bytes ({MAX_BYTES_SETTING})"
    )


def check_depth(text: str, limit: int = MAX_COOKIE_FILE_DEPTH) -> None:
    """Refuse JSON text whose objects and arrays nest deeper than `limit`; stops at the first
    bracket past it. Malformed text is left for the decoder to describe."""
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in _OPENING:
            depth += 1
            if depth > limit:
                raise CookieFileTooDeepError(
                    f"cookie file nests objects or arrays more than {limit} levels deep"
                )
        elif token in _CLOSING:
            depth = max(depth - 1, 0)
