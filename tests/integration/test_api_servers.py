"""The JSON API over a real socket: mail server settings (docs/procedures.md), both backends."""

from __future__ import annotations

from urllib.parse import quote

import httpx
from api_server import API, Headers, Tenants, error, ok

ACME = f"{API}/domains/acme.example/servers"


async def add(client: httpx.AsyncClient, headers: Headers, server: str, preference: int,
              **extra: object) -> dict:
    body = {"server": server, "preference": preference, **extra}
    return await ok(client.post(ACME, json=body, headers=headers), 201)


async def test_servers_lifecycle(client: httpx.AsyncClient, customers: Tenants) -> None:
    alice = customers.alice
    empty = await client.get(ACME, headers=alice)
    assert empty.status_code == 200 and empty.json() == []
    assert "held" in empty.headers["warning"]

    first = await add(client, alice, "backup.acme.example", 20)
    assert first == {"id": first["id"], "domain": "acme.example", "host": "backup.acme.example",
                     "port": 25, "preference": 20, "address": "backup.acme.example:25"}
    await add(client, alice, "[2001:db8::25]:2525", 10)
    await add(client, alice, "192.0.2.7", 30, port=587)
    listed = await client.get(ACME, headers=alice)
    assert "warning" not in listed.headers
    assert [s["address"] for s in listed.json()] == [
        "[2001:db8::25]:2525", "backup.acme.example:25", "192.0.2.7:587"]

    edited = await ok(client.patch(f"{ACME}/{quote('192.0.2.7:587')}",
                                   json={"host": "mx.acme.example", "preference": 5},
                                   headers=alice))
    assert (edited["address"], edited["preference"]) == ("mx.acme.example:587", 5)
    await error(client.patch(f"{ACME}/mx.acme.example", json={}, headers=alice), 400,
                "nothing to change")
    ipv6 = quote("[2001:db8::25]:2525", safe="")
    removed = await ok(client.delete(f"{ACME}/{ipv6}", headers=alice))
    assert removed["host"] == "2001:db8::25"
    await error(client.delete(f"{ACME}/{ipv6}", headers=alice), 404)
    remaining = await ok(client.get(ACME, headers=alice))
    assert [s["address"] for s in remaining] == ["mx.acme.example:587", "backup.acme.example:25"]


async def test_bad_servers_are_refused(client: httpx.AsyncClient, customers: Tenants) -> None:
    alice = customers.alice
    for body, status, fragment in (
        ({"server": "nohost", "preference": 1}, 400, "fully qualified"),
        ({"server": "mx.acme.example", "preference": 70000}, 400, "out of range 0-65535"),
        ({"server": "mx.acme.example:0", "preference": 1}, 400, "port 0"),
        ({"server": "mx.acme.example", "preference": 1, "prefrence": 2}, 400, "prefrence"),
        ({"server": "mailfilter1.example.net", "preference": 1}, 400, "loop"),
    ):
        await error(client.post(ACME, json=body, headers=alice), status, fragment)
    await add(client, alice, "mx.acme.example", 10)
    await error(client.post(ACME, json={"server": "MX.acme.example:25", "preference": 2},
                            headers=alice), 409, "already lists")
    assert len(await ok(client.get(ACME, headers=alice))) == 1


async def test_auto_configure(client: httpx.AsyncClient, op: Headers, customers: Tenants):
    alice = customers.alice
    await add(client, alice, "old.acme.example", 10)
    done = await ok(client.post(f"{ACME}/auto-configure", headers=alice))
    assert done["message"] == "Hosting setup done"
    assert [(s["host"], s["port"], s["preference"]) for s in done["servers"]] == [
        ("mail.example.net", 25, 0)]
    assert await ok(client.get(ACME, headers=alice)) == done["servers"]
    await ok(client.patch(f"{API}/domains/acme.example", json={"hosting": False}, headers=op))
    await error(client.post(f"{ACME}/auto-configure", headers=alice), 409, "no hosting")


async def test_other_customers_get_404(client: httpx.AsyncClient, customers: Tenants) -> None:
    await add(client, customers.alice, "mx.acme.example", 10)
    bob = customers.bob
    for attempt in (
        client.get(ACME, headers=bob),
        client.post(ACME, json={"server": "evil.example.net", "preference": 0}, headers=bob),
        client.patch(f"{ACME}/mx.acme.example", json={"preference": 0}, headers=bob),
        client.delete(f"{ACME}/mx.acme.example", headers=bob),
        client.post(f"{ACME}/auto-configure", headers=bob),
    ):
        await error(attempt, 404, "no domain")
    mine = await ok(client.get(ACME, headers=customers.alice))
    assert [(s["address"], s["preference"]) for s in mine] == [("mx.acme.example:25", 10)]
