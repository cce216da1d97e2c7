"""A user's package with its own models and alembic migrations (tests/userpkg/pricewatch, the
example of docs/your-own-tables.md) migrates next to ours through the real CLI: two version
tables, neither history touching the other, neither autogenerate seeing the other's tables.
The page shows the package's files as they are, and the CLI's output as the CLI prints it."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from pricewatch.models import Base as PricewatchBase
from pricewatch.models import PriceCheck
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from myapp.data.alembic_env import DATABASE_URL_ENVIRONMENT_VARIABLE, OUR_VERSION_TABLE, run_env
from myapp.data.claiming import status_claim_spec
from myapp.data.database import create_engine, create_session_factory, redact_url
from myapp.data.migrations import (
    ALEMBIC_INI,
    LEGACY_VERSION_TABLE,
    head_revision,
    schema_drift,
    upgrade_to_head,
)
from myapp.data.models import Base
from myapp.data.user_migrations import SETTING, find_user_migrations
from myapp.processing.claims import Claims
from myapp.processing.errors import ConfigurationError
from myapp.settings import load_settings
from tests.data.version_tables import on_connection, table_names, version_rows
from tests.fixtures.cli import REPO_ROOT, CliResult, cli_environment, run_myapp

USER_PACKAGE_ROOT = REPO_ROOT / "tests" / "userpkg"
USER_CONFIG_DIR = USER_PACKAGE_ROOT / "config"  # Database:Migrations = ["pricewatch.migrations"]
THEIR_MIGRATIONS = "pricewatch.migrations"
THEIR_VERSION_TABLE = "pricewatch_alembic_version"
NO_DRIFT = "No new upgrade operations detected"
DOC = REPO_ROOT / "docs" / "your-own-tables.md"
DOC_DATABASE_URL = "sqlite+aiosqlite:///./data/myapp.db"
SHOWN_FILES = (
    "pricewatch/models.py",
    "pricewatch/migrations/env.py",
    "alembic.ini",
    "pricewatch/migrations/versions/3f6e8fa6c71e_price_checks.py",
    "config/appsettings.json",
    "test_pricewatch_schema.py",
)
FENCED_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
WORKERS = 4


def doc_blocks(language: str) -> list[str]:
    return [body for lang, body in FENCED_BLOCK.findall(DOC.read_text()) if lang == language]


def shown_output(*, containing: str) -> list[str]:
    """The lines of the page's output block that mentions `containing`."""
    (block,) = [body for body in doc_blocks("text") if containing in body]
    return block.splitlines()


def their_head() -> str | None:
    directory = find_user_migrations(THEIR_MIGRATIONS).directory
    return ScriptDirectory(str(directory)).get_current_head()


async def run_with_their_package(url: str, *args: str, **settings: str) -> CliResult:
    """`python -m myapp ...` as the user runs it: their config, their package importable."""
    env = cli_environment(
        USER_CONFIG_DIR,
        ConnectionStrings__Database=url,
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(USER_PACKAGE_ROOT)]),
        **settings,
    )
    return await run_myapp(env, *args)


async def add_price_check(url: str) -> None:
    await on_connection(
        url,
        lambda connection: connection.execute(
            insert(PriceCheck).values(sku="SKU-1", competitor_url="https://example.test/1")
        ),
    )


async def price_check_skus(url: str) -> list[str]:
    def read(connection: Connection) -> list[str]:
        return list(connection.scalars(select(PriceCheck.sku)))

    return await on_connection(url, read)


