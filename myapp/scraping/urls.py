"""The one site a scraper may talk to, and building URLs on it that cannot leave it.

Every URL the scraper requests is built here from the configured base URL, and every request
(redirects included) is checked against it again by the session: a page cannot steer the
scraper to another host, and an order number cannot change the path it is put into.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from urllib.parse import quote, unquote

import httpx

from myapp.scraping.errors import UnsafeUrlError

MAX_SEGMENT_LENGTH = 200


@dataclass(frozen=True, slots=True)
class Site:
    scheme: str
    host: str
    port: int | None
    base_path: str  # "" or "/prefix", never a trailing slash

    @classmethod
    def parse(cls, base_url: str) -> Site:
        try:
            url = httpx.URL(base_url.strip())
        except httpx.InvalidURL as error:
            raise ValueError(f"base URL {base_url!r} is not a URL: {error}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base URL {base_url!r} must be an http(s) URL with a host")
        if url.query or url.fragment or url.userinfo:
            raise ValueError(f"base URL {base_url!r} must not carry a query, fragment or user")
        return cls(url.scheme, url.host, url.port, url.raw_path.decode("ascii").rstrip("/"))

    @property
    def base_url(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}://{self.host}{port}{self.base_path}"

    def url(self, path: str) -> str:
        """`path` (starting with "/", already encoded) on this site."""
        if not path.startswith("/"):
            raise ValueError(f"site path {path!r} must start with '/'")
        return self.base_url + path

    def check(self, url: httpx.URL | str) -> None:
        """Refuse a URL on another scheme, host or port, or outside the base path."""
        target = url if isinstance(url, httpx.URL) else httpx.URL(url)
        path = target.raw_path.decode("ascii", "replace").split("?", 1)[0]
        same_origin = (target.scheme, target.host, target.port) == (
            self.scheme,
            self.host,
            self.port,
        )
        under_base = path == self.base_path or path.startswith(self.base_path + "/")
        if not (same_origin and under_base and self._resolves_under_base(path)):
            shown = target.copy_with(query=None, fragment=None)
            raise UnsafeUrlError(
                f"refusing to request {shown}: it is outside the configured site {self.base_url}"
            )

    def _resolves_under_base(self, raw_path: str) -> bool:
        """Whether the path stays under the base path however a server reads it: `%2e%2e` is
        `..` once decoded, and a lenient server also splits on a decoded `%2F` or a backslash."""
        base = _resolved_segments(self.base_path)
        return _resolved_segments(raw_path)[: len(base)] == base


def _resolved_segments(raw_path: str) -> list[str]:
    """The path's segments after percent-decoding and removing dot segments (RFC 3986 5.2.4)."""
    segments: list[str] = []
    for segment in unquote(raw_path).replace("\\", "/").split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment not in ("", "."):
            segments.append(segment)
    return segments


def path_segment(value: str, what: str) -> str:
    """`value` percent-encoded as one path segment; refused if no encoding can make it one."""
    if not value or not value.strip():
        raise UnsafeUrlError(f"{what} is empty")
    if value in (".", "..") or value.strip() in (".", ".."):
        raise UnsafeUrlError(f"{what} {value!r} is a relative path, not a name")
    if len(value) > MAX_SEGMENT_LENGTH:
        raise UnsafeUrlError(
            f"{what} is {len(value)} characters long (at most {MAX_SEGMENT_LENGTH})"
        )
    if any(unicodedata.category(char).startswith("C") for char in value):
        raise UnsafeUrlError(f"{what} {value!r} contains control characters")
    # safe="" encodes "/", "?", "#", ":" and "%": the value stays inside its one segment.
    return quote(value, safe="")
