"""The WebScraper base: orders list -> summaries -> each order's detail page -> parsed orders.

A subclass says where the pages are and how to read them; the base does the walking. The list
page failing fails the whole scrape (there is nothing to walk); one order failing (an HTTP error,
a page that does not parse, an order number that cannot be put in a URL or is longer than staging
holds) becomes a `FailedOrder` with a readable error and the other orders go on.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Protocol

from loguru import logger

from myapp.scraping.errors import PageParseError, ScrapeError
from myapp.scraping.limits import ORDER_REFERENCE_LENGTH, check_length
from myapp.scraping.orders import (
    FailedOrder,
    OrderList,
    OrderOutcome,
    OrderSummary,
    Page,
    ScrapedOrder,
    ScrapeResult,
)
from myapp.scraping.urls import Site

# A parser bug or an unforeseen page shape shows up as one of these: it fails that order only.
_PARSE_FAILURES = (PageParseError, KeyError, TypeError, ValueError, AttributeError, ArithmeticError)


class PageSource(Protocol):
    async def get_page(self, url: str) -> Page: ...


class WebScraper(ABC):
    supplier_name: str

    def __init__(self, pages: PageSource, site: Site) -> None:
        self._pages = pages
        self._site = site

    @abstractmethod
    def orders_list_url(self) -> str: ...

    @abstractmethod
    def order_detail_url(self, summary: OrderSummary) -> str: ...

    @abstractmethod
    def parse_orders_list(self, page: Page) -> OrderList: ...

    @abstractmethod
    def parse_order_detail(self, page: Page, summary: OrderSummary) -> ScrapedOrder: ...

    async def scrape(self) -> ScrapeResult:
        """Every order on the list page, each scraped or failed. Raises if the list page fails."""
        log = logger.bind(supplier=self.supplier_name)
        list_page = await self._pages.get_page(self.orders_list_url())
        try:
            order_list = self.parse_orders_list(list_page)
        except _PARSE_FAILURES as error:
            raise _as_parse_error("the orders list page", error) from error
        for warning in order_list.warnings:
            log.warning("Orders list: {}", warning)
        log.info("Orders list has {} orders", len(order_list.summaries))
        # The page source bounds concurrency and spaces requests: each order just waits its turn.
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._scrape_order(s)) for s in order_list.summaries]
        outcomes = tuple(task.result() for task in tasks)
        return ScrapeResult(outcomes=outcomes, warnings=order_list.warnings)

    async def _scrape_order(self, summary: OrderSummary) -> OrderOutcome:
        log = logger.bind(supplier=self.supplier_name, order=summary.reference)
        try:
            # An order number staging cannot hold fails here, before its page is fetched.
            check_length(summary.reference, ORDER_REFERENCE_LENGTH, "order number")
            url = self.order_detail_url(summary)
            page = await self._pages.get_page(url)
            try:
                return self.parse_order_detail(page, summary)
            except _PARSE_FAILURES as error:
                raise _as_parse_error(f"the page of order {summary.reference}", error) from error
        except ScrapeError as error:
            log.warning("Order {} failed: {}", summary.reference, error)
            return FailedOrder(summary.reference, summary.placed_at, str(error))
        except Exception as error:
            # Unforeseen (a bug, a library error): that order fails, its siblings go on.
            log.opt(exception=error).error("Order {} failed unexpectedly", summary.reference)
            message = f"unexpected error: {type(error).__name__}: {error}"
            return FailedOrder(summary.reference, summary.placed_at, message)


def _as_parse_error(what: str, error: Exception) -> ScrapeError:
    if isinstance(error, PageParseError):
        return PageParseError(f"{what}: {error}")
    return PageParseError(f"{what} could not be read: {type(error).__name__}: {error}")
