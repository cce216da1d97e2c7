"""The JSON API reads and steers through the operator's query layer (myapp.operations), on
SQLite and PostgreSQL."""

from __future__ import annotations

import html
import re

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


async def test_items_come_in_keyset_pages_on_the_page_and_in_the_api(
    make_app: MakeApp, chores_url: str
) -> None:
    engine = create_engine(chores_url)
    seeded = await seed_chores(engine, completed=120)
    await engine.dispose()
    seen_on_pages: list[str] = []
    async with client_for(make_app()) as client:
        url: str | None = f"/handlers/{HANDLER}?limit=50"
        while url is not None:
            page = await client.get(url)
            assert page.status_code == 200
            seen_on_pages += re.findall(r'<tr data-id="([0-9a-f-]{36})"', page.text)
            found = re.search(r'<a rel="next" href="([^"]+)"', page.text)
            url = html.unescape(found.group(1)) if found else None
        seen_in_api: list[str] = []
        after = ""
        while True:
            response = await client.get(f"/api/handlers/{HANDLER}/items?limit=50{after}")
            body = response.json()
            seen_in_api += [item["id"] for item in body["items"]]
            if body["next_cursor"] is None:
                break
            after = f"&after={body['next_cursor']}"
    expected = sorted(str(id) for id in seeded.completed)
    assert seen_on_pages == expected
    assert seen_in_api == expected
