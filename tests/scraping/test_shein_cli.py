"""The Shein flow as a user drives it: `shein submit`, `shein batches`, `run --once`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.fixtures.cli import cli_environment, run_myapp
from tests.scraping.conftest import COOKIE_VALUES, cookie_file_text
from tests.scraping.pages import detail_page, list_page, sample_orders
from tests.scraping.server import FakeSite


@pytest.fixture
def env(tmp_path: Path, db_url: str, site: FakeSite) -> dict[str, str]:
    config = tmp_path / "config"
    config.mkdir()
    (config / "appsettings.json").write_text("{}")
    return cli_environment(
        config,
        ConnectionStrings__Database=db_url,
        Logging__LogLevel__Default="Warning",
        BackgroundProcessing__Shein__BaseUrl=site.url,
        BackgroundProcessing__Shein__RequestDelay="0",
        # Only the handler under test: the others need Azure peers.
        BackgroundProcessing__BlobCleanup__Enabled="false",
    )


async def test_submit_list_scrape_and_list_again(
    env: dict[str, str], site: FakeSite, tmp_path: Path
) -> None:
    orders = sample_orders(3)
    site.serve("/user/orders/list", list_page(orders, size=50_000))
    for order in orders:
        site.serve(f"/user/orders/detail/{order.billno}", detail_page(order, size=50_000))
    cookies = tmp_path / "cookies.json"
    cookies.write_text(cookie_file_text())

    submitted = await run_myapp(env, "shein", "submit", str(cookies), "--supplier", "ZA")
    assert submitted.code == 0, submitted.output
    batch_id = submitted.output.split("Queued batch ")[1].split()[0]
    again = await run_myapp(env, "shein", "submit", str(cookies))
    queued = await run_myapp(env, "shein", "batches")
    cycle = await run_myapp(env, "run", "--once")
    done = await run_myapp(env, "shein", "batches")
    retried = await run_myapp(env, "shein", "retry", batch_id)
    requeued = await run_myapp(env, "shein", "batches")

    assert again.code == 1
    assert f"already submitted as batch {batch_id}" in again.output
    assert batch_id in queued.output and "Queued" in queued.output and "ZA" in queued.output
    assert cycle.code == 0, cycle.output
    assert "Shein" in cycle.output and "SUCCEEDED" in cycle.output
    row = next(line for line in done.output.splitlines() if line.startswith(batch_id))
    _, status, supplier, _, _, orders, failed = re.split(r"\s{2,}", row.strip())
    assert (status, supplier, orders, failed) == ("Completed", "ZA", "3", "0")
    assert retried.code == 0, retried.output
    assert f"Queued batch {batch_id} again" in retried.output
    row = next(line for line in requeued.output.splitlines() if line.startswith(batch_id))
    assert re.split(r"\s{2,}", row.strip())[1] == "Queued"
    for output in (submitted, again, queued, cycle, done, retried, requeued):
        assert not any(value in output.output for value in COOKIE_VALUES)


async def test_a_malformed_cookie_file_is_refused_with_a_readable_message(
    env: dict[str, str], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"domain": "shein.com", "cookies": {"s": {"value": "' + COOKIE_VALUES[0])

    result = await run_myapp(env, "shein", "submit", str(broken))

    assert result.code == 1
    assert "Not submitted:" in result.output
    assert "Traceback" not in result.output
    assert COOKIE_VALUES[0] not in result.output
