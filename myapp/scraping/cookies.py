"""The cookie file a user captures from their logged-in browser session.

The collector app writes camelCase JSON:
`{"domain", "capturedAt", "expiresAt"?, "cookies": {name: {"name", "value", "domain"?, "path"?,
"secure", "httpOnly", "expires"?, "sameSite"?}}, "metadata": {...}}`.

Cookie values are secrets: they are held as `SecretStr`, so they show as `**********` in a
repr, a log line or a plain dump, and error messages are built from field paths and reasons
only, never from the input.

Names and values are checked against RFC 6265 when the file is read: a character a `Cookie:`
header cannot carry (`é`, a line break) would otherwise fail every request inside the HTTP
library with an error quoting the value, and be retried as if the site were down.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    SerializationInfo,
    ValidationError,
    field_serializer,
    field_validator,
)
from pydantic.alias_generators import to_camel

from myapp.scraping.cookie_limits import (
    DEFAULT_MAX_COOKIE_FILE_BYTES,
    check_depth,
    read_cookie_file,
)
from myapp.scraping.errors import CookieFileError, CookiesExpiredError

DEFAULT_COOKIE_PATH = "/"
# Saving is the one place a cookie value is written out in clear; it asks for it by name.
_REVEAL_SECRETS = "reveal_cookie_values"
# RFC 6265 4.1.1: a cookie-name is an RFC 2616 token; a cookie-value is cookie-octets, optionally
# in double quotes (US-ASCII without controls, whitespace, DQUOTE, comma, semicolon, backslash).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_COOKIE_OCTETS = r"[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]*"
_COOKIE_VALUE = re.compile(f'{_COOKIE_OCTETS}|"{_COOKIE_OCTETS}"')


class _CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class Cookie(_CamelModel):
    name: str
    value: SecretStr
    domain: str | None = None
    path: str | None = None
    secure: bool = False
    http_only: bool = False
    expires: datetime | None = None
    same_site: str | None = None

    @field_validator("name")
    @classmethod
    def _token_name(cls, name: str) -> str:
        if not _TOKEN.fullmatch(name):
            raise ValueError(
                "a cookie name must be ASCII letters, digits and !#$%&'*+-.^_`|~ "
                "(RFC 6265: no spaces, separators, control or non-ASCII characters)"
            )
        return name

    @field_validator("value")
    @classmethod
    def _cookie_octets(cls, value: SecretStr) -> SecretStr:
        # The message says what is allowed, never which character or where: it is a secret.
        if not _COOKIE_VALUE.fullmatch(value.get_secret_value()):
            raise ValueError(
                "a cookie value must be printable ASCII without spaces, quotes, commas, "
                "semicolons or backslashes (RFC 6265 cookie-octets)"
            )
        return value

    @field_serializer("value")
    def _serialize_value(self, value: SecretStr, info: SerializationInfo) -> str:
        if info.context and info.context.get(_REVEAL_SECRETS):
            return value.get_secret_value()
        return str(value)


class CookieFile(_CamelModel):
    domain: str = Field(min_length=1)
    captured_at: AwareDatetime
    expires_at: AwareDatetime | None = None
    cookies: dict[str, Cookie]
    metadata: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_json(cls, text: str | bytes) -> CookieFile:
        """Parse a cookie file; its nesting is checked first (without recursion), so a hostile
        file is one readable `CookieFileError`, never a RecursionError. Size is the caller's to
        bound (`cookie_limits.read_cookie_file`)."""
        try:
            if isinstance(text, bytes):
                text = text.decode("utf-8-sig")
            check_depth(text)
            data = json.loads(text)
        except json.JSONDecodeError as error:
            # The decoder's own message names line and column; its `doc` (the secrets) is not used.
            raise CookieFileError(
                f"cookie file is not valid JSON: {error.msg} "
                f"(line {error.lineno}, column {error.colno})"
            ) from None
        except UnicodeDecodeError:
            raise CookieFileError("cookie file is not UTF-8 text") from None
        except ValueError:
            # int() refuses a number of more than 4,300 digits; its message is about Python.
            raise CookieFileError("cookie file is not valid JSON: a number is too long") from None
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise CookieFileError(f"cookie file is invalid: {_describe(error)}") from None

    @classmethod
    def load(cls, path: Path, max_bytes: int = DEFAULT_MAX_COOKIE_FILE_BYTES) -> CookieFile:
        return cls.from_json(read_cookie_file(path, max_bytes))

    def to_json(self) -> str:
        """The file's JSON as the collector writes it, cookie values included."""
        return self.model_dump_json(
            by_alias=True, exclude_none=True, indent=2, context={_REVEAL_SECRETS: True}
        )

    def save(self, path: Path) -> None:
        path.write_text(self.to_json(), encoding="utf-8")

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def ensure_not_expired(self, now: datetime) -> None:
        if self.expires_at is not None and self.is_expired(now):
            raise CookiesExpiredError(f"cookies expired at {self.expires_at.isoformat()}")

    @property
    def default_cookie_domain(self) -> str:
        """`.{file domain}`: the cookies go to the site and its subdomains (www., m., ...)."""
        return "." + self.domain.strip().lstrip(".")


def _describe(error: ValidationError) -> str:
    """Where and why, never the offending value (it may be a cookie)."""
    problems = []
    for detail in error.errors(include_input=False, include_url=False):
        # A key may hold a line break or a control character: shown escaped, never raw.
        location = ".".join(_printable(part) for part in detail["loc"]) or "(root)"
        problems.append(f"{location}: {detail['msg']}")
    shown = "; ".join(problems[:5])
    more = len(problems) - 5
    return shown + (f"; and {more} more" if more > 0 else "")


def _printable(part: str | int) -> str:
    text = str(part)
    return text if text.isprintable() else repr(text)
