"""The scraper's HTTP session: the user's cookies, a browser's headers, and good manners.

Requests are spaced at least `request_delay` apart and at most `max_concurrent_requests` run at
once. 429 and 5xx answers (and network errors) are retried with exponential backoff, waiting at
least what `Retry-After` asks; other 4xx answers are final. A body larger than `max_page_bytes`
is refused while it streams in, so an oversized page costs at most that much memory. Every
request, redirects included, must stay on the configured site.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from http.cookiejar import Cookie as JarCookie

import httpx
from loguru import logger
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from myapp.lifetime import AsyncClosing
from myapp.scraping.cookies import DEFAULT_COOKIE_PATH, CookieFile
from myapp.scraping.errors import PageFetchError, PageTooLargeError
from myapp.scraping.orders import Page
from myapp.scraping.urls import Site

DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
DEFAULT_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
DEFAULT_REQUEST_TIMEOUT = timedelta(seconds=30)
DEFAULT_REQUEST_DELAY = timedelta(seconds=2)
DEFAULT_MAX_CONCURRENT_REQUESTS = 1
DEFAULT_MAX_PAGE_BYTES = 16 * 1024 * 1024
DEFAULT_RETRY_ATTEMPTS = 4
DEFAULT_RETRY_BACKOFF = timedelta(seconds=1)
DEFAULT_RETRY_MAX_WAIT = timedelta(seconds=60)
MAX_REDIRECTS = 5
RETRY_JITTER = 0.2
_RETRYABLE_STATUSES = frozenset({429}) | frozenset(range(500, 600))
_PERMANENT_REQUEST_ERRORS = (
    httpx.LocalProtocolError,  # a header our side cannot send (e.g. a line break in it)
    httpx.UnsupportedProtocol,
    httpx.DecodingError,  # a body that does not decode as its Content-Encoding says
)


@dataclass(frozen=True, kw_only=True)
class ScraperSettings:
    base_url: str
    user_agent: str = DEFAULT_USER_AGENT
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    request_timeout: timedelta = DEFAULT_REQUEST_TIMEOUT
    request_delay: timedelta = DEFAULT_REQUEST_DELAY
    max_concurrent_requests: int = DEFAULT_MAX_CONCURRENT_REQUESTS
    max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES
    retry_attempts: int = DEFAULT_RETRY_ATTEMPTS  # attempts in all, the first one included
    retry_backoff: timedelta = DEFAULT_RETRY_BACKOFF  # first wait; doubles each retry
    # No wait is longer than this; a Retry-After asking for longer ends the retries.
    retry_max_wait: timedelta = DEFAULT_RETRY_MAX_WAIT


class RetryableStatusError(PageFetchError):
    def __init__(self, message: str, *, status: int, retry_after: float | None) -> None:
        super().__init__(message, status=status, permanent=False)
        self.retry_after = retry_after


class RequestPacer:
    """Starts requests at least `delay` apart, however many are waiting."""

    def __init__(self, delay: timedelta) -> None:
        self._delay = delay.total_seconds()
        self._lock = asyncio.Lock()
        self._next_start = 0.0

    async def wait_turn(self) -> None:
        async with self._lock:
            wait = self._next_start - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._next_start = time.monotonic() + self._delay


class ScraperSession(AsyncClosing):
    """Fetches pages of one site for one cookie file. Use as `async with`."""

    def __init__(self, settings: ScraperSettings, cookies: CookieFile) -> None:
        self.site = Site.parse(settings.base_url)
        self._settings = settings
        self._pacer = RequestPacer(settings.request_delay)
        self._slots = asyncio.Semaphore(settings.max_concurrent_requests)
        timeout = settings.request_timeout.total_seconds()
        self._client = httpx.AsyncClient(
            cookies=cookie_jar(cookies),
            headers={"User-Agent": settings.user_agent, "Accept": DEFAULT_ACCEPT}
            | dict(settings.extra_headers),
            timeout=httpx.Timeout(timeout),
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            event_hooks={"request": [self._refuse_other_sites]},
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def _refuse_other_sites(self, request: httpx.Request) -> None:
        self.site.check(request.url)

    async def get_page(self, url: str) -> Page:
        self.site.check(url)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._settings.retry_attempts),
            wait=self._wait_before_retry,
            retry=retry_if_exception(self._is_worth_retrying),
            before_sleep=self._log_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                async with self._slots:
                    await self._pacer.wait_turn()
                    return await self._fetch(url)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _fetch(self, url: str) -> Page:
        timeout = self._settings.request_timeout.total_seconds()
        try:
            async with asyncio.timeout(timeout):
                async with self._client.stream("GET", url) as response:
                    _raise_for_status(response, url)
                    body = await self._read_capped(response, url)
        except TimeoutError:
            raise PageFetchError(
                f"timed out after {timeout:g} s fetching {url}", permanent=False
            ) from None
        except httpx.TooManyRedirects:
            raise PageFetchError(f"too many redirects fetching {url}") from None
        except _PERMANENT_REQUEST_ERRORS as error:
            # Our request cannot be sent as built, or the answer cannot be decoded: the same
            # again later fails the same way. The type only: the text may quote a header.
            raise PageFetchError(f"could not fetch {url}: {type(error).__name__}") from None
        except UnicodeEncodeError:
            # A header (a cookie, an ExtraHeaders entry) is not ASCII. The error's own text
            # quotes the character and its position in the header: never shown.
            raise PageFetchError(
                f"could not fetch {url}: a request header or cookie is not ASCII text"
            ) from None
        except httpx.RequestError as error:  # network errors and the server breaking protocol
            raise PageFetchError(
                f"could not fetch {url}: {type(error).__name__}", permanent=False
            ) from None
        logger.bind(url=url).debug("Fetched {} ({} bytes)", url, len(body))
        return Page(str(response.url), body.decode(response.encoding or "utf-8", errors="replace"))

    async def _read_capped(self, response: httpx.Response, url: str) -> bytes:
        limit = self._settings.max_page_bytes
        too_large = PageTooLargeError(
            f"page {url} is larger than the {limit:,} byte limit (MaxPageBytes): not read"
        )
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > limit:
                raise too_large
        return bytes(body)

    def _is_worth_retrying(self, error: BaseException) -> bool:
        if isinstance(error, RetryableStatusError):
            max_wait = self._settings.retry_max_wait.total_seconds()
            return error.retry_after is None or error.retry_after <= max_wait
        return isinstance(error, PageFetchError) and not error.permanent

    def _wait_before_retry(self, state: RetryCallState) -> float:
        backoff = self._settings.retry_backoff.total_seconds() * 2.0 ** (state.attempt_number - 1)
        backoff *= 1 + random.uniform(0, RETRY_JITTER)
        error = state.outcome.exception() if state.outcome else None
        retry_after = 0.0
        if isinstance(error, RetryableStatusError) and error.retry_after is not None:
            retry_after = error.retry_after
        return min(max(backoff, retry_after), self._settings.retry_max_wait.total_seconds())

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        logger.warning(
            "{} (attempt {} of {}); retrying in {:.1f} s",
            error,
            state.attempt_number,
            self._settings.retry_attempts,
            wait,
        )


def cookie_jar(cookies: CookieFile) -> httpx.Cookies:
    """The file's cookies as a jar: domain `.{file domain}` and path `/` unless a cookie says."""
    jar = httpx.Cookies()
    for cookie in cookies.cookies.values():
        domain = cookie.domain or cookies.default_cookie_domain
        path = cookie.path or DEFAULT_COOKIE_PATH
        jar.jar.set_cookie(
            JarCookie(
                version=0,
                name=cookie.name,
                value=cookie.value.get_secret_value(),
                port=None,
                port_specified=False,
                domain=domain,
                domain_specified=True,
                domain_initial_dot=domain.startswith("."),
                path=path,
                path_specified=True,
                secure=cookie.secure,
                expires=int(cookie.expires.timestamp()) if cookie.expires else None,
                discard=False,
                comment=None,
                comment_url=None,
                rest={"HttpOnly": ""} if cookie.http_only else {},
            )
        )
    return jar


def _raise_for_status(response: httpx.Response, url: str) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    message = f"HTTP {status} {response.reason_phrase} from {url}".replace("  ", " ")
    if status in _RETRYABLE_STATUSES:
        raise RetryableStatusError(
            message, status=status, retry_after=_retry_after(response.headers.get("Retry-After"))
        )
    if status in (401, 403):
        message += " (the cookies may have expired or been signed out)"
    raise PageFetchError(message, status=status)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
