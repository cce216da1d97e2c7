"""requeue_batch: a finished Shein batch back in the queue, and what scraping it again does."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from myapp.data.models import (
    ProcessingStatus,
    StagingBatch,
    StagingPurchaseOrder,
    StagingPurchaseOrderItem,
)
from myapp.scraping.batches import BatchNotFoundError, RequeueError, requeue_batch
from myapp.scraping.cookie_limits import DEFAULT_MAX_COOKIE_FILE_BYTES
from myapp.scraping.cookie_storage import read_and_seal
from tests.fixtures.clock import FakeClock
from tests.scraping.at_rest import stored_contents
from tests.scraping.conftest import TEST_CIPHER, cookie_file_text
from tests.scraping.pages import sample_orders
from tests.scraping.server import FakeSite, Reply
from tests.scraping.test_shein_handler import (
    add_batch,
    call,
    claim_one,
    load_batch,
    options,
    scrape_one_batch,
    serve_orders,
)

Factory = async_sessionmaker[AsyncSession]


async def finished_batch(
    factory: Factory, clock: FakeClock, status: ProcessingStatus, **values: object
) -> StagingBatch:
    batch = await add_batch(factory, clock)
    async with factory() as session:
        stored = await session.get_one(StagingBatch, batch.id)
        stored.status = status
        stored.attempts = 3
        stored.next_attempt_at = clock.now + timedelta(minutes=5)
        stored.locked_by = "worker-old"
        stored.locked_until = clock.now + timedelta(minutes=1)
        stored.last_error = "HTTP 503 Service Unavailable"
        stored.error_message = "PermanentError: cookies expired"
        stored.completed_at = clock.now
        for name, value in values.items():
            setattr(stored, name, value)
        await session.commit()
    return batch


@pytest.mark.parametrize("status", [ProcessingStatus.COMPLETED, ProcessingStatus.FAILED])
async def test_a_finished_batch_goes_back_to_the_queue_with_its_bookkeeping_cleared(
    session_factory: Factory, clock: FakeClock, status: ProcessingStatus
) -> None:
    batch = await finished_batch(session_factory, clock, status)
    sealed = await stored_contents(session_factory, batch.id)
    clock.advance(timedelta(hours=2))

    async with session_factory() as session:
        returned = await requeue_batch(session, batch.id, clock)

    async with session_factory() as session:
        stored = await session.get_one(StagingBatch, batch.id)
    for row in (returned, stored):
        assert row.id == batch.id
        assert row.status == ProcessingStatus.QUEUED
        assert row.attempts == 0
        assert (row.next_attempt_at, row.locked_by, row.locked_until) == (None, None, None)
        assert (row.last_error, row.error_message, row.completed_at) == (None, None, None)
        assert row.started_at == clock.now
    assert await stored_contents(session_factory, batch.id) == sealed


@pytest.mark.parametrize("status", [ProcessingStatus.COMPLETED, ProcessingStatus.FAILED])
async def test_a_batch_whose_cookie_file_was_erased_needs_the_file_again(
    session_factory: Factory, clock: FakeClock, tmp_path: Path, status: ProcessingStatus
) -> None:
    batch = await finished_batch(session_factory, clock, status, file_contents=None)

    async with session_factory() as session:
        with pytest.raises(RequeueError) as caught:
            await requeue_batch(session, batch.id, clock)
    path = tmp_path / "cookies.json"
    path.write_text(cookie_file_text(session_value="fresh-session-value"))
    cookie_file = await read_and_seal(path, TEST_CIPHER, DEFAULT_MAX_COOKIE_FILE_BYTES, clock())
    async with session_factory() as session:
        await requeue_batch(session, batch.id, clock, cookie_file)

    assert str(caught.value) == (
        f"batch {batch.id} is {status.value} and its cookie file was erased when it finished: "
        f"give it again with `shein retry {batch.id} --cookies FILE`"
    )
    async with session_factory() as session:
        stored = await session.get_one(StagingBatch, batch.id)
    assert stored.status == ProcessingStatus.QUEUED and stored.attempts == 0
    token = await stored_contents(session_factory, batch.id)
    assert token == cookie_file.token and TEST_CIPHER.open(token) == path.read_bytes()
    assert "fresh-session-value" not in token


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (ProcessingStatus.QUEUED, "is Queued: it is already waiting to be scraped"),
        (ProcessingStatus.STARTED, "is Started: a worker is scraping it now"),
        (
            ProcessingStatus.CANCELLED,
            "is Cancelled: only a Completed or Failed batch can be scraped again",
        ),
    ],
)
async def test_a_batch_that_is_not_finished_is_refused_and_left_as_it_is(
    session_factory: Factory, clock: FakeClock, status: ProcessingStatus, reason: str
) -> None:
    batch = await finished_batch(session_factory, clock, status)

    async with session_factory() as session:
        with pytest.raises(RequeueError) as caught:
            await requeue_batch(session, batch.id, clock)

    assert str(caught.value) == f"batch {batch.id} {reason}"
    assert (caught.value.batch_id, caught.value.status) == (batch.id, status)
    async with session_factory() as session:
        stored = await session.get_one(StagingBatch, batch.id)
    assert stored.status == status and stored.attempts == 3 and stored.locked_by == "worker-old"


@pytest.mark.parametrize("kind", ["unknown", "deleted", "another processor"])
async def test_an_unknown_batch_is_refused(
    session_factory: Factory, clock: FakeClock, kind: str
) -> None:
    batch_id = uuid.uuid4()
    if kind == "deleted":
        batch_id = (
            await finished_batch(
                session_factory, clock, ProcessingStatus.COMPLETED, deleted_at=clock.now
            )
        ).id
    elif kind == "another processor":
        batch_id = (
            await finished_batch(
                session_factory, clock, ProcessingStatus.FAILED, batch_processor_name="Other"
            )
        ).id

    async with session_factory() as session:
        with pytest.raises(BatchNotFoundError) as caught:
            await requeue_batch(session, batch_id, clock)

    assert str(caught.value) == f"there is no Shein batch {batch_id}"
    assert caught.value.status is None


async def test_scraping_a_requeued_batch_again_fills_in_what_failed_without_duplicates(
    session_factory: Factory, clock: FakeClock, site: FakeSite, tmp_path: Path
) -> None:
    orders = sample_orders(3)
    serve_orders(site, orders)
    missing = orders[2]
    site.serve(f"/user/orders/detail/{missing.billno}", Reply(status=404))
    first = await scrape_one_batch(session_factory, clock, site)
    first_orders = {order.supplier_reference: order for order in first.orders}
    assert first_orders[missing.billno].status == ProcessingStatus.FAILED
    # One order was imported meanwhile, and edited by whoever imported it: a re-scrape must
    # leave it exactly as it is.
    imported = orders[0]
    async with session_factory() as session:
        row = await session.get_one(StagingPurchaseOrder, first_orders[imported.billno].id)
        row.is_imported = True
        row.raw_data = '{"edited": true}'
        await session.commit()
        imported_at = row.updated_at

    clock.advance(timedelta(hours=1))
    path = tmp_path / "cookies.json"
    path.write_text(cookie_file_text())
    cookie_file = await read_and_seal(path, TEST_CIPHER, DEFAULT_MAX_COOKIE_FILE_BYTES, clock())
    async with session_factory() as session:
        await requeue_batch(session, first.id, clock, cookie_file)
    serve_orders(site, orders)  # the page that was missing is back
    opts = options(site)
    again = await claim_one(session_factory, clock, opts)
    assert again.id == first.id and again.attempts == 1
    await call(session_factory, clock, opts, "process", again)
    await call(session_factory, clock, opts, "complete", [again])

    second = await load_batch(session_factory, first.id)
    assert second.status == ProcessingStatus.COMPLETED and second.completed_at == clock.now
    staged = {order.supplier_reference: order for order in second.orders}
    assert sorted(staged) == sorted(order.billno for order in orders)
    retried = staged[missing.billno]
    assert retried.id == first_orders[missing.billno].id
    assert retried.status == ProcessingStatus.COMPLETED and retried.error_message is None
    assert len(retried.items) == len(missing.items)
    untouched = staged[imported.billno]
    assert untouched.is_imported and untouched.raw_data == '{"edited": true}'
    assert untouched.updated_at == imported_at
    for order in orders:
        assert staged[order.billno].id == first_orders[order.billno].id
    async with session_factory() as session:
        order_rows = await session.scalar(select(func.count()).select_from(StagingPurchaseOrder))
        item_rows = await session.scalar(select(func.count()).select_from(StagingPurchaseOrderItem))
    assert order_rows == len(orders)
    assert item_rows == sum(len(order.items) for order in orders)
