"""The operator's commands as a user runs them (`python -m myapp ...`), with a user's own
claimable table registered beside ours, on SQLite and PostgreSQL: `--json` parsed back, exit
codes, and one line for an unusable database."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from myapp.processing.claims import Claims
from tests.fixtures.cli import cli_environment, run_split
from tests.operations.support import add_checks, add_outcomes, add_worker, database_now
from tests.operations.user_app import (
    DONE,
    GAVE_UP,
    HANDLER_NAME,
    SECRET_COLUMN_VALUE,
    WAITING,
    WORKING,
    price_check_spec,
)

USER_APP = "tests.operations.user_app:UserApp"
UNREACHABLE_POSTGRES = "postgresql://postgres:hunter2-secret@127.0.0.1:1/nowhere"


def environment(tmp_path: Path, db_url: str) -> dict[str, str]:
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    (config / "appsettings.json").write_text("{}")
    return cli_environment(
        config, ConnectionStrings__Database=db_url, Logging__LogLevel__Default="Warning"
    )


async def myapp(env: dict[str, str], *args: str) -> tuple[int, Any, str]:
    """Run a command with `--json` under the user's container: exit code, parsed output, stderr."""
    result = await run_split(env, *args, "--json", "--container", USER_APP)
    document = json.loads(result.stdout) if result.stdout.strip() else None
    return result.code, document, result.stderr


def by_name(report: dict[str, Any]) -> dict[str, Any]:
    return {handler["name"]: handler for handler in report["handlers"]}


