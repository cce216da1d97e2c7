"""No secret is ever rendered or returned: a Shein cookie value stored in a batch, the Azure AI
API key, the blob storage account key, the cookie-sealing key, the dashboard's own token and
(PostgreSQL) the database password are planted, then every page a browser can reach and every
API response is searched for them."""

from __future__ import annotations

import json
from urllib.parse import urljoin, urlparse

from playwright.async_api import Page
from sqlalchemy.engine import make_url

from myapp.data.database import create_engine, create_session_factory
from myapp.data.models import ProcessingStatus, StagingBatch
from myapp.scraping.batches import BATCH_PROCESSOR_NAME
from tests.dashboard.chores import HANDLER
from tests.dashboard.conftest import Serve
from tests.dashboard.seeding import seed_chores
from tests.scraping.conftest import SESSION_COOKIE_VALUE, TEST_COOKIE_KEY, cookie_file_text

API_KEY = "planted-azure-api-key-5d1c0b"
ACCOUNT_KEY = "cGxhbnRlZC1hY2NvdW50LWtleQ=="
TOKEN = "planted-dashboard-token-93ab"
DB_PASSWORD = "planted-db-password-47e2"
MAX_PAGES = 80


async def plant_cookie_batches(url: str) -> None:
    """A legacy batch whose cookie file was stored before sealing (plain JSON), queued, and a
    dead-lettered one: the cookie value is in the table."""
    engine = create_engine(url)
    try:
        async with create_session_factory(engine)() as session:
            for status, n in ((ProcessingStatus.QUEUED, 1), (ProcessingStatus.FAILED, 2)):
                session.add(
                    StagingBatch(
                        batch_processor_name=BATCH_PROCESSOR_NAME,
                        file_hash=f"hash-{n}",
                        status=status,
                        file_contents=cookie_file_text(),
                        last_error="CookiesExpiredError: the cookies expired" if n == 2 else None,
                    )
                )
            await session.commit()
        await seed_chores(engine, completed=2, failed=["ValueError: boom"])
    finally:
        await engine.dispose()


async def test_no_planted_secret_in_any_page_or_api_response(
    page: Page, serve: Serve, chores_url: str
) -> None:
    await plant_cookie_batches(chores_url)
    postgres = chores_url.startswith("postgresql")
    database = (
        make_url(chores_url).set(password=DB_PASSWORD).render_as_string(hide_password=False)
        if postgres  # trust authentication: the password is accepted, and must never show
        else chores_url
    )
    planted = [SESSION_COOKIE_VALUE, API_KEY, ACCOUNT_KEY, TEST_COOKIE_KEY, TOKEN]
    planted += [DB_PASSWORD] if postgres else []
    extra = {
        "ConnectionStrings": {
            "Database": database,
            "BlobStorage": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={ACCOUNT_KEY};BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;",
        },
        "AzureAI": {"Endpoint": "http://127.0.0.1:9/", "ApiKey": API_KEY},
        "Secrets": {"CookieKey": TEST_COOKIE_KEY},
    }
    url = await serve(extra, Token=TOKEN)
    bodies: dict[str, str] = {}

    await page.goto(url)
    await page.fill("#token", TOKEN)
    await page.get_by_role("button", name="Log in").click()
    await crawl(page, url, bodies)
    await read_api(page, url, bodies)

    assert len(bodies) > 15
    assert f"/handlers/{HANDLER}" in " ".join(bodies) and "/handlers/Shein" in " ".join(bodies)
    for where, body in bodies.items():
        for secret in planted:
            assert secret not in body, f"{secret!r} shown by {where}"
    if postgres:
        assert "***@" in bodies[f"{url}/"]  # the database is named, its password masked
    for cookie in await page.context.cookies():
        assert all(secret not in cookie["value"] for secret in planted)


async def crawl(page: Page, url: str, bodies: dict[str, str]) -> None:
    """Every page reachable by links from the overview (and each status filter)."""
    todo, origin = [f"{url}/"], urlparse(url).netloc
    while todo and len(bodies) < MAX_PAGES:
        address = todo.pop(0)
        if address in bodies:
            continue
        response = await page.goto(address)
        assert response is not None and response.status == 200, address
        bodies[address] = await page.content() + json.dumps(await response.all_headers())
        for href in await page.locator("a[href]").evaluate_all("a => a.map(x => x.href)"):
            target = urljoin(address, href).split("#")[0]
            if urlparse(target).netloc == origin and target not in bodies:
                todo.append(target)


async def read_api(page: Page, url: str, bodies: dict[str, str]) -> None:
    """Every GET of the API, for every handler and item."""

    async def get(path: str) -> object:
        response = await page.request.get(f"{url}{path}")
        assert response.ok, path
        bodies[path] = await response.text() + json.dumps(response.headers)
        return await response.json()

    await get("/openapi.json")
    await get("/api/workers")
    await get("/api/csrf")
    handlers = await get("/api/handlers")
    assert isinstance(handlers, list)
    for handler in handlers:
        name = handler["name"]
        await get(f"/api/handlers/{name}")
        await get(f"/api/handlers/{name}/history")
        if handler["table"]:
            page_of_items = await get(f"/api/handlers/{name}/items?limit=1000")
            assert isinstance(page_of_items, dict)
            for item in page_of_items["items"]:
                await get(f"/api/handlers/{name}/items/{item['id']}")
