"""Who may use the dashboard and how its actions are guarded: CSRF on every action, the token,
read-only, loopback unless a token is set, and the Host header on loopback."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from myapp.dashboard.binding import is_loopback
from myapp.data.database import create_engine
from tests.dashboard.chores import HANDLER
from tests.dashboard.conftest import MakeApp, client_for
from tests.dashboard.live import write_settings
from tests.dashboard.seeding import Seeded, seed_chores
from tests.fixtures.cli import cli_environment, run_split

TOKEN = "a-long-dashboard-token-7f3e9c"
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


async def seed(url: str) -> Seeded:
    engine = create_engine(url)
    try:
        return await seed_chores(engine, failed=["ValueError: nope"], completed=1)
    finally:
        await engine.dispose()


async def form_token(client: httpx.AsyncClient, path: str = "/") -> str:
    page = await client.get(path)
    assert page.status_code == 200
    found = CSRF_INPUT.search(page.text)
    assert found is not None
    return found.group(1)


async def item_state(client: httpx.AsyncClient, id: object) -> str:
    response = await client.get(f"/api/handlers/{HANDLER}/items/{id}")
    assert response.status_code == 200
    return str(response.json()["state"])


async def test_an_action_without_a_valid_csrf_token_is_refused_and_changes_nothing(
    make_app: MakeApp, chores_url: str
) -> None:
    (failed,) = (await seed(chores_url)).failed
    requeue = f"/handlers/{HANDLER}/items/{failed}/requeue"
    app = make_app()
    async with client_for(app) as client, client_for(app) as other:
        token = await form_token(client)
        others_token = await form_token(other)  # valid, but for another browser's cookie

        no_token = await client.post(requeue, data={})
        wrong = await client.post(requeue, data={"csrf_token": others_token})
        forged = await client.post(requeue, data={"csrf_token": token + "x"})
        api_bare = await client.post(f"/api/handlers/{HANDLER}/run")
        assert [r.status_code for r in (no_token, wrong, forged, api_bare)] == [403] * 4
        assert "CSRF token missing or invalid" in no_token.text
        assert await item_state(client, failed) == "failed"

        done = await client.post(requeue, data={"csrf_token": token})
        assert done.status_code == 303
        assert await item_state(client, failed) == "queued"
        api_token = (await client.get("/api/csrf")).json()["csrf_token"]
        woken = await client.post(
            f"/api/handlers/{HANDLER}/run", headers={"X-CSRF-Token": api_token}
        )
        assert woken.status_code == 200
        assert woken.json() == {"handler": HANDLER, "woken": True}


async def test_read_only_hides_the_actions_and_refuses_them(
    make_app: MakeApp, chores_url: str
) -> None:
    (failed,) = (await seed(chores_url)).failed
    async with client_for(make_app(ReadOnly=True)) as client:
        overview = await client.get("/")
        items = await client.get(f"/handlers/{HANDLER}?status=failed")
        token = CSRF_INPUT.search(overview.text)
        refused = await client.post(
            f"/handlers/{HANDLER}/items/{failed}/requeue",
            data={"csrf_token": token.group(1) if token else ""},
        )
        api = await client.post(f"/api/handlers/{HANDLER}/requeue", json={"failed": True})
        state = await item_state(client, failed)
    assert "Run now" not in overview.text and "Requeue" not in items.text
    assert "read-only" in overview.text
    assert refused.status_code == api.status_code == 403
    assert "read-only" in refused.json()["detail"]
    assert state == "failed"


async def test_with_a_token_every_request_needs_it(make_app: MakeApp, chores_url: str) -> None:
    (failed,) = (await seed(chores_url)).failed
    async with client_for(make_app(Token=TOKEN)) as client:
        page = await client.get("/")
        api = await client.get("/api/handlers")
        schema = await client.get("/openapi.json")
        assert page.status_code == 303 and page.headers["location"] == "/login"
        assert api.status_code == schema.status_code == 401
        assert (await client.get("/static/style.css")).status_code == 200

        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert (await client.get("/api/handlers", headers=bearer)).status_code == 200
        wrong_bearer = {"Authorization": f"Bearer {TOKEN}x"}
        assert (await client.get("/api/handlers", headers=wrong_bearer)).status_code == 401
        # An API client with the token needs no CSRF token: browsers never send the header.
        requeued = await client.post(
            f"/api/handlers/{HANDLER}/requeue", json={"ids": [str(failed)]}, headers=bearer
        )
        assert requeued.status_code == 200 and requeued.json()["requeued"] == [str(failed)]

        wrong = await client.post("/login", data={"token": "guess"})
        assert wrong.status_code == 401 and "Wrong token" in wrong.text
        login = await client.post("/login", data={"token": TOKEN})
        assert login.status_code == 303
        assert TOKEN not in login.headers["set-cookie"]
        assert (await client.get("/")).status_code == 200
        # Logged in by cookie, an action still needs the CSRF token.
        bare = await client.post(f"/handlers/{HANDLER}/run", data={})
        assert bare.status_code == 403
        run = await client.post(
            f"/handlers/{HANDLER}/run", data={"csrf_token": await form_token(client)}
        )
        assert run.status_code == 303


async def test_on_loopback_without_a_token_other_host_names_are_refused(
    make_app: MakeApp,
) -> None:
    """A page of another site resolving its own name to 127.0.0.1 (DNS rebinding) gets nothing."""
    async with client_for(make_app()) as client:
        rebound = await client.get("/api/handlers", headers={"Host": "attacker.example"})
        local = await client.get("/api/handlers", headers={"Host": "localhost:8000"})
    assert rebound.status_code == 400
    assert local.status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::", "dashboard.internal"])
async def test_a_non_loopback_bind_without_a_token_is_refused_with_one_line(
    tmp_path: Path, host: str
) -> None:
    write_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/myapp.db")
    env = cli_environment(tmp_path)

    result = await run_split(env, "dashboard", "--host", host, "--port", "0")

    assert result.code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "Dashboard:Host" in result.stderr and "Dashboard:Token" in result.stderr
    assert not (tmp_path / "myapp.db").exists()  # refused before touching anything


async def test_a_worker_serving_the_dashboard_off_loopback_needs_the_token_too(
    tmp_path: Path,
) -> None:
    write_settings(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path}/myapp.db", Enabled=True, Host="0.0.0.0"
    )
    result = await run_split(cli_environment(tmp_path), "run")
    assert result.code == 2
    assert "Configuration error: Dashboard:Host = '0.0.0.0' is invalid" in result.stderr
    assert result.stderr.strip().count("\n") == 0


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.1", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


async def test_a_configured_secret_that_reached_an_error_text_is_masked(
    make_app: MakeApp, chores_url: str
) -> None:
    key = "leaked-api-key-0b7c55"
    engine = create_engine(chores_url)
    (failed,) = (await seed_chores(engine, failed=[f"HTTPError: 401 with api-key {key}"])).failed
    await engine.dispose()
    extra = {"AzureAI": {"Endpoint": "http://127.0.0.1:9/", "ApiKey": key}}
    async with client_for(make_app(extra)) as client:
        responses = [
            await client.get("/"),
            await client.get(f"/handlers/{HANDLER}/items/{failed}"),
            await client.get(f"/api/handlers/{HANDLER}/items/{failed}"),
        ]
    for response in responses:
        assert response.status_code == 200
        assert key not in response.text
        assert "HTTPError: 401 with api-key ***" in response.text
        assert int(response.headers["content-length"]) == len(response.content)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_an_unreachable_database_is_a_503_with_one_line(make_app: MakeApp) -> None:
    """Nothing listens on port 1: the pages and the API say so, password masked."""
    gone = "postgresql://postgres:unreachable-pw-81@127.0.0.1:1/nowhere"
    app = make_app({"ConnectionStrings": {"Database": gone}})
    async with client_for(app) as client:
        page = await client.get("/")
        api = await client.get("/api/handlers")
    assert page.status_code == api.status_code == 503
    assert page.text.count("\n") == 0
    assert "postgres:***@127.0.0.1:1/nowhere cannot be reached now" in page.text
    assert "cannot be reached now" in api.json()["detail"]
    assert "unreachable-pw-81" not in page.text + api.text