async def test_db_upgrade_migrates_their_package_after_ours_and_again_changes_nothing(
    fresh_url: str,
) -> None:
    first = await run_with_their_package(fresh_url, "db", "upgrade")
    assert first.code == 0, first.output
    await add_price_check(fresh_url)
    second = await run_with_their_package(fresh_url, "db", "upgrade")

    assert second.code == 0, second.output
    shown = shown_output(containing="is at its newest revision")
    printed = [
        line.replace(redact_url(fresh_url), DOC_DATABASE_URL) for line in second.output.splitlines()
    ]
    assert printed[-len(shown) :] == shown
    assert await version_rows(fresh_url, OUR_VERSION_TABLE) == [head_revision()]
    assert await version_rows(fresh_url, THEIR_VERSION_TABLE) == [their_head()]
    assert await version_rows(fresh_url, LEGACY_VERSION_TABLE) is None
    assert {*Base.metadata.tables, *PricewatchBase.metadata.tables} <= await table_names(fresh_url)
    assert await price_check_skus(fresh_url) == ["SKU-1"]


async def test_starting_a_command_migrates_their_package_too(fresh_url: str) -> None:
    # `run` migrates at start-up (`Database:MigrateOnStartup`); read-only commands never do.
    result = await run_with_their_package(fresh_url, "run", "--once")

    assert result.code == 0, result.output
    assert await version_rows(fresh_url, OUR_VERSION_TABLE) == [head_revision()]
    assert await version_rows(fresh_url, THEIR_VERSION_TABLE) == [their_head()]


async def test_workers_starting_together_migrate_both_histories_once(fresh_url: str) -> None:
    await asyncio.gather(*(upgrade_to_head(fresh_url, [THEIR_MIGRATIONS]) for _ in range(WORKERS)))

    assert await version_rows(fresh_url, OUR_VERSION_TABLE) == [head_revision()]
    assert await version_rows(fresh_url, THEIR_VERSION_TABLE) == [their_head()]


async def test_a_package_that_is_not_there_stops_upgrade_before_the_database(
    fresh_url: str,
) -> None:
    result = await run_with_their_package(
        fresh_url, "db", "upgrade", Database__Migrations="pricewatch.migrations,nowhere.migrations"
    )

    assert result.code == 2
    assert result.output.splitlines() == shown_output(containing="Configuration error")
    assert await table_names(fresh_url) == set()


async def alembic_check(ini: Path, url: str) -> CliResult:
    """The alembic CLI's own `check` (autogenerate, through the env.py), as a user runs it."""
    env = {
        **os.environ,
        DATABASE_URL_ENVIRONMENT_VARIABLE: url,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(USER_PACKAGE_ROOT)]),
    }
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "alembic", "-c", str(ini), "check"),
        env=env,
        cwd=ini.parent,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return CliResult(process.returncode or 0, output.decode())


async def test_neither_autogenerate_sees_the_others_tables(fresh_url: str) -> None:
    await upgrade_to_head(fresh_url, [THEIR_MIGRATIONS])

    ours = await alembic_check(ALEMBIC_INI, fresh_url)
    theirs = await alembic_check(USER_PACKAGE_ROOT / "alembic.ini", fresh_url)

    assert ours.code == 0 and NO_DRIFT in ours.output, ours.output
    assert theirs.code == 0 and NO_DRIFT in theirs.output, theirs.output
    assert await schema_drift(fresh_url) == []
    assert await schema_drift(fresh_url, PricewatchBase.metadata) == []


async def test_their_drift_is_theirs_alone(fresh_url: str) -> None:
    await upgrade_to_head(fresh_url, [THEIR_MIGRATIONS])
    (index,) = PricewatchBase.metadata.tables[PriceCheck.__tablename__].indexes
    await on_connection(fresh_url, lambda c: c.exec_driver_sql(f"DROP INDEX {index.name}"))

    drift = await schema_drift(fresh_url, PricewatchBase.metadata)

    assert [(kind, item.name) for kind, item in drift] == [("add_index", index.name)]
    assert await schema_drift(fresh_url) == []


