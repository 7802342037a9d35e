"""The JSON API over a real socket: page, OpenAPI, tokens, login limits, server lifecycle."""

from __future__ import annotations

import asyncio
import signal
import socket
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from api_server import (
    ALICE_PASSWORD,
    API,
    OPERATOR_PASSWORD,
    Headers,
    Tenants,
    bearer,
    error,
    login,
    ok,
    running_server,
    start_server,
)

from mailward.app import Services
from mailward.config import MxHost, Settings
from mailward.directory import Actor
from mailward.server import AVAILABLE_ROLES, KNOWN_ROLES, describe, parse_roles, run
from mailward.server.web_role import url_for

# -- panel page and OpenAPI ----------------------------------------------------------------


async def test_panel_page_and_openapi_document(settings: Settings) -> None:
    configured = settings.model_copy(
        update={
            "mx_hosts": [
                MxHost(host="inbound-a.operator.test", priority=5),
                MxHost(host="inbound-b.operator.test", priority=15),
            ],
            "hosting_host": "box.operator.test",
            "webmail_host": "web.operator.test",
        }
    )
    async with running_server(configured) as url, httpx.AsyncClient(base_url=url) as http:
        page = await http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        html = page.text
        assert "mailward" in html
        for host in (
            "inbound-a.operator.test",
            "inbound-b.operator.test",
            "box.operator.test",
            "web.operator.test",
        ):
            assert host in html
        assert ">5<" in html and ">15<" in html
        assert 'href="/api/v1/openapi.json"' in html

        doc = await http.get(f"{API}/openapi.json")  # no token needed
        assert doc.status_code == 200
        spec = doc.json()
        assert spec["openapi"].startswith("3.1")
        paths = spec["paths"]
        for path in (
            "/api/v1/auth/token",
            "/api/v1/me",
            "/api/v1/accounts",
            "/api/v1/domains/{name}",
            "/api/v1/addresses",
            "/api/v1/addresses/bulk",
            "/api/v1/addresses/delete",
            "/api/v1/addresses/{email}",
            "/api/v1/addresses/{email}/setup",
            "/api/v1/addresses/{email}/autocc",
            "/api/v1/addresses/{email}/list",
            "/api/v1/domains/{name}/servers",
            "/api/v1/domains/{name}/servers/{server}",
            "/api/v1/domains/{name}/servers/auto-configure",
            "/api/v1/tokens",
        ):
            assert path in paths, path
        assert "bearer" in str(spec["components"]["securitySchemes"]).lower()
        address = spec["components"]["schemas"]["AddressView"]["properties"]
        assert {"email", "list", "kind", "destinations"} <= set(address)
        assert address["list"] == {"$ref": "#/components/schemas/AddressList"}
        assert set(spec["components"]["schemas"]["AddressList"]["enum"]) == {"filter", "no-filter"}

        missing = await http.get(f"{API}/no-such-thing")
        assert missing.status_code == 404
        assert missing.json() == {"error": "Not Found"}


# -- tokens ----------------------------------------------------------------------------


async def test_tokens_and_401s(client: httpx.AsyncClient, op: Headers) -> None:
    me = await ok(client.get(f"{API}/me", headers=op))
    assert me == {"role": "operator", "login": "root", "account_id": None, "account": None}

    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic cm9vdDp4"},
        bearer("mw_not-a-real-token"),
    ):
        response = await client.get(f"{API}/me", headers=headers)
        assert response.status_code == 401, headers
        assert set(response.json()) == {"error"}
        assert response.headers["www-authenticate"].startswith("Bearer")
    await error(client.get(f"{API}/addresses"), 401, "token")
    await error(client.post(f"{API}/accounts", json={"name": "X"}), 401)

    wrong = client.post(f"{API}/auth/token", json={"login": "root", "password": "nope-nope"})
    assert OPERATOR_PASSWORD not in await error(wrong, 401, "wrong login or password")
    await error(
        client.post(f"{API}/auth/token", json={"login": "ghost", "password": OPERATOR_PASSWORD}),
        401,
    )
    await error(client.post(f"{API}/auth/token", json={"login": "root"}), 400, "password")
    await error(client.post(f"{API}/auth/token", content=b"{not json"), 400)

    body = {"login": "ROOT", "password": OPERATOR_PASSWORD, "name": "ci"}
    response = await client.post(f"{API}/auth/token", json=body)
    assert response.status_code == 201
    token = response.json()
    assert set(token) == {"id", "name", "login", "token", "expires_at"}
    assert (token["name"], token["login"], token["expires_at"]) == ("ci", "root", None)
    assert OPERATOR_PASSWORD not in response.text
    assert (await ok(client.get(f"{API}/me", headers=bearer(token["token"]))))["login"] == "root"
    brief = await ok(client.post(f"{API}/auth/token", json={**body, "expires_days": 7}), 201)
    six_days = (datetime.now(UTC) + timedelta(days=6)).isoformat()
    assert brief["expires_at"] > six_days  # seven days ahead (ISO strings, both UTC)
    await error(client.post(f"{API}/auth/token", json={**body, "expires_days": 0}), 400,
                "1 to 3650 days")


