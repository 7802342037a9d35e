"""Web hardening (issue 16 items 7 and 8) over a real socket, on both backends.

The login lockout is per login; the client address has its own, much higher limit (an
office NAT is not locked out by guesses against one user). An account admin cannot make a
user whose login is another tenant's address. A password reset revokes the user's API
tokens (unless told not to), and says how many. Anonymous requests store no session, and
expired sessions are purged on a schedule the web role starts.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from api_server import (
    ALICE_PASSWORD,
    API,
    OPERATOR_PASSWORD,
    Headers,
    Tenants,
    login,
    ok,
    running_server,
)
from cli_helpers import Cli
from panel_client import Panel
from sqlalchemy import func, select, update

from mailward.app import Services
from mailward.config import Settings
from mailward.db.models import WebSession, utcnow
from mailward.directory import Actor
from mailward.server.web_role import bind, web_server
from mailward.web.sessions import PURGE_EVERY_SECONDS, DatabaseStore, purge_expired_sessions

CAROL = "carol@acme.example"
CAROL_PASSWORD = "Kestrel-pass-123"
NEW_PASSWORD = "Brand-new-pass-9"
PER_LOGIN, PER_IP = 3, 8


async def _add_carol(client: httpx.AsyncClient, admin: Headers) -> None:
    await ok(client.post(f"{API}/accounts/Acme/users", headers=admin,
                         json={"login": CAROL, "password": CAROL_PASSWORD}), 201)


# -- item 7: the per-IP limit is its own ---------------------------------------------------


@pytest.fixture
async def limited(settings: Settings, directory: Services) -> AsyncIterator[str]:
    op = Actor.operator()
    await directory.accounts.create(op, "Acme")
    for user, password in (("alice@acme.example", ALICE_PASSWORD), (CAROL, CAROL_PASSWORD)):
        await directory.accounts.create_user(op, user, password, account="Acme")
    tight = settings.model_copy(update={"auth_failures_per_window": PER_LOGIN,
                                        "auth_ip_failures_per_window": PER_IP})
    async with running_server(tight) as url:
        yield url


async def test_guesses_against_one_user_do_not_lock_out_the_others(limited: str) -> None:
    async with httpx.AsyncClient(base_url=limited, timeout=30) as http:
        panel = Panel(http)
        await panel.get("/login")
        for _ in range(PER_LOGIN):
            await panel.post("/login", {"login": "alice@acme.example", "password": "bad"},
                             status=401)
        await panel.post("/login", {"login": "alice@acme.example", "password": ALICE_PASSWORD},
                         status=429)  # alice is locked ...
        # ... but carol, behind the same address, logs in on the panel and the API
        other = Panel(http)
        await other.get("/login")
        await other.post("/login", {"login": CAROL, "password": CAROL_PASSWORD})
        await login(http, CAROL, CAROL_PASSWORD)
        # the address's own limit still applies: guesses at many logins
        for n in range(PER_IP - PER_LOGIN):
            failed = await http.post(f"{API}/auth/token",
                                     json={"login": f"guess{n}@acme.example", "password": "x"})
            assert failed.status_code == 401, (n, failed.text)
        refused = await http.post(f"{API}/auth/token",
                                  json={"login": CAROL, "password": CAROL_PASSWORD})
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0


# -- item 8a: logins in another tenant's domain -------------------------------------------


async def test_an_admin_cannot_create_a_user_in_another_tenants_domain(
        client: httpx.AsyncClient, customers: Tenants, op: Headers, cli: Cli) -> None:
    users = f"{API}/accounts/Acme/users"
    refused = await client.post(users, headers=customers.alice, json={
        "login": "mallory@globex.example", "password": CAROL_PASSWORD})
    assert refused.status_code == 403, refused.text
    assert "globex.example belongs to another account" in refused.text
    refused = await client.post(users, headers=customers.alice, json={
        "login": "Mallory@GLOBEX.example", "password": CAROL_PASSWORD})
    assert refused.status_code == 403, refused.text
    for allowed in (CAROL, "helper@not-ours.example", "plainlogin"):
        await ok(client.post(users, headers=customers.alice,
                             json={"login": allowed, "password": CAROL_PASSWORD}), 201)
    # operators may do anything (API and CLI)
    await ok(client.post(users, headers=op, json={"login": "ops@globex.example",
                                                  "password": CAROL_PASSWORD}), 201)
    await asyncio.to_thread(  # the CLI runs its own event loop
        cli, "user", "add", "cli-ops@globex.example", "--account", "Acme",
        "--password-stdin", input=f"{CAROL_PASSWORD}\n")


# -- item 8b: a password reset revokes the user's tokens -----------------------------------


async def test_a_reset_revokes_the_users_tokens(client: httpx.AsyncClient, customers: Tenants,
                                               cli: Cli) -> None:
    alice = customers.alice
    await _add_carol(client, alice)
    first, second = await login(client, CAROL, CAROL_PASSWORD), await login(
        client, CAROL, CAROL_PASSWORD)
    reset = {"password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD}
    done = await ok(client.put(f"{API}/users/{CAROL}/password", json=reset, headers=alice))
    assert (done["login"], done["tokens_revoked"]) == (CAROL, 2)
    for token in (first, second):
        assert (await client.get(f"{API}/users", headers=token)).status_code == 401
    kept = await login(client, CAROL, NEW_PASSWORD)
    done = await ok(client.put(f"{API}/users/{CAROL}/password", headers=alice,
                               json={**reset, "revoke_tokens": False}))
    assert done["tokens_revoked"] == 0
    await ok(client.get(f"{API}/users", headers=kept))
    # one's own change keeps one's tokens
    own = await ok(client.put(f"{API}/users/alice@acme.example/password", headers=alice,
                              json={**reset, "current": ALICE_PASSWORD}))
    assert own["tokens_revoked"] == 0
    await ok(client.get(f"{API}/users", headers=alice))
    # the CLI: revoked by default, --keep-tokens keeps them; the output says how many
    out = (await asyncio.to_thread(cli, "user", "password", CAROL, "--password-stdin",
                                   "--keep-tokens", input=f"{CAROL_PASSWORD}\n")).stdout
    assert out == f"password changed for {CAROL}; 0 API token(s) revoked\n"
    await ok(client.get(f"{API}/users", headers=kept))
    out = (await asyncio.to_thread(cli, "user", "password", CAROL, "--password-stdin",
                                   input=f"{NEW_PASSWORD}\n")).stdout
    assert out == f"password changed for {CAROL}; 1 API token(s) revoked\n"
    assert (await client.get(f"{API}/users", headers=kept)).status_code == 401


# -- item 8c: no session rows for anonymous requests; purge on a schedule ------------------


async def _sessions(directory: Services) -> int:
    async with directory.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(WebSession)) or 0)


async def test_anonymous_requests_store_no_session(settings: Settings,
                                                   directory: Services) -> None:
    op = Actor.operator()
    await directory.accounts.create_user(op, "root", OPERATOR_PASSWORD)
    async with running_server(settings) as url, httpx.AsyncClient(base_url=url,
                                                                  timeout=30) as http:
        before = await _sessions(directory)
        for _ in range(5):
            async with httpx.AsyncClient(base_url=url, timeout=30) as anonymous:
                for path in ("/login", "/panel", "/panel/accounts", "/", "/login?next=/x"):
                    response = await anonymous.get(path)
                    assert response.status_code in (200, 303), (path, response.status_code)
                    assert "mailward_session=" not in response.headers.get("set-cookie", "")
                wrong = Panel(anonymous)
                await wrong.get("/login")
                await wrong.post("/login", {"login": "root", "password": "wrong"}, status=401)
        assert await _sessions(directory) == before
        # the login form's CSRF token needs no session: logging in still works, and makes one
        panel = Panel(http)
        await panel.login("root", OPERATOR_PASSWORD)
        assert await _sessions(directory) == before + 1
        await panel.get("/panel/accounts")
        await panel.post("/logout")
        assert await _sessions(directory) == before


async def test_expired_sessions_are_purged_by_the_scheduled_job(
        settings: Settings, directory: Services) -> None:
    store = DatabaseStore(directory.db)
    await store.set("live", b"x", expires_in=3600)
    await store.set("old", b"x", expires_in=3600)
    async with directory.db.session() as session, session.begin():
        await session.execute(update(WebSession).where(WebSession.key == "old")
                              .values(expires_at=utcnow() - timedelta(minutes=1)))
    assert await purge_expired_sessions(directory.db) == 1
    assert await store.exists("live") and await _sessions(directory) == 1

    # the web role runs that job as it starts and then every PURGE_EVERY_SECONDS
    await store.set("stale", b"x", expires_in=3600)
    async with directory.db.session() as session, session.begin():
        await session.execute(update(WebSession).where(WebSession.key == "stale")
                              .values(expires_at=utcnow() - timedelta(minutes=1)))
    server = web_server(directory, settings.model_copy(update={"bind": "127.0.0.1",
                                                               "port_web": 0}))
    assert server.background["session-purge"][0] == PURGE_EVERY_SECONDS == 3600
    sock: socket.socket = bind("127.0.0.1", 0)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await asyncio.wait_for(server.listening.wait(), 30)
        assert await _sessions(directory) == 1 and await store.exists("live")
        assert not server.tasks["session-purge"].done()  # the schedule runs beside the app
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()
    assert server.tasks["session-purge"].cancelled()