async def test_their_claim_columns_table_is_claimed_like_ours(fresh_url: str) -> None:
    await upgrade_to_head(fresh_url, [THEIR_MIGRATIONS])
    await add_price_check(fresh_url)
    engine = create_engine(fresh_url)
    try:
        async with create_session_factory(engine)() as session:
            claims = Claims(session, status_claim_spec(PriceCheck), worker_id="worker-1")
            (claimed,) = await claims.claim(10)
            assert await claims.claim(10) == []
    finally:
        await engine.dispose()

    assert (claimed.sku, claimed.status, claimed.locked_by) == ("SKU-1", "Started", "worker-1")
    assert claimed.attempts == 1


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("nowhere.migrations", "an importable package of alembic scripts"),
        ("pricewatch.models", "an importable package of alembic scripts"),  # a module
        ("pricewatch", "a package with an alembic env.py"),
    ],
)
def test_a_setting_that_names_no_alembic_package_is_a_configuration_error(
    module: str, expected: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        find_user_migrations(module)

    assert (raised.value.key, raised.value.value, raised.value.expected) == (
        SETTING,
        module,
        expected,
    )


def test_their_env_may_not_record_into_our_version_table() -> None:
    with pytest.raises(ValueError, match=OUR_VERSION_TABLE):
        run_env(PricewatchBase.metadata, version_table=OUR_VERSION_TABLE)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("pricewatch.migrations", ("pricewatch.migrations",)),
        (
            "pricewatch.migrations, other_pkg.db.migrations",
            ("pricewatch.migrations", "other_pkg.db.migrations"),
        ),
        ("", ()),
    ],
)
def test_the_environment_lists_packages_separated_by_commas(
    value: str, expected: tuple[str, ...], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("Database__Migrations", value)
    (tmp_path / "appsettings.json").write_text("{}")  # a named config dir holds its file

    assert load_settings(config_dir=tmp_path).database.migrations == expected


@pytest.mark.parametrize("value", ["pricewatch/migrations", "pricewatch..migrations", "1st.pkg"])
def test_a_name_that_is_no_module_name_is_refused_at_load(
    value: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("Database__Migrations", value)
    (tmp_path / "appsettings.json").write_text("{}")

    with pytest.raises(ConfigurationError, match="Database:Migrations"):
        load_settings(config_dir=tmp_path)


BROKEN_REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table("brokenpkg_items", sa.Column("id", sa.Integer(), primary_key=True))
    raise RuntimeError("this migration is broken")
"""


def write_broken_package(root: Path) -> str:
    """A package whose one revision creates a table, then fails."""
    migrations = root / "brokenpkg" / "migrations"
    (migrations / "versions").mkdir(parents=True)
    (root / "brokenpkg" / "__init__.py").write_text("")
    (migrations / "__init__.py").write_text("")
    (migrations / "env.py").write_text(
        "from sqlalchemy import MetaData\n"
        "from myapp.data.alembic_env import run_env\n"
        "run_env(MetaData(), version_table='brokenpkg_alembic_version')\n"
    )
    (migrations / "versions" / "0001_items.py").write_text(BROKEN_REVISION)
    return "brokenpkg.migrations"


async def test_a_failing_package_rolls_back_alone(
    fresh_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    broken = write_broken_package(tmp_path)

    with pytest.raises(RuntimeError, match="broken"):
        await upgrade_to_head(fresh_url, [THEIR_MIGRATIONS, broken])

    tables = await table_names(fresh_url)
    assert await version_rows(fresh_url, OUR_VERSION_TABLE) == [head_revision()]
    assert await version_rows(fresh_url, THEIR_VERSION_TABLE) == [their_head()]
    assert not {"brokenpkg_items", "brokenpkg_alembic_version"} & tables


def test_the_page_shows_every_file_of_the_example_as_it_is() -> None:
    shown = {*doc_blocks("python"), *doc_blocks("ini"), *doc_blocks("json")}
    files = {(USER_PACKAGE_ROOT / name).read_text() for name in SHOWN_FILES}

    assert shown == files
    for path in (USER_PACKAGE_ROOT / "pricewatch").rglob("*.py"):  # the layout names them all
        assert path.name in DOC.read_text(), path
