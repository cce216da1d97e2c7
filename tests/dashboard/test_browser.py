"""The dashboard in a real browser (Chromium via Playwright), on SQLite and PostgreSQL: the
overview, a handler's failed items filtered and searched, requeueing one and all, and a
running worker processing what was requeued."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from playwright.async_api import Locator, Page, expect

from myapp.data.database import create_engine
from tests.dashboard.browser import screenshot
from tests.dashboard.chores import HANDLER
from tests.dashboard.conftest import Serve
from tests.dashboard.seeding import Seeded, seed_chores, seed_outcomes, seed_stale_worker
from tests.dashboard.worker import running_worker

WORKER_WAIT_S = 60

ERRORS = [
    "ValueError: price page returned 503 for sku-17",
    "TimeoutError: competitor site timed out after 30 s",
    "KeyError: 'price' missing from the product JSON",
]


async def seeded(url: str) -> Seeded:
    engine = create_engine(url)
    try:
        found = await seed_chores(engine, completed=40, failed=ERRORS, queued=0)
        await seed_outcomes(engine, HANDLER, datetime.now(UTC))
    finally:
        await engine.dispose()
    return found


async def test_the_overview_shows_every_handler(page: Page, serve: Serve, chores_url: str) -> None:
    await seeded(chores_url)
    url = await serve()

    await page.goto(url)

    for name in ("Shein", "ImageVectorization", "BlobCleanup", HANDLER):
        await expect(page.locator(f'[data-handler="{name}"]')).to_be_visible()
    chores = page.locator(f'[data-handler="{HANDLER}"]')
    await expect(chores.locator(".count-completed b")).to_have_text("40")
    await expect(chores.locator(".count-failed b")).to_have_text("3")
    await expect(chores.locator(".last-error")).to_contain_text(ERRORS[0].split(":")[0])
    await expect(chores.locator("figure.chart svg")).to_have_count(2)
    await expect(chores.locator("figure.chart svg rect.ok").first).to_be_attached()
    vectorization = page.locator('[data-handler="ImageVectorization"]')
    await expect(vectorization).to_contain_text("disabled")
    await expect(vectorization.locator(".why").first).to_contain_text("AzureAI")
    await screenshot(page, "dashboard-overview")


async def test_filter_failed_search_the_error_and_requeue_one_then_all(
    page: Page, serve: Serve, chores_url: str
) -> None:
    seeded_rows = await seeded(chores_url)
    url = await serve()
    await page.goto(url)

    await page.locator(f'[data-handler="{HANDLER}"] .count-failed a').click()
    rows = page.locator("table.items tbody tr[data-id]")
    await expect(rows).to_have_count(3)
    for state in await rows.evaluate_all("rows => rows.map(r => r.dataset.state)"):
        assert state == "failed"

    await page.fill("#search", "timed out")
    await page.get_by_role("button", name="Filter").click()
    await expect(rows).to_have_count(1)
    await expect(rows.first.locator("td.error")).to_contain_text("competitor site timed out")
    await screenshot(page, "dashboard-items")
    await page.select_option("#status", "")  # any state
    await page.fill("#search", "SKU-17")  # case does not matter
    await page.get_by_role("button", name="Filter").click()
    await expect(rows).to_have_count(1)
    await expect(rows.first.locator("td.error")).to_contain_text("sku-17")
    await page.fill("#search", "timed out")
    await page.get_by_role("button", name="Filter").click()

    timed_out = next(id for id, error in seeded_rows.failed.items() if "timed out" in error)
    await rows.first.locator("td a").first.click()
    await expect(page.locator("dl.detail")).to_contain_text("5 of 5")
    await expect(page.locator("pre.error")).to_have_text(ERRORS[1])
    await screenshot(page, "dashboard-item")
    await page.get_by_role("button", name="Requeue").click()
    await expect(page.locator(".notice")).to_have_text(f"Requeued 1 item(s) of {HANDLER}.")
    await expect(page.locator("#item-state")).to_have_text("queued")
    await expect(page.locator("dl.detail")).to_contain_text("0 of 5")
    assert str(timed_out) in page.url

    await page.goto(f"{url}/handlers/{HANDLER}?status=failed")
    await expect(rows).to_have_count(2)
    await page.get_by_role("button", name="Requeue all failed").click()
    await expect(page.locator(".notice")).to_have_text(f"Requeued 2 item(s) of {HANDLER}.")
    await page.goto(f"{url}/handlers/{HANDLER}?status=failed")
    await expect(rows).to_have_count(0)
    await page.goto(f"{url}/handlers/{HANDLER}?status=queued")
    await expect(rows).to_have_count(3)


async def reload_until(page: Page, url: str, done: Callable[[], Awaitable[bool]]) -> None:
    """Reload `url` until `done()`: a bounded wait for a worker in another process."""
    async with asyncio.timeout(WORKER_WAIT_S):
        while True:
            await page.goto(url)
            if await done():
                return
            await asyncio.sleep(0.25)


async def test_requeued_items_and_run_now_are_processed_by_a_running_worker(
    page: Page, serve: Serve, chores_url: str, tmp_path: Path
) -> None:
    engine = create_engine(chores_url)
    seeded_rows = await seed_chores(engine, completed=2, failed=ERRORS)
    await seed_stale_worker(engine)
    await engine.dispose()
    url = await serve()

    async with running_worker(tmp_path / "worker", chores_url) as log:
        await page.goto(url)
        card = page.locator(f'[data-handler="{HANDLER}"]')
        await card.get_by_role("button", name="Requeue all failed").click()
        await expect(page.locator(".notice")).to_have_text(f"Requeued 3 item(s) of {HANDLER}.")
        await page.get_by_role("button", name="Run now").click()
        await expect(page.locator(".notice")).to_have_text(
            f"Woke the workers: {HANDLER} fetches now."
        )

        rows = page.locator("table.items tbody tr[data-id]")
        completed = f"{url}/handlers/{HANDLER}?status=completed"
        await reload_until(page, completed, lambda: _has_count(rows, 5))
        shown = set(await rows.evaluate_all("rows => rows.map(r => r.dataset.id)"))
        assert {str(id) for id in seeded_rows.failed} <= shown
        await page.goto(f"{url}/workers")
        live = page.locator("#live-workers tbody tr[data-worker]")
        await expect(live).to_have_count(1)
        await expect(live).to_contain_text(HANDLER)
        gone = page.locator("#gone-workers tbody tr[data-worker]")
        await expect(gone.locator(".badge")).to_have_text("stale")
        await expect(gone).to_contain_text("vanished-host")
        await screenshot(page, "dashboard-workers")
    assert any("Worker" in line and "starting" in line for line in log)


async def _has_count(rows: Locator, count: int) -> bool:
    return await rows.count() == count


async def test_a_post_without_its_csrf_token_is_refused(
    page: Page, serve: Serve, chores_url: str
) -> None:
    seeded_rows = await seeded(chores_url)
    url = await serve()
    await page.goto(f"{url}/handlers/{HANDLER}?status=failed")
    row = page.locator("table.items tbody tr[data-id]").first
    await row.locator("input[name=csrf_token]").evaluate("input => input.remove()")

    async with page.expect_response(lambda r: r.request.method == "POST") as posted:
        await row.get_by_role("button", name="Requeue").click()

    response = await posted.value
    assert response.status == 403
    await expect(page.locator("body")).to_contain_text("CSRF token missing or invalid")
    await page.goto(f"{url}/handlers/{HANDLER}?status=failed")
    await expect(page.locator("table.items tbody tr[data-id]")).to_have_count(
        len(seeded_rows.failed)
    )
