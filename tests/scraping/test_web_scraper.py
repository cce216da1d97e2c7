"""The WebScraper walk with SheinWebScraper, against a real server; no database."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from myapp.scraping.cookies import CookieFile
from myapp.scraping.errors import PageFetchError, PageParseError
from myapp.scraping.orders import (
    FailedOrder,
    OrderItem,
    OrderList,
    OrderSummary,
    Page,
    ScrapedOrder,
    ScrapeResult,
)
from myapp.scraping.session import ScraperSession
from myapp.scraping.shein import SheinWebScraper
from myapp.scraping.urls import path_segment
from myapp.scraping.web_scraper import WebScraper
from tests.scraping.conftest import fast_settings
from tests.scraping.pages import (
    FixtureOrder,
    detail_data,
    detail_page,
    list_data,
    list_page,
    sample_orders,
    shein_page,
)
from tests.scraping.server import FakeSite, Reply

LIST_PATH = "/user/orders/list"
PAGE_BYTES = 300_000  # big enough to have noise around the data, small enough to stay fast


def detail_path(billno: str) -> str:
    return f"/user/orders/detail/{billno}"


def serve_orders(site: FakeSite, orders: list[FixtureOrder]) -> None:
    site.serve(LIST_PATH, list_page(orders, size=PAGE_BYTES))
    for order in orders:
        site.serve(detail_path(order.billno), detail_page(order, size=PAGE_BYTES))


def truncated_list_page() -> str:
    page = list_page(sample_orders(2), size=50_000)
    return page[: page.index('"orderGoodsList"') + 10]


async def scrape(site: FakeSite, cookies: CookieFile, **settings: Any) -> ScrapeResult:
    async with ScraperSession(fast_settings(site.url, **settings), cookies) as session:
        return await SheinWebScraper(session, session.site).scrape()


def by_reference(result: ScrapeResult) -> dict[str, ScrapedOrder | FailedOrder]:
    return {outcome.reference: outcome for outcome in result.outcomes}


async def test_scrapes_the_list_and_every_order(site: FakeSite, cookie_file: CookieFile) -> None:
    orders = sample_orders(5)
    serve_orders(site, orders)

    result = await scrape(site, cookie_file, max_concurrent_requests=3)

    assert [o.reference for o in result.outcomes] == [o.billno for o in orders]
    assert all(isinstance(o, ScrapedOrder) for o in result.outcomes)
    assert sorted(site.paths()) == sorted([LIST_PATH] + [detail_path(o.billno) for o in orders])


async def test_a_404_detail_fails_that_order_only(site: FakeSite, cookie_file: CookieFile) -> None:
    orders = sample_orders(3)
    serve_orders(site, orders)
    site.serve(detail_path(orders[1].billno), Reply(status=404, body="gone"))

    outcomes = by_reference(await scrape(site, cookie_file))

    failed = outcomes[orders[1].billno]
    assert isinstance(failed, FailedOrder)
    assert failed.error.startswith("HTTP 404 Not Found from http://127.0.0.1:")
    assert failed.placed_at == orders[1].order_date
    assert isinstance(outcomes[orders[0].billno], ScrapedOrder)
    assert isinstance(outcomes[orders[2].billno], ScrapedOrder)
    assert site.paths().count(detail_path(orders[1].billno)) == 1


async def test_a_500_detail_is_retried_then_fails_that_order(
    site: FakeSite, cookie_file: CookieFile
) -> None:
    orders = sample_orders(2)
    serve_orders(site, orders)
    site.serve(detail_path(orders[0].billno), Reply(status=500))

    outcomes = by_reference(await scrape(site, cookie_file, retry_attempts=3))

    failed = outcomes[orders[0].billno]
    assert isinstance(failed, FailedOrder) and "HTTP 500" in failed.error
    assert site.paths().count(detail_path(orders[0].billno)) == 3
    assert isinstance(outcomes[orders[1].billno], ScrapedOrder)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda info: info["orderGoodsList"][0].update(quantity="lots"), "quantity 'lots'"),
        (lambda info: info["orderGoodsList"][0]["unitPrice"].update(amount="?"), "is not a price"),
        (lambda info: info.pop("orderGoodsList"), "no orderGoodsList"),
    ],
)
async def test_an_unparsable_detail_fails_that_order_only(
    site: FakeSite, cookie_file: CookieFile, mutate: Any, expected: str
) -> None:
    orders = sample_orders(2)
    serve_orders(site, orders)
    data = detail_data(orders[0])
    mutate(data["orderInfo"])
    site.serve(detail_path(orders[0].billno), shein_page(data, size=20_000))

    outcomes = by_reference(await scrape(site, cookie_file))

    failed = outcomes[orders[0].billno]
    assert isinstance(failed, FailedOrder)
    assert failed.error.startswith(f"the page of order {orders[0].billno}: ")
    assert expected in failed.error
    assert isinstance(outcomes[orders[1].billno], ScrapedOrder)


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        (shein_page(None, size=50_000), "no `var gbRawData"),
        (shein_page({"orders": []}, size=50_000), "no gbRawData.order_list"),
        (truncated_list_page(), "truncated"),
        (shein_page("{order_list: []}", size=50_000), "not valid JSON"),
    ],
)
async def test_a_bad_list_page_fails_the_scrape(
    site: FakeSite, cookie_file: CookieFile, page: str, expected: str
) -> None:
    site.serve(LIST_PATH, page)

    with pytest.raises(PageParseError, match=expected) as caught:
        await scrape(site, cookie_file)

    assert str(caught.value).startswith("the orders list page: ")
    assert site.paths() == [LIST_PATH]


async def test_a_list_page_error_status_fails_the_scrape(
    site: FakeSite, cookie_file: CookieFile
) -> None:
    site.serve(LIST_PATH, Reply(status=401))

    with pytest.raises(PageFetchError, match="HTTP 401"):
        await scrape(site, cookie_file)


async def test_hostile_order_numbers_never_leave_the_site_or_the_detail_path(
    site: FakeSite, elsewhere: FakeSite, cookie_file: CookieFile
) -> None:
    hostile = [
        f"{elsewhere.url}/steal",
        "//127.0.0.1:1/steal",
        "../../admin",
        "..",
        "A1/../../x",
        "B2?redirect=1",
        "C3#frag",
        "/absolute",
    ]
    data = list_data([])
    data["order_list"] = [{"billno": billno, "addTime": 1_700_000_000} for billno in hostile]
    site.serve(LIST_PATH, shein_page(data, size=20_000))

    outcomes = by_reference(await scrape(site, cookie_file))

    assert elsewhere.requests == []
    detail_requests = [p for p in site.paths() if p != LIST_PATH]
    for path in detail_requests:
        segment = path.removeprefix("/user/orders/detail/")
        assert path.startswith("/user/orders/detail/") and "/" not in segment and "?" not in segment
    assert f"/user/orders/detail/{'..%2F..%2Fadmin'}" in detail_requests
    refused = outcomes[".."]
    assert isinstance(refused, FailedOrder)
    assert "order number '..' is a relative path" in refused.error
    # Every other one was encoded, requested on the site, and (no such page) failed with a 404.
    for billno in hostile:
        if billno != "..":
            outcome = outcomes[billno]
            assert isinstance(outcome, FailedOrder) and "HTTP 404" in outcome.error


class TinyShop(WebScraper):
    """A second supplier is a small class: two URLs and two parsers."""

    supplier_name = "TinyShop"

    def orders_list_url(self) -> str:
        return self._site.url("/api/orders")

    def order_detail_url(self, summary: OrderSummary) -> str:
        return self._site.url(f"/api/orders/{path_segment(summary.reference, 'order id')}")

    def parse_orders_list(self, page: Page) -> OrderList:
        return OrderList(tuple(OrderSummary(ref) for ref in json.loads(page.text)))

    def parse_order_detail(self, page: Page, summary: OrderSummary) -> ScrapedOrder:
        data = json.loads(page.text)
        if data.get("explode"):
            raise RuntimeError("a bug in the parser")
        item = OrderItem(None, data["name"], None, 1, Decimal(data["price"]), None, page.text)
        return ScrapedOrder(summary.reference, None, None, "ZAR", None, None, (item,), page.text)


async def test_a_second_supplier_reuses_the_walk(site: FakeSite, cookie_file: CookieFile) -> None:
    site.serve("/api/orders", '["T1", "T2"]')
    site.serve("/api/orders/T1", '{"name": "Mug", "price": "49.90"}')
    site.serve("/api/orders/T2", '{"explode": true}')

    async with ScraperSession(fast_settings(site.url), cookie_file) as session:
        result = await TinyShop(session, session.site).scrape()

    mug, broken = result.outcomes
    assert isinstance(mug, ScrapedOrder) and mug.items[0].unit_price == Decimal("49.90")
    assert isinstance(broken, FailedOrder)
    assert broken.error == "unexpected error: RuntimeError: a bug in the parser"


@pytest.mark.timeout(20)  # before the decoder's bound this scrape froze for minutes
async def test_an_absurd_number_in_one_order_fails_that_order_only(
    site: FakeSite, cookie_file: CookieFile
) -> None:
    orders = sample_orders(3)
    serve_orders(site, orders)
    poisoned = json.dumps(detail_data(orders[1])).replace(
        '"payment_method"', '"unusedCounter": 1e1000000, "payment_method"'
    )
    site.serve(detail_path(orders[1].billno), shein_page(poisoned, size=20_000))

    outcomes = by_reference(await scrape(site, cookie_file))

    failed = outcomes[orders[1].billno]
    assert isinstance(failed, FailedOrder)
    assert failed.error.startswith(
        f"the page of order {orders[1].billno}: gbRawData holds the number 1e1000000"
    )
    assert isinstance(outcomes[orders[0].billno], ScrapedOrder)
    assert isinstance(outcomes[orders[2].billno], ScrapedOrder)


async def test_an_order_number_longer_than_staging_holds_fails_before_its_page_is_fetched(
    site: FakeSite, cookie_file: CookieFile
) -> None:
    good = sample_orders(1)[0]
    too_long = "X" * 201
    data = list_data([good])
    data["order_list"].append({"billno": too_long, "addTime": 1_700_000_000})
    site.serve(LIST_PATH, shein_page(data, size=20_000))
    site.serve(detail_path(good.billno), detail_page(good, size=20_000))

    outcomes = by_reference(await scrape(site, cookie_file))

    failed = outcomes[too_long]
    assert isinstance(failed, FailedOrder)
    assert failed.error == (
        f"order number {'X' * 20!r}... is 201 characters long; staging holds at most 200"
    )
    assert isinstance(outcomes[good.billno], ScrapedOrder)
    assert site.paths() == [LIST_PATH, detail_path(good.billno)]
