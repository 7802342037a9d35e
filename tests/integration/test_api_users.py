"""Panel/API users through the JSON API over a real socket, both backends: who sees whom,
password resets and one's own change, login locks, deletion (tokens go too), the audit
log, and that one customer can never reach another's users or the operators."""

from __future__ import annotations

import httpx
from api_server import (
    ALICE_PASSWORD,
    API,
    OPERATOR_PASSWORD,
    Headers,
    Tenants,
    error,
    login,
    ok,
)

from mailward.app import Services
from mailward.config import Settings
from mailward.directory import Actor

CAROL_PASSWORD = "Stoat-pass-2468"
NEW_PASSWORD = "Fresh-pass-1357"


async def add_carol(client: httpx.AsyncClient, alice: Headers) -> None:
    body = {"login": "carol@acme.example", "password": CAROL_PASSWORD}
    await ok(client.post(f"{API}/accounts/Acme/users", json=body, headers=alice), 201)


def logins(users: list[dict[str, object]]) -> list[object]:
    return [(u["login"], u["role"], u["account"]) for u in users]


async def test_each_sees_only_the_users_they_manage(client: httpx.AsyncClient, op: Headers,
                                                    customers: Tenants) -> None:
    await add_carol(client, customers.alice)
    everyone = await ok(client.get(f"{API}/users", headers=op))
    assert logins(everyone) == [("alice@acme.example", "account-admin", "Acme"),
                                ("bob@globex.example", "account-admin", "Globex"),
                                ("carol@acme.example", "account-admin", "Acme"),
                                ("root", "operator", None)]
    assert logins(await ok(client.get(f"{API}/users", headers=op,
                                      params={"account": "Globex"}))) == [
        ("bob@globex.example", "account-admin", "Globex")]
    assert [u["login"] for u in await ok(client.get(f"{API}/users", headers=customers.alice))
            ] == ["alice@acme.example", "carol@acme.example"]
    # another customer's admin and the operator are not there for alice
    for stranger in ("bob@globex.example", "root"):
        await error(client.put(f"{API}/users/{stranger}/password", headers=customers.alice,
                               json={"password": NEW_PASSWORD,
                                     "password_repeat": NEW_PASSWORD}), 404, "no user")
        await error(client.delete(f"{API}/users/{stranger}", headers=customers.alice), 404)
        await error(client.delete(f"{API}/users/{stranger}/login-lock",
                                  headers=customers.alice), 404)
    await login(client, "root", OPERATOR_PASSWORD)  # unchanged


async def test_passwords_reset_and_own_change(client: httpx.AsyncClient, op: Headers,
                                              customers: Tenants, settings: Settings) -> None:
    alice = customers.alice
    await add_carol(client, alice)
    change = {"password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD}
    await ok(client.put(f"{API}/users/carol@acme.example/password", json=change,
                        headers=alice))  # a fellow admin resets it: no current needed
    await login(client, "carol@acme.example", NEW_PASSWORD)
    await error(client.put(f"{API}/users/alice@acme.example/password", json=change,
                           headers=alice), 400, "current password is wrong")
    await error(client.put(f"{API}/users/alice@acme.example/password",
                           json={**change, "current": "nope"}, headers=alice), 400)
    await error(client.put(f"{API}/users/alice@acme.example/password",
                           json={"password": "short", "password_repeat": "short",
                                 "current": ALICE_PASSWORD}, headers=alice), 400)
    await ok(client.put(f"{API}/users/alice@acme.example/password",
                        json={**change, "current": ALICE_PASSWORD}, headers=alice))
    # wrong current passwords count against the login's limit: a stolen token cannot
    # guess it at leisure (two failures above; the limit is auth_failures_per_window)
    for _ in range(settings.auth_failures_per_window - 2):
        await error(client.put(f"{API}/users/alice@acme.example/password",
                               json={**change, "current": "guess"}, headers=alice), 400)
    await error(client.put(f"{API}/users/alice@acme.example/password",
                           json={**change, "current": NEW_PASSWORD}, headers=alice), 429,
                "too many wrong passwords")
    await ok(client.delete(f"{API}/users/alice@acme.example/login-lock", headers=op))
    refused = await client.post(f"{API}/auth/token", json={"login": "alice@acme.example",
                                                            "password": ALICE_PASSWORD})
    assert refused.status_code == 401
    await login(client, "alice@acme.example", NEW_PASSWORD)
    audit = await ok(client.get(f"{API}/audit", headers=op,
                                params={"action": "user.set-password"}))
    assert sorted(e["target"] for e in audit["items"]) == [
        "alice@acme.example", "carol@acme.example"]


async def test_a_locked_user_is_seen_and_unlocked(client: httpx.AsyncClient,
                                                  customers: Tenants,
                                                  settings: Settings) -> None:
    await add_carol(client, customers.alice)
    for attempt in range(settings.auth_failures_per_window):
        failed = await client.post(f"{API}/auth/token", json={"login": "carol@acme.example",
                                                               "password": "guess"})
        assert failed.status_code == 401, (attempt, failed.text)
    lock = f"{API}/users/carol@acme.example/login-lock"
    assert (await ok(client.get(lock, headers=customers.alice)))["locked_seconds"] > 0
    await error(client.get(lock, headers=customers.bob), 404)
    assert await ok(client.delete(lock, headers=customers.alice)) == {
        "login": "carol@acme.example", "locked_seconds": 0}
    await login(client, "carol@acme.example", CAROL_PASSWORD)


async def test_deleting_users(client: httpx.AsyncClient, op: Headers, customers: Tenants,
                              directory: Services) -> None:
    await add_carol(client, customers.alice)
    carol = await login(client, "carol@acme.example", CAROL_PASSWORD)
    await error(client.delete(f"{API}/users/alice@acme.example", headers=customers.alice),
                409, "your own login")
    await error(client.delete(f"{API}/users/root", headers=op), 409, "your own login")
    await directory.accounts.create_user(Actor.operator(), "second", OPERATOR_PASSWORD)
    assert (await ok(client.delete(f"{API}/users/second", headers=op)))["role"] == "operator"
    gone = await ok(client.delete(f"{API}/users/carol@acme.example", headers=customers.alice))
    assert gone["login"] == "carol@acme.example"
    assert (await client.get(f"{API}/me", headers=carol)).status_code == 401  # token gone
    await error(client.delete(f"{API}/users/carol@acme.example", headers=op), 404)
