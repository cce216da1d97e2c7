"""What can go wrong while scraping, each with a message a person can act on.

`permanent` says whether trying the same batch again later can help: a 503 can pass, a page
without order data or a cookie file that is not JSON cannot. Messages never carry cookie values.
"""

from __future__ import annotations


class ScrapeError(Exception):
    permanent: bool = True


class CookieFileError(ScrapeError):
    """The cookie file is not JSON or not in the collector's shape."""


class CookiesExpiredError(ScrapeError):
    """The cookie file's `expiresAt` is in the past."""


class UnsafeUrlError(ScrapeError):
    """A URL would leave the configured site, or an order number would change the path."""


class PageFetchError(ScrapeError):
    """The site answered with an error status, or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None, permanent: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.permanent = permanent


class PageTooLargeError(ScrapeError):
    """The page is larger than `MaxPageBytes`: refused before it fills memory."""


class PageParseError(ScrapeError):
    """The page does not hold the data in the shape the parser knows."""
