"""Shein: scrape a submitted cookie file's order history into staging purchase orders.

Claims Queued `StagingBatch` rows whose `batch_processor_name` is "Shein", oldest `started_at`
first. Processing one loads its sealed cookie file (refused over `MaxCookieFileBytes` before it
is loaded), opens it with the cookie key, walks the orders list and every order's detail page,
and upserts the staging orders and items. An order that fails is staged Failed with its error
and the batch still completes; a batch that cannot be scraped at all fails, at once when
retrying cannot help (expired, malformed, oversized or undecryptable cookies, a page without
order data), with backoff otherwise (the site down, rate limits). A batch that completes or is
dead-lettered loses its cookie file: it is a live session and is kept no longer than needed.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

from loguru import logger
from pydantic import Field, field_validator
from sqlalchemy.ext.asyncio import AsyncSession

from myapp.data.claiming import status_claim_spec
from myapp.data.models import StagingBatch
from myapp.processing.claiming_handler import ClaimingHandler
from myapp.processing.claims import ClaimSpec
from myapp.processing.errors import PermanentError
from myapp.processing.options import HandlerOptions
from myapp.processing.timespan import DelayTimeSpan, LeaseTimeSpan, TimeoutTimeSpan
from myapp.processing.work_item import ProcessorPurpose
from myapp.scraping import session as scraper_defaults
from myapp.scraping.batches import BATCH_PROCESSOR_NAME
from myapp.scraping.cookie_cipher import CookieCipher
from myapp.scraping.cookie_limits import DEFAULT_MAX_COOKIE_FILE_BYTES
from myapp.scraping.cookie_storage import (
    ERASED_COOKIE_FILE,
    load_stored_cookie_file,
    scrub_sqlite_wal,
)
from myapp.scraping.cookies import CookieFile
from myapp.scraping.errors import ScrapeError
from myapp.scraping.session import ScraperSession, ScraperSettings
from myapp.scraping.shein import SheinWebScraper
from myapp.scraping.staging import stage_orders
from myapp.scraping.urls import Site

HANDLER_NAME = "Shein"
PURPOSE = ProcessorPurpose.INGESTION
MAX_ITEMS_PER_CYCLE = 5
DEFAULT_BASE_URL = "https://shein.com"
# A batch of a few hundred orders at the default 2 s delay takes minutes; the engine renews it.
DEFAULT_CLAIM_LEASE = timedelta(minutes=10)
MIN_PAGE_BYTES = 64 * 1024
MIN_COOKIE_FILE_BYTES = 1024
MAX_COOKIE_FILE_BYTES = 64 * 1024 * 1024
# What an HTTP/1.1 header can carry (RFC 9110): a token name, visible ASCII and spaces as value.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE = re.compile(r"[\x20-\x7E]*")


class SheinOptions(HandlerOptions):
    base_url: str = DEFAULT_BASE_URL
    user_agent: str = Field(default=scraper_defaults.DEFAULT_USER_AGENT, min_length=1)
    extra_headers: dict[str, str] = Field(default_factory=dict)
    request_timeout: TimeoutTimeSpan = scraper_defaults.DEFAULT_REQUEST_TIMEOUT
    request_delay: DelayTimeSpan = scraper_defaults.DEFAULT_REQUEST_DELAY
    max_concurrent_requests: int = Field(
        default=scraper_defaults.DEFAULT_MAX_CONCURRENT_REQUESTS, ge=1
    )
    max_page_bytes: int = Field(default=scraper_defaults.DEFAULT_MAX_PAGE_BYTES, ge=MIN_PAGE_BYTES)
    retry_attempts: int = Field(default=scraper_defaults.DEFAULT_RETRY_ATTEMPTS, ge=1, le=20)
    retry_backoff: DelayTimeSpan = scraper_defaults.DEFAULT_RETRY_BACKOFF
    retry_max_wait: DelayTimeSpan = scraper_defaults.DEFAULT_RETRY_MAX_WAIT
    claim_lease: LeaseTimeSpan = DEFAULT_CLAIM_LEASE
    max_cookie_file_bytes: int = Field(
        default=DEFAULT_MAX_COOKIE_FILE_BYTES, ge=MIN_COOKIE_FILE_BYTES, le=MAX_COOKIE_FILE_BYTES
    )

    @field_validator("base_url")
    @classmethod
    def _http_site(cls, value: str) -> str:
        return Site.parse(value).base_url

    @field_validator("extra_headers")
    @classmethod
    def _sendable_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        # Refused at start-up: otherwise every request of every batch fails inside httpx.
        for name, value in headers.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"header name {name!r} is not an HTTP token")
            if not _HEADER_VALUE.fullmatch(value):
                raise ValueError(f"header {name} must be printable ASCII text")
        return headers

    def scraper_settings(self) -> ScraperSettings:
        return ScraperSettings(
            base_url=self.base_url,
            user_agent=self.user_agent,
            extra_headers=dict(self.extra_headers),
            request_timeout=self.request_timeout,
            request_delay=self.request_delay,
            max_concurrent_requests=self.max_concurrent_requests,
            max_page_bytes=self.max_page_bytes,
            retry_attempts=self.retry_attempts,
            retry_backoff=self.retry_backoff,
            retry_max_wait=self.retry_max_wait,
        )


class SheinBatchHandler(ClaimingHandler[StagingBatch]):
    options_model: ClassVar[type[HandlerOptions]] = SheinOptions

    def __init__(
        self,
        *,
        session: AsyncSession,
        worker_id: str,
        clock: Callable[[], datetime],
        options: SheinOptions,
        cookie_cipher: CookieCipher,
    ) -> None:
        super().__init__(session=session, worker_id=worker_id, clock=clock)
        self._options = options
        self._cipher = cookie_cipher

    def claim_spec(self) -> ClaimSpec[StagingBatch]:
        return status_claim_spec(
            StagingBatch,
            order_by=(StagingBatch.started_at, StagingBatch.id),
            where=(StagingBatch.batch_processor_name == BATCH_PROCESSOR_NAME,),
            lease=self._options.claim_lease,
            # A dead-lettered batch shows why in its own error_message, not only in last_error.
            error_column=StagingBatch.error_message,
            dead_letter_values=ERASED_COOKIE_FILE,  # a dead batch keeps no credentials
        )

    def completion_values(self, now: datetime) -> Mapping[str, Any]:
        return {"completed_at": now, "error_message": None, **ERASED_COOKIE_FILE}

    async def fetch_work_items(self, max_items: int) -> Sequence[StagingBatch]:
        batches = await super().fetch_work_items(max_items)
        await scrub_sqlite_wal(self._session)  # a claim dead-letters exhausted batches too
        return batches

    async def complete(self, items: Sequence[StagingBatch]) -> Collection[uuid.UUID]:
        lost = await super().complete(items)
        await scrub_sqlite_wal(self._session)
        return lost

    async def fail(self, item: StagingBatch, error: BaseException) -> bool:
        dead = await super().fail(item, error)  # a dead-lettered batch's cookie file is erased too
        await scrub_sqlite_wal(self._session)
        return dead

    async def process(self, item: StagingBatch) -> None:
        cookies = await self._cookies(item)
        logger.info(
            "Scraping {} for batch {} with {} cookies captured {:%Y-%m-%d %H:%M}",
            self._options.base_url,
            item.id,
            len(cookies.cookies),
            cookies.captured_at,
        )
        try:
            async with ScraperSession(self._options.scraper_settings(), cookies) as pages:
                result = await SheinWebScraper(pages, pages.site).scrape()
        except ScrapeError as error:
            if error.permanent:
                raise PermanentError(str(error)) from error
            raise
        counts = await stage_orders(self._session, item.id, result.outcomes, self._clock())
        await self._session.commit()
        logger.info(
            "Staged {} orders ({} failed) with {} items from batch {}",
            counts.orders,
            counts.failed,
            counts.items,
            item.id,
        )

    async def _cookies(self, batch: StagingBatch) -> CookieFile:
        try:
            contents = await load_stored_cookie_file(
                self._session, batch.id, self._cipher, self._options.max_cookie_file_bytes
            )
            cookies = CookieFile.from_json(contents)
            cookies.ensure_not_expired(self._clock())
        except ScrapeError as error:
            # `from None`: the decoding frames held the file's text, which has the cookie values.
            raise PermanentError(str(error)) from None
        # End the read: no transaction stays open while the pages are fetched (minutes).
        await self._session.commit()
        return cookies
