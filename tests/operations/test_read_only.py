"""Read-only commands never migrate or write: pointed at a database behind our schema, or never
migrated, they say so (exit codes below) and leave it as it was."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy.engine import Connection

from myapp.data.migrations import alembic_config
from tests.data.version_tables import on_connection, table_names, version_rows
from tests.fixtures.cli import run_split
from tests.operations.test_cli import USER_APP, environment

OLDER_REVISION = "0002"
OUR_VERSION_TABLE = "myapp_alembic_version"
# command -> its exit code on a schema not at head: status says so among what needs attention
# (1), health is unhealthy (1), the others refuse in one line (2).
READ_ONLY = {
    ("status",): 1,
    ("health",): 1,
    ("items", "PriceCheck"): 2,
    ("workers",): 2,
    ("shein", "batches"): 2,
}


async def upgrade_to(url: str, revision: str) -> None:
    def migrate(connection: Connection) -> None:
        config = alembic_config(url)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    await on_connection(url, migrate)


async def test_read_only_commands_leave_an_older_schema_as_it_is(
    tmp_path: Path, fresh_url: str
) -> None:
    await upgrade_to(fresh_url, OLDER_REVISION)
    tables = await table_names(fresh_url)
    env = environment(tmp_path, fresh_url)

    for args, expected in READ_ONLY.items():
        result = await run_split(env, *args, "--container", USER_APP)
        assert result.code == expected, (args, result)
        assert "schema behind: at revision 0002" in result.stdout + result.stderr, args
        assert "Traceback" not in result.stderr

    assert await version_rows(fresh_url, OUR_VERSION_TABLE) == [OLDER_REVISION]
    assert await table_names(fresh_url) == tables


async def test_status_on_a_database_never_migrated_creates_nothing(
    tmp_path: Path, fresh_url: str
) -> None:
    env = environment(tmp_path, fresh_url)
    if fresh_url.startswith("sqlite"):
        result = await run_split(env, "status")
        assert result.code == 2  # no file: it cannot be opened, and none is made
        assert result.stderr.count("\n") == 1 and "cannot be opened" in result.stderr
        path = Path(fresh_url.removeprefix("sqlite+aiosqlite:///"))
        assert not path.parent.exists()
        return
    result = await run_split(env, "status", "--json")
    assert result.code == 1
    assert "Database schema not migrated" in result.stdout
    assert await table_names(fresh_url) == set()
