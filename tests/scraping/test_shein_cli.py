"""The Shein flow as a user drives it: `shein submit`, `shein batches`, `run --once`, `shein
retry`, and what a copy of the database holds along the way."""

from __future__ import annotations

import json
import re
import stat
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from myapp.data.database import create_engine, create_session_factory
from myapp.data.models import StagingBatch
from tests.fixtures.cli import cli_environment, run_myapp, run_split
from tests.scraping.at_rest import database_dump, pieces, stored_contents
from tests.scraping.conftest import (
    COOKIE_VALUES,
    TEST_COOKIE_KEY,
    cookie_file_data,
    cookie_file_text,
)
from tests.scraping.pages import detail_page, list_page, sample_orders
from tests.scraping.server import FakeSite

# Planted in the submitted file: it must never be found in a dump of the database.
PLANTED_VALUE = "pl4nted-SESSION-c00k1e-7e3a9b"
DEEP = 200_000


def config_dir(tmp_path: Path) -> Path:
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    (config / "appsettings.json").write_text("{}")
    return config


def is_sqlite(db_url: str) -> bool:
    return db_url.startswith("sqlite")


@pytest.fixture
def env(tmp_path: Path, db_url: str, site: FakeSite) -> dict[str, str]:
    # PostgreSQL needs Secrets:CookieKey; SQLite runs without it, on a key file.
    key = {} if is_sqlite(db_url) else {"Secrets__CookieKey": TEST_COOKIE_KEY}
    return cli_environment(
        config_dir(tmp_path),
        ConnectionStrings__Database=db_url,
        Logging__LogLevel__Default="Warning",
        BackgroundProcessing__Shein__BaseUrl=site.url,
        BackgroundProcessing__Shein__RequestDelay="0",
        # Only the handler under test: the others need Azure peers.
        BackgroundProcessing__BlobCleanup__Enabled="false",
        **key,
    )


async def batch_count(db_url: str) -> int:
    engine = create_engine(db_url)
    try:
        async with create_session_factory(engine)() as session:
            return await session.scalar(select(func.count()).select_from(StagingBatch)) or 0
    finally:
        await engine.dispose()


async def sealed_token(db_url: str, batch_id: str) -> str | None:
    engine = create_engine(db_url)
    try:
        return await stored_contents(create_session_factory(engine), uuid.UUID(batch_id))
    finally:
        await engine.dispose()


async def test_submit_list_scrape_and_list_again(
    env: dict[str, str], site: FakeSite, tmp_path: Path, db_url: str
) -> None:
    orders = sample_orders(3)
    site.serve("/user/orders/list", list_page(orders, size=50_000))
    for order in orders:
        site.serve(f"/user/orders/detail/{order.billno}", detail_page(order, size=50_000))
    cookies = tmp_path / "cookies.json"
    cookies.write_text(cookie_file_text(session_value=PLANTED_VALUE))

    submitted = await run_myapp(env, "shein", "submit", str(cookies), "--supplier", "ZA")
    assert submitted.code == 0, submitted.output
    batch_id = submitted.output.split("Queued batch ")[1].split()[0]
    token = await sealed_token(db_url, batch_id)
    after_submit = await database_dump(db_url)
    again = await run_myapp(env, "shein", "submit", str(cookies))
    queued = await run_myapp(env, "shein", "batches")
    cycle = await run_myapp(env, "run", "--once")
    done = await run_myapp(env, "shein", "batches")
    after_completion = await database_dump(db_url)
    refused = await run_myapp(env, "shein", "retry", batch_id)
    retried = await run_myapp(env, "shein", "retry", batch_id, "--cookies", str(cookies))
    requeued = await run_myapp(env, "shein", "batches")

    assert again.code == 1
    assert f"already submitted as batch {batch_id}" in again.output
    assert batch_id in queued.output and "Queued" in queued.output and "ZA" in queued.output
    assert cycle.code == 0, cycle.output
    assert "Shein" in cycle.output and "SUCCEEDED" in cycle.output
    assert all(r.cookies["sessionID_shein"] == PLANTED_VALUE for r in site.requests)
    row = next(line for line in done.output.splitlines() if line.startswith(batch_id))
    _, status, supplier, _, _, orders_count, failed = re.split(r"\s{2,}", row.strip())
    assert (status, supplier, orders_count, failed) == ("Completed", "ZA", "3", "0")
    # Submitted: the database holds the sealed file, no cookie value.
    assert token is not None and token.encode() in after_submit
    for value in (PLANTED_VALUE, *COOKIE_VALUES):
        assert value.encode() not in after_submit
    # Completed: not even the sealed file is left.
    assert not any(piece.encode() in after_completion for piece in pieces(token))
    assert PLANTED_VALUE.encode() not in after_completion
    assert refused.code == 1 and "--cookies FILE" in refused.output
    assert retried.code == 0, retried.output
    assert f"Queued batch {batch_id} again" in retried.output
    row = next(line for line in requeued.output.splitlines() if line.startswith(batch_id))
    assert re.split(r"\s{2,}", row.strip())[1] == "Queued"
    for output in (submitted, again, queued, cycle, done, refused, retried, requeued):
        assert not any(value in output.output for value in (PLANTED_VALUE, *COOKIE_VALUES))


