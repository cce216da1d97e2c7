"""`db upgrade`, and `run` migrating at start unless Database:MigrateOnStartup is false."""

from __future__ import annotations

from pathlib import Path

import pytest

from myapp.data.migrations import current_revision, head_revision
from tests.fixtures.cli import cli_environment, run_myapp
from tests.scraping.conftest import TEST_COOKIE_KEY


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "config"
    directory.mkdir()
    (directory / "appsettings.json").write_text("{}")
    return directory


async def test_db_upgrade_brings_an_fresh_url_to_head(fresh_url: str, config_dir: Path) -> None:
    env = cli_environment(config_dir, ConnectionStrings__Database=fresh_url)

    result = await run_myapp(env, "db", "upgrade")

    assert result.code == 0, result.output
    assert "is at the newest revision" in result.output
    assert await current_revision(fresh_url) == head_revision()


async def test_run_migrates_at_start_unless_told_not_to(fresh_url: str, config_dir: Path) -> None:
    settings = {
        "ConnectionStrings__Database": fresh_url,
        "BackgroundProcessing__BlobCleanup__Enabled": "false",
        # On PostgreSQL the Shein handler runs only with a cookie key.
        "Secrets__CookieKey": TEST_COOKIE_KEY,
    }
    without = cli_environment(config_dir, Database__MigrateOnStartup="false", **settings)
    default = cli_environment(config_dir, **settings)

    unmigrated = await run_myapp(without, "run", "--once")
    assert await current_revision(fresh_url) is None
    migrated = await run_myapp(default, "run", "--once")

    assert unmigrated.code == 1  # no tables: the Shein fetch fails and is reported
    assert "Shein" in unmigrated.output and "Error" in unmigrated.output
    assert migrated.code == 0, migrated.output
    assert await current_revision(fresh_url) == head_revision()
