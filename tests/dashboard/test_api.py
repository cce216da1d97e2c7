"""The JSON API reads and steers through the operator's query layer (myapp.operations), on
SQLite and PostgreSQL."""

from __future__ import annotations

from myapp.data.database import create_engine
from tests.dashboard.chores import HANDLER
from tests.dashboard.conftest import MakeApp, client_for
from tests.dashboard.seeding import seed_chores


async def test_handlers_list_built_in_and_user_tables_with_their_counts(
    make_app: MakeApp, chores_url: str
) -> None:
    engine = create_engine(chores_url)
    await seed_chores(engine, completed=3, failed=["ValueError: boom"], queued=2)
    await engine.dispose()
    async with client_for(make_app()) as client:
        response = await client.get("/api/handlers")
    assert response.status_code == 200
    statuses = {s["name"]: s for s in response.json()}
    assert list(statuses) == ["Shein", "ImageVectorization", "BlobCleanup", HANDLER]
    chores = statuses[HANDLER]
    assert chores["table"] == "chores"
    assert chores["counts"]["completed"] == 3
    assert chores["counts"]["failed"] == 1
    assert chores["counts"]["queued"] == 2
    assert chores["last_error"] == "ValueError: boom"
    assert statuses["ImageVectorization"]["enabled"] is False
    assert statuses["ImageVectorization"]["disabled_reason"]