async def test_on_sqlite_the_key_file_is_made_once_with_mode_0600_and_reused(
    tmp_path: Path, site: FakeSite
) -> None:
    database = tmp_path / "data" / "shop.db"
    env = cli_environment(
        config_dir(tmp_path),
        ConnectionStrings__Database=f"sqlite+aiosqlite:///{database}",
        Logging__LogLevel__Default="Warning",
        BackgroundProcessing__Shein__BaseUrl=site.url,
    )
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(cookie_file_text())
    second.write_text(cookie_file_text(session_value="another-session"))

    one = await run_split(env, "shein", "submit", str(first))
    key_file = tmp_path / "data" / "shop.cookie.key"
    key, mode = key_file.read_bytes(), stat.S_IMODE(key_file.stat().st_mode)
    two = await run_split(env, "shein", "submit", str(second))

    assert (one.code, two.code) == (0, 0), one.stderr + two.stderr
    assert mode == 0o600
    assert key_file.read_bytes() == key and len(key.strip()) == 44
    assert [path.name for path in key_file.parent.iterdir() if "key" in path.name] == [
        "shop.cookie.key"
    ]  # no temporary file left behind
    assert key.strip().decode() not in one.stdout + one.stderr + two.stdout + two.stderr


def deep_cookie_file() -> str:
    data = cookie_file_data()
    text = json.dumps({**data, "metadata": {}})
    return text[: text.rindex("{}")] + "[" * DEEP + "]" * DEEP + "}"


@pytest.mark.parametrize("kind", ["nested 200,000 deep", "200 MB (sparse)", "1.1 MB"])
async def test_a_hostile_cookie_file_is_refused_with_one_line_and_nothing_stored(
    env: dict[str, str], tmp_path: Path, db_url: str, kind: str
) -> None:
    path = tmp_path / "cookies.json"
    if kind.startswith("nested"):
        path.write_text(deep_cookie_file())
        expected = "cookie file nests objects or arrays more than 32 levels deep"
    elif kind.startswith("200 MB"):
        with path.open("wb") as file:
            file.truncate(200 * 1024 * 1024)
        expected = (
            f"cookie file {path} is 209,715,200 bytes, over the limit of 1,048,576 bytes "
            "(BackgroundProcessing:Shein:MaxCookieFileBytes)"
        )
    else:
        data = cookie_file_data()
        data["metadata"]["padding"] = "x" * 1_100_000
        path.write_text(json.dumps(data))
        expected = (
            "over the limit of 1,048,576 bytes (BackgroundProcessing:Shein:MaxCookieFileBytes)"
        )

    result = await run_split(env, "shein", "submit", str(path))

    assert result.code == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Not submitted: ")
    assert expected in result.stderr
    assert await batch_count(db_url) == 0


async def test_a_larger_cap_is_configured_in_the_handler_section(
    env: dict[str, str], tmp_path: Path, db_url: str
) -> None:
    data = cookie_file_data()
    data["metadata"]["padding"] = "x" * 1_100_000
    path = tmp_path / "cookies.json"
    path.write_text(json.dumps(data))

    result = await run_split(
        {**env, "BackgroundProcessing__Shein__MaxCookieFileBytes": "2097152"},
        "shein",
        "submit",
        str(path),
    )

    assert result.code == 0, result.stderr
    assert await batch_count(db_url) == 1


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_on_postgresql_without_a_key_nothing_is_submitted_and_shein_is_disabled(
    env: dict[str, str], tmp_path: Path, db_url: str
) -> None:
    without_key = {key: value for key, value in env.items() if "CookieKey" not in key}
    path = tmp_path / "cookies.json"
    path.write_text(cookie_file_text())

    submitted = await run_split(without_key, "shein", "submit", str(path))
    listed = await run_split(without_key, "handlers")

    assert submitted.code == 2
    assert submitted.stderr.count("\n") == 1
    assert submitted.stderr.startswith("Configuration error: Secrets:CookieKey is invalid: ")
    assert "PostgreSQL" in submitted.stderr
    assert await batch_count(db_url) == 0
    shein = next(line for line in listed.stdout.splitlines() if line.startswith("Shein"))
    assert "no (not configured: set Secrets:CookieKey to enable it)" in shein


async def test_an_invalid_cookie_key_stops_every_command_without_showing_it(
    tmp_path: Path,
) -> None:
    secret = "not-a-fernet-key-s3cr3t-value"
    env = cli_environment(
        config_dir(tmp_path),
        ConnectionStrings__Database=f"sqlite+aiosqlite:///{tmp_path / 'myapp.db'}",
        Secrets__CookieKey=secret,
    )
    path = tmp_path / "cookies.json"
    path.write_text(cookie_file_text())

    submitted = await run_split(env, "shein", "submit", str(path))
    listed = await run_split(env, "handlers")

    for result in (submitted, listed):
        assert result.code == 2
        assert result.stderr.count("\n") == 1
        assert result.stderr.startswith("Configuration error: Secrets:CookieKey = '***' is invalid")
        assert "Fernet" in result.stderr
        assert secret not in result.stdout + result.stderr
    assert not (tmp_path / "myapp.db").exists()


async def test_retry_with_a_hostile_cookie_file_is_refused_and_changes_nothing(
    env: dict[str, str], tmp_path: Path, db_url: str
) -> None:
    path = tmp_path / "cookies.json"
    path.write_text(deep_cookie_file())

    result = await run_split(
        env, "shein", "retry", "00000000-0000-0000-0000-000000000001", "--cookies", str(path)
    )

    assert result.code == 1
    assert result.stderr.count("\n") == 1
    assert "Not queued: cookie file nests objects or arrays more than 32 levels deep" in (
        result.stderr
    )
    assert await batch_count(db_url) == 0


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
