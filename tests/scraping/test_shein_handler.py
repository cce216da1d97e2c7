"""SheinBatchHandler on SQLite and PostgreSQL, scraping a real server on 127.0.0.1."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from myapp.data.models import (
    CandidateStatus,
    ProcessingStatus,
    StagingBatch,
    StagingPurchaseOrder,
)
from myapp.handlers.shein_batch import SheinBatchHandler, SheinOptions
from myapp.processing import (
    ClaimLifecycle,
    HandlerRegistration,
    PermanentError,
    ProcessorPurpose,
    Scope,
    WorkItemHandler,
    WorkItemProcessingEngine,
    scoped,
)
from myapp.scraping.errors import PageFetchError
from tests.data.claim_helpers import database_now, pass_time
from tests.fixtures.clock import FakeClock
from tests.scraping.conftest import COOKIE_VALUES, TEST_CIPHER, cookie_file_text
from tests.scraping.pages import FixtureOrder, detail_page, list_page, sample_orders
from tests.scraping.server import FakeSite, Reply

Factory = async_sessionmaker[AsyncSession]
LIST_PATH = "/user/orders/list"
PAGE_BYTES = 200_000


def options(site: FakeSite, **overrides: Any) -> SheinOptions:
    values: dict[str, Any] = {
        "BaseUrl": site.url,
        "RequestDelay": "00:00:00",
        "RetryAttempts": 2,
        "RetryBackoff": "00:00:00.01",
        "ExtraHeaders": {"X-Test-Header": "yes"},
    } | overrides
    return SheinOptions.model_validate(values)


def serve_orders(site: FakeSite, orders: Sequence[FixtureOrder]) -> None:
    site.serve(LIST_PATH, list_page(list(orders), size=PAGE_BYTES))
    for order in orders:
        site.serve(f"/user/orders/detail/{order.billno}", detail_page(order, size=PAGE_BYTES))


async def add_batch(
    factory: Factory,
    clock: FakeClock,
    *,
    contents: str | None = None,
    started_after: timedelta = timedelta(0),
    processor: str = "Shein",
    file_hash: str | None = None,
    stored: str | None = None,
) -> StagingBatch:
    """A Queued batch holding `contents` (default: a good cookie file) sealed with the test key,
    as `shein submit` stores it, or exactly `stored`."""
    if stored is None:
        text = cookie_file_text() if contents is None else contents
        stored = TEST_CIPHER.seal(text.encode()) if text else text
    async with factory() as session:
        batch = StagingBatch(
            batch_processor_name=processor,
            file_hash=file_hash or f"hash-{started_after.total_seconds()}-{processor}",
            started_at=clock.now + started_after,
            file_contents=stored,
        )
        session.add(batch)
        await session.commit()
        return batch


async def call(
    factory: Factory, clock: FakeClock, opts: SheinOptions, method: str, *args: Any
) -> Any:
    """A fresh scope, session and handler per call, as the engine does."""
    async with Scope(), factory() as session:
        handler = SheinBatchHandler(
            session=session,
            worker_id="worker-1",
            clock=clock,
            options=opts,
            cookie_cipher=TEST_CIPHER,
        )
        return await getattr(handler, method)(*args)


async def claim_one(factory: Factory, clock: FakeClock, opts: SheinOptions) -> StagingBatch:
    (batch,) = await call(factory, clock, opts, "fetch_work_items", 1)
    return batch  # type: ignore[no-any-return]


async def scrape_one_batch(factory: Factory, clock: FakeClock, site: FakeSite) -> StagingBatch:
    """Add a batch, claim it, process it and complete it, as the engine would; reload it."""
    await add_batch(factory, clock)
    opts = options(site)
    batch = await claim_one(factory, clock, opts)
    await call(factory, clock, opts, "process", batch)
    await call(factory, clock, opts, "complete", [batch])
    return await load_batch(factory, batch.id)


async def load_batch(factory: Factory, batch_id: Any) -> StagingBatch:
    async with factory() as session:
        statement = (
            select(StagingBatch)
            .where(StagingBatch.id == batch_id)
            .options(selectinload(StagingBatch.orders).selectinload(StagingPurchaseOrder.items))
        )
        return (await session.execute(statement)).scalar_one()


def test_the_handler_is_what_the_engine_expects() -> None:
    assert issubclass(SheinBatchHandler, WorkItemHandler)
    assert issubclass(SheinBatchHandler, ClaimLifecycle)
    assert SheinBatchHandler.options_model is SheinOptions


def test_options_defaults_and_pascal_case_keys() -> None:
    defaults = SheinOptions()
    assert defaults.base_url == "https://shein.com"
    assert defaults.request_delay == timedelta(seconds=2)
    assert defaults.request_timeout == timedelta(seconds=30)
    assert defaults.max_concurrent_requests == 1
    assert defaults.max_page_bytes == 16 * 1024 * 1024
    assert "Mozilla/5.0" in defaults.user_agent
    configured = SheinOptions.model_validate(
        {"baseurl": "http://127.0.0.1:9/", "REQUESTDELAY": "00:00:01.5", "MaxConcurrentRequests": 3}
    )
    assert configured.base_url == "http://127.0.0.1:9"
    assert configured.request_delay == timedelta(seconds=1.5)
    with pytest.raises(ValueError, match="base URL"):
        SheinOptions.model_validate({"BaseUrl": "ftp://shein.com"})
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        SheinOptions.model_validate({"MaxConcurrentRequests": 0})


async def test_fetch_respects_max_items(
    session_factory: Factory, clock: FakeClock, site: FakeSite
) -> None:
    for n in (6, 2, 4, 0, 5, 1, 3):
        await add_batch(session_factory, clock, started_after=timedelta(minutes=n))
    await add_batch(session_factory, clock, started_after=timedelta(minutes=-1), processor="Other")

    fetched = await call(session_factory, clock, options(site), "fetch_work_items", 5)

    assert len(fetched) == 5
    assert [b.started_at - clock.now for b in fetched] == [timedelta(minutes=n) for n in range(5)]
    assert all(b.batch_processor_name == "Shein" for b in fetched)
    assert all(b.status == ProcessingStatus.STARTED for b in fetched)
    rest = await call(session_factory, clock, options(site), "fetch_work_items", 5)
    assert len(rest) == 2


async def test_process_updates_the_database(
    session_factory: Factory, clock: FakeClock, site: FakeSite
) -> None:
    orders = sample_orders(4)
    serve_orders(site, orders)
    stored = await scrape_one_batch(session_factory, clock, site)
    assert stored.status == ProcessingStatus.COMPLETED
    assert stored.completed_at == clock.now
    assert stored.error_message is None
    assert_staged_exactly(stored, orders, site)
    assert all(r.headers["X-Test-Header"] == "yes" for r in site.requests)
    assert all(r.cookies["sessionID_shein"] == COOKIE_VALUES[0] for r in site.requests)


def assert_staged_exactly(
    batch: StagingBatch, orders: Sequence[FixtureOrder], site: FakeSite
) -> None:
    staged = {order.supplier_reference: order for order in batch.orders}
    assert sorted(staged) == sorted(order.billno for order in orders)
    for expected in orders:
        row = staged[expected.billno]
        assert row.status == ProcessingStatus.COMPLETED
        assert row.error_message is None
        assert row.order_date == expected.order_date
        assert row.is_imported is False
        assert json.loads(row.raw_data or "")["billno"] == expected.billno
        items = sorted(row.items, key=lambda item: item.supplier_reference or "")
        assert len(items) == len(expected.items)
        for item, want in zip(items, sorted(expected.items, key=lambda i: i.goods_sn), strict=True):
            assert item.supplier_reference == want.goods_sn
            assert item.name == want.name
            assert item.description == want.description
            assert item.quantity == want.quantity
            assert item.listed_unit_price == Decimal(want.unit_price)
            assert item.actual_unit_price == Decimal(want.unit_price)
            assert isinstance(item.actual_unit_price, Decimal)
            slug = want.url_name.replace(" ", "-")
            assert item.supplier_product_url == f"{site.url}/{slug}-p-{want.goods_id}.html"
            assert json.loads(item.raw_data or "")["goods_id"] == want.goods_id
            assert item.status == CandidateStatus.PENDING
            assert item.is_imported is False


async def test_failed_orders_are_recorded_and_the_batch_completes(
    session_factory: Factory, clock: FakeClock, site: FakeSite
) -> None:
    orders = sample_orders(3)
    serve_orders(site, orders)
    site.serve(f"/user/orders/detail/{orders[0].billno}", Reply(status=404))
    site.serve(f"/user/orders/detail/{orders[2].billno}", Reply(status=500))
    stored = await scrape_one_batch(session_factory, clock, site)
    assert stored.status == ProcessingStatus.COMPLETED
    staged = {order.supplier_reference: order for order in stored.orders}
    not_found, fine, down = (staged[o.billno] for o in orders)
    assert not_found.status == ProcessingStatus.FAILED
    assert not_found.error_message and "HTTP 404 Not Found" in not_found.error_message
    assert not_found.order_date == orders[0].order_date and not_found.items == []
    assert down.status == ProcessingStatus.FAILED
    assert down.error_message and "HTTP 500" in down.error_message
    assert fine.status == ProcessingStatus.COMPLETED and len(fine.items) == len(orders[1].items)


async def test_a_rerun_does_not_duplicate_orders(
    session_factory: Factory, clock: FakeClock, site: FakeSite
) -> None:
    orders = sample_orders(3)
    serve_orders(site, orders)
    site.serve(f"/user/orders/detail/{orders[2].billno}", Reply(status=404))
    await add_batch(session_factory, clock)
    opts = options(site)
    batch = await claim_one(session_factory, clock, opts)
    await call(session_factory, clock, opts, "process", batch)

    # The worker "crashed" before completing; the lease runs out and another run happens, in
    # which order 0 now fails, order 1 changed its quantities, and order 2 is back.
    changed = FixtureOrder(
        orders[1].billno,
        orders[1].add_time,
        tuple(
            type(item)(**{**item.__dict__, "quantity": item.quantity + 10})
            for item in orders[1].items
        ),
    )
    serve_orders(site, [orders[0], changed, orders[2]])
    site.serve(f"/user/orders/detail/{orders[0].billno}", Reply(status=404))
    clock.advance(opts.claim_lease + timedelta(seconds=1))
    await pass_time(session_factory, StagingBatch, opts.claim_lease + timedelta(seconds=1))
    again = await claim_one(session_factory, clock, opts)
    assert again.id == batch.id and again.attempts == 2
    await call(session_factory, clock, opts, "process", again)

    stored = await load_batch(session_factory, batch.id)
    assert len(stored.orders) == 3
    staged = {order.supplier_reference: order for order in stored.orders}
    # A failure does not undo what an earlier run staged cleanly...
    assert staged[orders[0].billno].status == ProcessingStatus.COMPLETED
    assert len(staged[orders[0].billno].items) == len(orders[0].items)
    # ...a new scrape replaces the items instead of adding to them...
    assert sorted(i.quantity for i in staged[changed.billno].items) == sorted(
        i.quantity for i in changed.items
    )
    # ...and an order that failed before is staged once it scrapes.
    assert staged[orders[2].billno].status == ProcessingStatus.COMPLETED
    assert staged[orders[2].billno].error_message is None
    assert len(staged[orders[2].billno].items) == len(orders[2].items)


EXPIRED = datetime(2025, 12, 31, 23, 0, tzinfo=UTC)  # an hour before the fake clock starts
BAD_COOKIE_FILE = cookie_file_text().replace('"secure": false', '"secure": "maybe"', 1)


@pytest.mark.parametrize(
    ("contents", "expected"),
    [
        ("{not json at all", "cookie file is not valid JSON"),
        (BAD_COOKIE_FILE, "cookie file is invalid: cookies.sessionID_shein.secure"),
        (cookie_file_text(expires_at=EXPIRED), "cookies expired at 2025-12-31T23:00:00+00:00"),
        ("", "the batch has no cookie file contents"),
    ],
)
async def test_bad_cookie_files_fail_the_batch_at_once(
    session_factory: Factory,
    clock: FakeClock,
    site: FakeSite,
    contents: str,
    expected: str,
) -> None:
    await add_batch(session_factory, clock, contents=contents)
    opts = options(site)
    batch = await claim_one(session_factory, clock, opts)

    with pytest.raises(PermanentError, match=re.escape(expected)) as caught:
        await call(session_factory, clock, opts, "process", batch)
    await call(session_factory, clock, opts, "fail", batch, caught.value)

    stored = await load_batch(session_factory, batch.id)
    assert stored.status == ProcessingStatus.FAILED
    assert stored.error_message is not None and expected in stored.error_message
    assert site.requests == []
    for value in COOKIE_VALUES:
        assert value not in (stored.error_message or "") + (stored.last_error or "")


async def test_a_site_that_is_down_schedules_a_retry(
    session_factory: Factory, clock: FakeClock, site: FakeSite
) -> None:
    site.serve(LIST_PATH, Reply(status=503))
    await add_batch(session_factory, clock)
    opts = options(site)
    batch = await claim_one(session_factory, clock, opts)

    with pytest.raises(PageFetchError, match="HTTP 503") as caught:
        await call(session_factory, clock, opts, "process", batch)
    await call(session_factory, clock, opts, "fail", batch, caught.value)

    stored = await load_batch(session_factory, batch.id)
    assert stored.status == ProcessingStatus.QUEUED
    assert stored.next_attempt_at is not None
    assert stored.next_attempt_at > await database_now(session_factory)
    assert stored.last_error and "HTTP 503 Service Unavailable" in stored.last_error
    assert len(site.requests) == 2  # RetryAttempts


async def test_bad_inputs_fail_their_own_batch_and_never_leak_a_cookie(
    session_factory: Factory, clock: FakeClock, site: FakeSite, captured_logs: list[str]
) -> None:
    """Through the real engine: every bad input in the issue's list, one batch each, plus a good
    batch and a good batch with bad orders. Each ends with a readable error on the batch or the
    order; the good ones are unaffected; no cookie value reaches a log line or a stored error."""
    good, partial = sample_orders(2, prefix="GOOD"), sample_orders(3, prefix="PART")
    bad_item = detail_page(partial[1], size=20_000).replace('"quantity": "2"', '"quantity": "two"')
    truncated = list_page(good, size=50_000)
    truncated = truncated[: truncated.index('"orderGoodsList"') + 5]
    scenarios: dict[str, tuple[dict[str, str | Reply], str]] = {
        "good": ({}, ""),
        "partial": (
            {
                f"/user/orders/detail/{partial[0].billno}": Reply(status=404),
                f"/user/orders/detail/{partial[1].billno}": bad_item,
                f"/user/orders/detail/{partial[2].billno}": Reply(status=500),
            },
            "",
        ),
        "no-data": (
            {LIST_PATH: list_page([], size=50_000).replace("gbRawData", "gbOther")},
            "no `var gbRawData",
        ),
        "truncated": ({LIST_PATH: truncated}, "gbRawData is truncated"),
        "not-json": (
            {LIST_PATH: list_page(good, size=20_000).replace('{"order_list"', "{order_list")},
            "not valid JSON",
        ),
        "no-order-list": (
            {LIST_PATH: list_page(good, size=20_000).replace("order_list", "orders")},
            "has no gbRawData.order_list",
        ),
        "huge": (
            {LIST_PATH: Reply(body=b" " * (20 * 1024 * 1024), chunked=True)},
            "larger than the 16,777,216 byte limit",
        ),
    }
    serve_orders(site, good + partial)
    for n, (name, (pages, _)) in enumerate(scenarios.items()):
        session_value = f"s3cr3t-{name}-{n}-zz"
        if name == "partial":
            site.serve_session(session_value, LIST_PATH, list_page(partial, size=50_000))
        for path, reply in pages.items():
            site.serve_session(session_value, path, reply)
        await add_batch(
            session_factory,
            clock,
            contents=cookie_file_text(session_value=session_value),
            started_after=timedelta(seconds=n),
        )
    await add_batch(session_factory, clock, contents="{", started_after=timedelta(seconds=50))
    await add_batch(
        session_factory,
        clock,
        contents=cookie_file_text(expires_at=EXPIRED),
        started_after=timedelta(seconds=51),
        file_hash="expired",
    )
    engine = shein_engine(session_factory, clock, options(site), max_concurrency=3)

    report = await engine.run_cycle()

    assert (report.succeeded, report.failed) == (2, len(scenarios) - 2 + 2)
    async with session_factory() as session:
        batches = (
            (
                await session.execute(
                    select(StagingBatch)
                    .order_by(StagingBatch.started_at)
                    .options(selectinload(StagingBatch.orders))
                )
            )
            .scalars()
            .all()
        )
    *scraped, malformed, expired = batches
    for batch, (name, (_, expected)) in zip(scraped, scenarios.items(), strict=True):
        if name in ("good", "partial"):
            assert batch.status == ProcessingStatus.COMPLETED, name
            assert batch.error_message is None
        else:
            assert batch.status == ProcessingStatus.FAILED, name
            assert batch.error_message and expected in batch.error_message, name
    good_batch, partial_batch = scraped[0], scraped[1]
    assert all(o.status == ProcessingStatus.COMPLETED for o in good_batch.orders)
    partial_errors = {o.supplier_reference: o.error_message for o in partial_batch.orders}
    assert "HTTP 404" in (partial_errors[partial[0].billno] or "")
    assert "quantity 'two' is not a whole number" in (partial_errors[partial[1].billno] or "")
    assert "HTTP 500" in (partial_errors[partial[2].billno] or "")
    assert malformed.status == ProcessingStatus.FAILED
    assert malformed.error_message and "cookie file is not valid JSON" in malformed.error_message
    assert expired.error_message and "cookies expired at" in expired.error_message

    stored_errors = " ".join(
        str(text)
        for batch in batches
        for text in [batch.error_message, batch.last_error]
        + [o.error_message for o in batch.orders]
    )
    logged = "\n".join(captured_logs)
    assert "Error processing work item" in logged  # the engine did log the failures
    secrets = [*COOKIE_VALUES, *(f"s3cr3t-{name}-{n}-zz" for n, name in enumerate(scenarios))]
    for secret in secrets:
        assert secret not in logged
        assert secret not in stored_errors


async def test_references_longer_than_their_columns_fail_their_order_not_the_batch(
    session_factory: Factory, clock: FakeClock, site: FakeSite
) -> None:
    """On PostgreSQL a 201-character order number or item code used to fail the whole batch's
    insert ("value too long"), rolling back the good orders; SQLite stored it silently."""
    good, long_sku = sample_orders(2)
    long_entry = '{"billno": "' + "X" * 201 + '", "addTime": 1700000000}, '
    page = list_page([good, long_sku], size=PAGE_BYTES).replace(
        '"order_list": [', '"order_list": [' + long_entry, 1
    )
    site.serve(LIST_PATH, page)
    site.serve(f"/user/orders/detail/{good.billno}", detail_page(good, size=PAGE_BYTES))
    bad_item = detail_page(long_sku, size=PAGE_BYTES).replace(
        f'"goods_sn": "{long_sku.items[0].goods_sn}"', f'"goods_sn": "{"S" * 201}"'
    )
    site.serve(f"/user/orders/detail/{long_sku.billno}", bad_item)
    stored = await scrape_one_batch(session_factory, clock, site)
    assert stored.status == ProcessingStatus.COMPLETED
    staged = {order.supplier_reference: order for order in stored.orders}
    assert sorted(staged) == sorted([good.billno, long_sku.billno, "X" * 200])
    assert staged[good.billno].status == ProcessingStatus.COMPLETED
    assert len(staged[good.billno].items) == len(good.items)
    cut = staged["X" * 200]
    assert cut.status == ProcessingStatus.FAILED and cut.items == []
    assert cut.error_message == (
        f"order number {'X' * 20!r}... is 201 characters long; staging holds at most 200"
    )
    sku_failure = staged[long_sku.billno]
    assert sku_failure.status == ProcessingStatus.FAILED
    assert sku_failure.error_message and (
        f"item 1 goods_sn {'S' * 20!r}... is 201 characters long; staging holds at most 200"
        in sku_failure.error_message
    )


@pytest.mark.parametrize(
    "session_value", ["s3cr3t-é-session", "s3cr3t\r\nX-Evil: 1", "s3cr3t session"]
)
async def test_a_cookie_the_http_header_cannot_carry_fails_the_batch_at_once(
    session_factory: Factory,
    clock: FakeClock,
    site: FakeSite,
    captured_logs: list[str],
    session_value: str,
) -> None:
    serve_orders(site, sample_orders(1))
    await add_batch(session_factory, clock, contents=cookie_file_text(session_value=session_value))
    opts = options(site)
    batch = await claim_one(session_factory, clock, opts)

    with pytest.raises(PermanentError) as caught:
        await call(session_factory, clock, opts, "process", batch)
    await call(session_factory, clock, opts, "fail", batch, caught.value)

    expected = (
        "cookie file is invalid: cookies.sessionID_shein.value: Value error, a cookie value must "
        "be printable ASCII without spaces, quotes, commas, semicolons or backslashes "
        "(RFC 6265 cookie-octets)"
    )
    assert str(caught.value) == expected
    stored = await load_batch(session_factory, batch.id)
    assert stored.status == ProcessingStatus.FAILED
    assert stored.error_message and expected in stored.error_message
    assert site.requests == []
    shown = (stored.error_message or "") + (stored.last_error or "") + "\n".join(captured_logs)
    assert "s3cr3t" not in shown and "position" not in shown


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-Region": "Zürich"}, "header X-Region must be printable ASCII text"),
        ({"X-Region": "za\r\nX-Evil: 1"}, "header X-Region must be printable ASCII text"),
        ({"X Region": "za"}, "header name 'X Region' is not an HTTP token"),
    ],
)
def test_extra_headers_httpx_cannot_send_are_refused_at_start_up(
    headers: dict[str, str], expected: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(expected)):
        SheinOptions.model_validate({"ExtraHeaders": headers})
    assert SheinOptions.model_validate({"ExtraHeaders": {"Accept-Language": "en-ZA, en;q=0.9"}})


def shein_engine(
    factory: async_sessionmaker[AsyncSession],
    clock: FakeClock,
    opts: SheinOptions,
    *,
    max_concurrency: int = 2,
) -> WorkItemProcessingEngine:
    """An engine over the Shein handler alone, each call in its own scope with its own session."""
    return WorkItemProcessingEngine(
        [
            HandlerRegistration(
                lambda: SheinBatchHandler(
                    session=scoped(factory),
                    worker_id="w1",
                    clock=clock,
                    options=opts,
                    cookie_cipher=TEST_CIPHER,
                ),
                name="Shein",
                max_items_per_cycle=20,
                purpose=ProcessorPurpose.INGESTION,
            )
        ],
        max_concurrency=max_concurrency,
    )
