"""A database that cannot be used at start-up: every command prints one line on stderr naming
the redacted URL and the cause, exits 2, and shows no traceback and no password.

Most cases run the CLI in-process (`cli.main`, stderr captured, loguru included); the ones that
prove what a real process prints and returns run `python -m myapp` in a subprocess."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from loguru import logger
from sqlalchemy import text
from sqlalchemy.engine import make_url

from myapp import cli
from myapp.data.alembic_env import OUR_VERSION_TABLE
from myapp.data.database import create_engine, redact_url
from myapp.data.migrations import current_revision, head_revision, upgrade_to_head
from tests.fixtures.database import postgres_admin_dsn

SECRET = "s3cr3t-Pa55w0rd-do-not-print"
REPO_ROOT = Path(__file__).resolve().parents[2]
SUBPROCESS_GUARD_S = 60
DATABASE_EXIT = 2


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Its own config dir; no `Section__Key` or MYAPP_ variable inherited; Azure configured
    (never contacted: the database check comes first) so `photos similar` gets that far."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "appsettings.json").write_text("{}")
    (tmp_path / "cookies.json").write_text("[]")
    for name in list(os.environ):
        if "__" in name or name.startswith("MYAPP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MYAPP_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("AzureAI__Endpoint", "http://127.0.0.1:9")
    monkeypatch.setenv("AzureAI__ApiKey", "test-key")
    # A cookie key, as a PostgreSQL deployment has: without it `shein submit` stops on that
    # first (one line too), before it ever reaches the database.
    monkeypatch.setenv("Secrets__CookieKey", Fernet.generate_key().decode())
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def restore_loguru() -> Iterator[None]:
    """In-process commands reconfigure loguru (sinks on this test's captured stderr)."""
    yield
    logger.remove()
    logger.add(sys.stderr)


def use_database(monkeypatch: pytest.MonkeyPatch, url: str, *, migrate: bool = True) -> None:
    monkeypatch.setenv("ConnectionStrings__Database", url)
    monkeypatch.setenv("Database__MigrateOnStartup", str(migrate).lower())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def postgres_url(database: str = "postgres", *, port: int = 5432, query: str = "") -> str:
    user = make_url(postgres_admin_dsn()).username or "postgres"
    url = f"postgresql://{user}:{SECRET}@127.0.0.1:{port}/{database}"
    return f"{url}?{query}" if query else url


def assert_one_database_line(code: int, stderr: str, url: str, *fragments: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == DATABASE_EXIT, stderr
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert SECRET not in stderr
    assert redact_url(url) in lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


EVERY_DATABASE_COMMAND = [
    ["run"],
    ["run", "--once"],
    ["status"],
    ["items", "Shein"],
    ["requeue", "Shein", "--failed"],
    ["workers"],
    ["db", "upgrade"],
    ["db", "stamp"],
    ["shein", "submit", "cookies.json"],
    ["shein", "batches"],
    ["shein", "retry", str(uuid.UUID(int=1))],
    ["photos", "similar", "cookies.json"],
]


@pytest.mark.parametrize("migrate", [True, False], ids=["migrating", "not-migrating"])
@pytest.mark.parametrize("command", EVERY_DATABASE_COMMAND, ids=" ".join)
def test_every_command_on_an_unreachable_database_says_so_in_one_line(
    command: list[str],
    migrate: bool,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = postgres_url(port=free_port())
    use_database(monkeypatch, url, migrate=migrate)

    code, _, err = main(capsys, *command)

    assert_one_database_line(code, err, url, "is unreachable", "ConnectionRefusedError")


def test_handlers_does_not_touch_the_database(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_database(monkeypatch, postgres_url(port=free_port()))

    code, out, _ = main(capsys, "handlers")

    assert code == 0
    assert "Shein" in out


PROBLEMS = {
    "no such database": (
        lambda: postgres_url(f"myapp_missing_{uuid.uuid4().hex[:8]}"),
        ["does not exist", "InvalidCatalogNameError"],
    ),
    "unknown role": (
        lambda: postgres_url().replace(
            f"//{make_url(postgres_admin_dsn()).username or 'postgres'}:", "//no_such_role:"
        ),
        ["refused the credentials", "no_such_role"],
    ),
    "bad sslmode": (
        lambda: postgres_url(query="sslmode=bogus"),
        ["has a connection option the driver refuses", "sslmode"],
    ),
    "unknown postgresql option": (
        lambda: postgres_url(query="colour=blue"),
        ["has a connection option the driver refuses", "'colour'"],
    ),
    "unknown sqlite option": (
        lambda: f"sqlite+aiosqlite:///{Path.cwd() / 'myapp.db'}?colour=blue",
        ["has a connection option the driver refuses", "'colour'"],
    ),
    "sqlite directory that cannot be created": (
        lambda: f"sqlite+aiosqlite:///{Path.cwd() / 'cookies.json' / 'data' / 'myapp.db'}",
        ["cannot be opened", "cookies.json"],
    ),
    "sqlite file that cannot be opened": (
        lambda: f"sqlite+aiosqlite:///{Path.cwd() / 'config'}",  # a directory
        ["cannot be opened", "unable to open database file"],
    ),
}


@pytest.mark.parametrize("migrate", [True, False], ids=["migrating", "not-migrating"])
@pytest.mark.parametrize("problem", PROBLEMS)
def test_a_database_that_cannot_be_used_is_one_line_naming_the_cause(
    problem: str,
    migrate: bool,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    make, fragments = PROBLEMS[problem]
    url = make()
    use_database(monkeypatch, url, migrate=migrate)

    code, _, err = main(capsys, "run", "--once")

    assert_one_database_line(code, err, url, *fragments)


@pytest.mark.parametrize("fresh_url", ["postgresql"], indirect=True)
def test_libpq_sslmode_is_passed_to_asyncpg(
    fresh_url: str,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`?sslmode=disable` works (asyncpg takes it as `ssl`), where it used to be a TypeError."""
    use_database(monkeypatch, f"{fresh_url}?sslmode=disable")

    code, out, err = main(capsys, "db", "upgrade")

    assert code == 0, err
    assert "is at the newest revision" in out


# --- Tables that predate migrations ------------------------------------------------------------


async def forget_history(url: str, *extra_statements: str) -> None:
    """Migrate, then drop alembic's record: tables made before migrations existed."""
    await upgrade_to_head(url)
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(f"DROP TABLE {OUR_VERSION_TABLE}"))
            for statement in extra_statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


def test_tables_without_history_stop_upgrade_until_stamped(
    fresh_url: str,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    asyncio.run(forget_history(fresh_url))
    use_database(monkeypatch, fresh_url)

    upgrade = main(capsys, "db", "upgrade")
    on_start = main(capsys, "run", "--once")  # MigrateOnStartup: the same refusal
    stamp = main(capsys, "db", "stamp")
    again = main(capsys, "db", "stamp")
    upgraded = main(capsys, "db", "upgrade")

    for code, _, err in (upgrade, on_start):
        line = assert_one_database_line(code, err, fresh_url, "no migration history")
        assert "match the newest schema" in line and "`python -m myapp db stamp`" in line
        assert "product_photos" in line
    assert stamp[0] == 0, stamp[2]
    assert f"recorded at revision {head_revision()}" in stamp[1]
    assert_one_database_line(*again[::2], fresh_url, "already has migration history")
    assert upgraded[0] == 0, upgraded[2]
    assert asyncio.run(current_revision(fresh_url)) == head_revision()


def test_tables_that_differ_are_not_stamped(
    fresh_url: str,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    asyncio.run(forget_history(fresh_url, "ALTER TABLE product_photos ADD COLUMN legacy INTEGER"))
    use_database(monkeypatch, fresh_url)

    upgrade = main(capsys, "db", "upgrade")
    stamp = main(capsys, "db", "stamp")

    for code, _, err in (upgrade, stamp):
        line = assert_one_database_line(code, err, fresh_url, "no migration history")
        assert "differ from the newest schema" in line and "drop those tables" in line
    assert asyncio.run(current_revision(fresh_url)) is None


def test_stamping_an_empty_database_says_to_upgrade(
    fresh_url: str,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_database(monkeypatch, fresh_url)

    code, _, err = main(capsys, "db", "stamp")

    assert_one_database_line(code, err, fresh_url, "has none of our tables", "db upgrade")


# --- The real process: exit code and every line it writes --------------------------------------


def myapp(workdir: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "ConnectionStrings__Database": url}
    return subprocess.run(
        [sys.executable, "-m", "myapp", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_GUARD_S,
    )


@pytest.mark.parametrize(
    ("url", "args", "fragment"),
    [
        pytest.param(
            postgres_url(port=free_port()), ["run"], "is unreachable", id="pg-closed-port"
        ),
        pytest.param(
            postgres_url(query="sslmode=bogus"), ["db", "upgrade"], "sslmode", id="pg-sslmode"
        ),
        pytest.param(
            "sqlite+aiosqlite:///./cookies.json/data/myapp.db",
            ["run", "--once"],
            "cannot be opened",
            id="sqlite-no-directory",
        ),
    ],
)
def test_the_process_prints_one_line_and_exits_2(
    url: str, args: list[str], fragment: str, workdir: Path
) -> None:
    result = myapp(workdir, url, *args)

    assert_one_database_line(result.returncode, result.stderr, url, fragment)
    assert SECRET not in result.stdout


def test_the_process_refuses_tables_without_history_in_one_line(
    fresh_url: str, workdir: Path
) -> None:
    asyncio.run(forget_history(fresh_url))

    result = myapp(workdir, fresh_url, "db", "upgrade")

    assert_one_database_line(result.returncode, result.stderr, fresh_url, "db stamp")
