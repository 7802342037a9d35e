"""The JSON API over a real socket: one customer can never reach another."""

from __future__ import annotations

from typing import Any

import httpx
from api_server import (
    API,
    BOB_PASSWORD,
    MAILBOX_PASSWORD,
    Headers,
    Tenants,
    bulk,
    error,
    login,
    ok,
)

# -- customers cannot reach each other -------------------------------------------------------


async def snapshot(client: httpx.AsyncClient, op: Headers) -> Any:
    """Everything of Globex as the operator sees it."""
    return {
        "account": await ok(client.get(f"{API}/accounts/Globex", headers=op)),
        "domain": await ok(client.get(f"{API}/domains/globex.example", headers=op)),
        "addresses": await ok(
            client.get(
                f"{API}/addresses", headers=op, params={"domain": "globex.example", "per_page": 500}
            )
        ),
    }


async def test_cross_tenant_access_is_refused(
    client: httpx.AsyncClient, op: Headers, customers: Tenants
) -> None:
    alice, bob = customers.alice, customers.bob
    await bulk(
        client,
        bob,
        "filter",
        "\n".join(
            [
                f"box@globex.example|{MAILBOX_PASSWORD}",
                "fwd@globex.example|out@elsewhere.example|relay",
                f"cc@globex.example|{MAILBOX_PASSWORD}",
                "pending@globex.example",
            ]
        ),
    )
    await ok(
        client.put(
            f"{API}/addresses/cc@globex.example/autocc",
            headers=bob,
            json={"destinations": "copy@elsewhere.example"},
        )
    )
    await bulk(client, alice, "filter", "mine@acme.example")
    before = await snapshot(client, op)
    assert before["addresses"]["total"] == 4

    theirs = f"{API}/addresses/box@globex.example"
    password = {"password": "Taken-over-1", "password_repeat": "Taken-over-1"}
    destinations = {"destinations": "thief@acme.example"}
    not_found = [
        client.get(f"{API}/accounts/Globex", headers=alice),
        client.post(
            f"{API}/accounts/Globex/users",
            headers=alice,
            json={"login": "mole@acme.example", "password": "Mole-pass-123"},
        ),
        client.get(f"{API}/domains/globex.example", headers=alice),
        client.get(theirs, headers=alice),
        client.get(f"{API}/addresses/BOX@Globex.Example", headers=alice),
        client.post(
            f"{API}/addresses/pending@globex.example/setup",
            headers=alice,
            json={"kind": "mailbox", **password},
        ),
        client.post(
            f"{API}/addresses/pending@globex.example/setup",
            headers=alice,
            json={"kind": "forwarder", **destinations},
        ),
        client.put(f"{theirs}/password", json=password, headers=alice),
        client.put(
            f"{API}/addresses/fwd@globex.example/destinations", json=destinations, headers=alice
        ),
        client.put(f"{theirs}/autocc", json=destinations, headers=alice),
        client.delete(f"{API}/addresses/cc@globex.example/autocc", headers=alice),
        client.put(f"{theirs}/list", json={"list": "no-filter"}, headers=alice),
        client.delete(theirs, headers=alice),
        client.post(
            f"{API}/addresses/delete", headers=alice, json={"addresses": ["box@globex.example"]}
        ),
        client.post(
            f"{API}/addresses/delete",
            headers=alice,
            json={"addresses": ["mine@acme.example", "fwd@globex.example"]},
        ),
    ]
    for request in not_found:
        await error(request, 404)
    operator_only = [
        client.post(f"{API}/accounts", json={"name": "Globex"}, headers=alice),
        client.delete(f"{API}/accounts/Globex", headers=alice),
        client.post(
            f"{API}/domains", json={"name": "globex.example", "account": "Acme"}, headers=alice
        ),
        client.patch(f"{API}/domains/globex.example", json={"hosting": False}, headers=alice),
        client.delete(f"{API}/domains/globex.example", params={"force": "true"}, headers=alice),
    ]
    for request in operator_only:
        await error(request, 403, "operator")

    # Lists and searches simply do not show the other tenant.
    assert [a["name"] for a in await ok(client.get(f"{API}/accounts", headers=alice))] == ["Acme"]
    assert [d["name"] for d in await ok(client.get(f"{API}/domains", headers=alice))] == [
        "acme.example"
    ]
    assert await ok(client.get(f"{API}/domains", params={"account": "Globex"}, headers=alice)) == []
    for params in ({"search": "globex"}, {"domain": "globex.example"}, {"kind": "autocc"}):
        page = await ok(client.get(f"{API}/addresses", params=params, headers=alice))
        assert page["total"] == 0, params

    # Adding into their domain is refused per line, and does not move their addresses.
    response = await client.post(
        f"{API}/addresses",
        headers=alice,
        json={"address": "box@globex.example", "list": "no-filter"},
    )
    assert response.status_code == 422
    result = await bulk(
        client, alice, "no-filter", f"box@globex.example|{MAILBOX_PASSWORD}\nnew@globex.example"
    )
    assert [r["status"] for r in result["results"]] == ["invalid", "invalid"]

    # Deleting "everything matching" only ever reaches the caller's own addresses.
    wiped = await ok(
        client.post(
            f"{API}/addresses/delete", headers=alice, json={"domain": "globex.example", "all": True}
        )
    )
    assert wiped["deleted"] == 0
    wiped = await ok(client.post(f"{API}/addresses/delete", json={"all": True}, headers=alice))
    assert wiped["deleted"] == 1  # mine@acme.example only

    # Globex is exactly as it was, and bob still works.
    assert await snapshot(client, op) == before
    assert (await ok(client.get(f"{API}/me", headers=bob)))["account"] == "Globex"
    await login(client, "bob@globex.example", BOB_PASSWORD)
    page = await ok(client.get(f"{API}/addresses", headers=bob))
    assert page["total"] == 4