async def test_failed_logins_are_rate_limited(settings: Settings, directory: Services) -> None:
    await directory.accounts.create_user(Actor.operator(), "root", OPERATOR_PASSWORD)
    limited = settings.model_copy(
        update={"auth_failures_per_window": 3, "auth_window_seconds": 600}
    )
    async with running_server(limited) as url, httpx.AsyncClient(base_url=url) as http:
        for _ in range(3):
            await error(
                http.post(f"{API}/auth/token", json={"login": "root", "password": "guess-guess"}),
                401,
            )
        # Locked now, even with the right password.
        right = {"login": "root", "password": OPERATOR_PASSWORD}
        response = await http.post(f"{API}/auth/token", json=right)
        assert response.status_code == 429
        assert "too many" in response.json()["error"]
        assert 0 < int(response.headers["retry-after"]) <= 600
        # Only that login is locked: the client's address has its own, much higher limit
        # (an office behind one NAT address), so another login is still checked.
        other = await http.post(f"{API}/auth/token", json={"login": "x", "password": "y"})
        assert other.status_code == 401


# -- server roles and lifecycle ------------------------------------------------------------


def test_parse_roles() -> None:
    assert parse_roles("all") == set(AVAILABLE_ROLES)
    assert parse_roles(" Web , web") == {"web"}
    with pytest.raises(ValueError, match=r"unknown role 'smtp' \(known: .*mx.*\)"):
        parse_roles("web,smtp")
    assert parse_roles("mx,delivery") == {"mx", "delivery"}
    assert parse_roles("imap,pop3") == {"imap", "pop3"}
    with pytest.raises(ValueError):
        parse_roles(" , ")
    assert set(AVAILABLE_ROLES) <= set(KNOWN_ROLES)


def test_ready_lines() -> None:
    assert url_for("0.0.0.0", 8080) == "http://127.0.0.1:8080"
    assert url_for("::", 81) == "http://[::1]:81"
    assert url_for("2001:db8::1", 80) == "http://[2001:db8::1]:80"
    assert describe({"web": "http://127.0.0.1:8080"}) == [
        "web      http://127.0.0.1:8080  "
        "(panel /panel, webmail /mail, API /api/v1, OpenAPI /api/v1/openapi.json)"
    ]


async def test_sigterm_stops_the_server_gracefully(settings: Settings) -> None:
    previous = signal.getsignal(signal.SIGTERM)
    task, url = await start_server(settings.model_copy(update={"port_web": 0}))
    assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
    async with httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/")).status_code == 200
        signal.raise_signal(signal.SIGTERM)  # handled by run(): drain, dispose, return
        assert await asyncio.wait_for(task, 30) is None
    assert signal.getsignal(signal.SIGTERM) == previous
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=url) as http:
            await http.get("/")


async def test_busy_port_is_reported(settings: Settings) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            await run(settings.model_copy(update={"port_web": port}), ready=lambda _: None)


async def test_tokens_are_listed_and_revoked_by_their_owner(
    client: httpx.AsyncClient, op: Headers, customers: Tenants
) -> None:
    second = await login(client, "alice@acme.example", ALICE_PASSWORD)
    mine = await ok(client.get(f"{API}/tokens", headers=customers.alice))
    assert [t["login"] for t in mine] == ["alice@acme.example"] * 2
    assert all("token" not in t and t["created_at"] for t in mine)
    everyone = await ok(client.get(f"{API}/tokens", headers=op))
    bobs = [t["id"] for t in everyone if t["login"] == "bob@globex.example"]
    assert bobs and {t["login"] for t in everyone} >= {"root", "alice@acme.example"}

    # alice can neither see nor revoke bob's token; bob's still works afterwards
    await error(client.delete(f"{API}/tokens/{bobs[0]}", headers=customers.alice), 404)
    await ok(client.get(f"{API}/me", headers=customers.bob))

    # revoking one of her tokens stops exactly that one
    first_id = mine[0]["id"]
    response = await client.delete(f"{API}/tokens/{first_id}", headers=second)
    assert response.status_code == 204
    await error(client.get(f"{API}/me", headers=customers.alice), 401)
    assert (await ok(client.get(f"{API}/me", headers=second)))["login"] == "alice@acme.example"
    await error(client.delete(f"{API}/tokens/{first_id}", headers=second), 404)