async def test_status_shows_every_handler_and_exits_0_when_all_is_well(
    tmp_path: Path,
    db_url: str,
    user_engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    await add_checks(session_factory, [{"state": WAITING}] * 2 + [{"state": DONE}] * 3)
    await add_worker(session_factory, "w1", [HANDLER_NAME])
    await add_outcomes(session_factory, HANDLER_NAME, timedelta(minutes=3), succeeded=3)

    code, report, _ = await myapp(environment(tmp_path, db_url), "status")

    assert code == 0, report
    assert report["attention"] == []
    assert report["database_schema"]["at_head"] is True
    handlers = by_name(report)
    assert list(handlers) == ["Shein", "ImageVectorization", "BlobCleanup", HANDLER_NAME]
    mine = handlers[HANDLER_NAME]
    assert mine["table"] == "ops_price_checks"
    assert (mine["counts"]["queued"], mine["counts"]["completed"]) == (2, 3)
    assert mine["live_workers"] == 1
    assert mine["last_hour"]["succeeded"] == 3
    assert handlers["BlobCleanup"]["table"] is None
    assert handlers["ImageVectorization"]["table"] == "product_photos"


async def test_status_exits_1_on_dead_letters_since_and_on_orphaned_expired_leases(
    tmp_path: Path,
    db_url: str,
    user_engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    env = environment(tmp_path, db_url)
    await add_outcomes(session_factory, HANDLER_NAME, timedelta(minutes=30), dead_lettered=2)

    code, report, _ = await myapp(env, "status")
    assert code == 1
    assert report["attention"] == [f"{HANDLER_NAME}: 2 dead-lettered since " + _minute(report)]
    code, report, _ = await myapp(env, "status", "--since", "10m")
    assert (code, report["attention"]) == (0, [])

    now = await database_now(session_factory)
    await add_checks(
        session_factory,
        [{"state": WORKING, "locked_by": "gone", "locked_until": now - timedelta(minutes=1)}],
    )
    code, report, _ = await myapp(env, "status", "--since", "10m")
    assert code == 1
    assert report["attention"] == [
        f"{HANDLER_NAME}: 1 expired leases and no live worker to take them over"
    ]
    await add_worker(session_factory, "w1", [HANDLER_NAME])  # a live worker will take them
    code, report, _ = await myapp(env, "status", "--since", "10m")
    assert (code, report["attention"]) == (0, [])


def _minute(report: dict[str, Any]) -> str:
    from datetime import datetime

    return f"{datetime.fromisoformat(report['since']):%Y-%m-%d %H:%M} UTC"


async def test_items_and_requeue_with_json_and_a_row_a_worker_holds(
    tmp_path: Path,
    db_url: str,
    user_engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    env = environment(tmp_path, db_url)
    failed = await add_checks(
        session_factory,
        [
            {
                "state": GAVE_UP,
                "attempts": 5,
                "last_error": "Shop said 503",
                "credentials": SECRET_COLUMN_VALUE,
            }
        ]
        * 2,
    )
    (held,) = await add_checks(session_factory, [{"state": WAITING}])
    async with session_factory() as session:
        await Claims(session, price_check_spec(), worker_id="busy-worker").claim(1)

    code, page, stderr = await myapp(env, "items", HANDLER_NAME, "--status", "failed")
    assert code == 0, stderr
    assert sorted(uuid.UUID(item["id"]) for item in page["items"]) == sorted(failed)
    assert {item["last_error"] for item in page["items"]} == {"Shop said 503"}
    assert SECRET_COLUMN_VALUE not in json.dumps(page)
    code, page, _ = await myapp(env, "items", HANDLER_NAME, "--search", "SHOP SAID")
    assert len(page["items"]) == 2

    code, result, _ = await myapp(env, "requeue", HANDLER_NAME, "--failed")
    assert code == 0
    assert sorted(uuid.UUID(id) for id in result["requeued"]) == sorted(failed)
    code, result, _ = await myapp(env, "requeue", HANDLER_NAME, "--id", str(held))
    assert code == 1  # not everything asked for was requeued
    assert (result["requeued"], result["held"]) == ([], [str(held)])
    code, page, _ = await myapp(env, "items", HANDLER_NAME, "--status", "running")
    assert [(item["id"], item["locked_by"]) for item in page["items"]] == [
        (str(held), "busy-worker")
    ]


async def test_requeue_and_items_refuse_unknown_handlers_and_bad_requests(
    tmp_path: Path, db_url: str, user_engine: AsyncEngine
) -> None:
    env = environment(tmp_path, db_url)
    code, _, stderr = await myapp(env, "items", "Nope")
    assert code == 2 and "No handler named 'Nope'" in stderr
    code, _, stderr = await myapp(env, "requeue", HANDLER_NAME)
    assert code == 2 and "--id ID" in stderr
    code, _, stderr = await myapp(env, "items", "BlobCleanup")
    assert code == 2 and "no claimable table" in stderr


async def test_health_and_workers(
    tmp_path: Path,
    db_url: str,
    user_engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    env = environment(tmp_path, db_url)
    code, report, _ = await myapp(env, "health")
    assert (code, report["healthy"], report["problems"]) == (0, True, [])
    code, report, _ = await myapp(env, "health", "--require-worker")
    assert (code, report["problems"]) == (1, ["No live worker"])

    await add_worker(session_factory, "w-stale", [HANDLER_NAME], heartbeat_age=timedelta(hours=1))
    await add_worker(session_factory, "w-live", [HANDLER_NAME, "Shein"])
    code, report, _ = await myapp(env, "health", "--require-worker")
    assert (code, report["live_workers"]) == (0, 1)
    code, workers, _ = await myapp(env, "workers")
    assert code == 0
    states = {w["id"]: (w["state"], w["handlers"], w["in_flight"]) for w in workers}
    assert states == {
        "w-stale": ("stale", [HANDLER_NAME], 3),
        "w-live": ("live", [HANDLER_NAME, "Shein"], 3),
    }


async def test_health_on_an_unreachable_database_is_one_line_and_exit_1(tmp_path: Path) -> None:
    env = environment(tmp_path, UNREACHABLE_POSTGRES)
    result = await run_split(env, "health")

    assert result.code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Unhealthy: Database postgresql+asyncpg://postgres:***@127.0.0.1:1")
    assert "unreachable" in lines[0]
    assert "Traceback" not in result.stderr and "hunter2" not in result.stderr
