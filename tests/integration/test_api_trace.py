"""The JSON API over a real socket: the message trace (``/trace``) and the dashboard's
numbers (``/dashboard``) in each token's scope, both backends."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from api_server import API, Headers, Tenants, error, ok
from test_trace_read import MESSAGE_ID, World, seed

from mailward.app import Services

TRACE = f"{API}/trace"


@pytest.fixture
async def world(customers: Tenants, directory: Services) -> World:
    return await seed(directory, create=False)


async def found(client: httpx.AsyncClient, headers: Headers, **params: Any) -> list[str]:
    page = await ok(client.get(TRACE, params=params, headers=headers))
    return [item["trace_id"] for item in page["items"]]


async def test_search_in_each_scope(client: httpx.AsyncClient, op: Headers,
                                    customers: Tenants, world: World) -> None:
    w = world
    assert await found(client, op) == [*w.recent, w.refused, w.shared]
    assert await found(client, customers.alice) == [*w.recent, w.shared]
    assert await found(client, customers.bob) == [w.refused, w.shared]
    assert await found(client, customers.alice, ip="198.51.100.7") == []
    assert await found(client, customers.alice, recipient="bob@globex.example") == []

    assert await found(client, op, sender="news@sender.example") == [w.shared]
    assert await found(client, op, recipient="bob@globex.example") == [w.refused, w.shared]
    assert await found(client, op, subject="REPORT") == [w.shared]
    assert await found(client, op, message_id=MESSAGE_ID) == [w.shared]
    assert await found(client, op, queue_id=w.copy) == [w.shared]
    assert await found(client, op, ip="192.0.2.10") == [w.shared]
    assert await found(client, op, outcome="refused") == [w.refused]
    assert await found(client, customers.bob, outcome="quarantined") == [w.shared]
    old = {"since": (w.now - timedelta(days=11)).isoformat(),
           "until": (w.now - timedelta(days=1)).isoformat()}
    assert await found(client, op, **old) == [w.old]

    page = await ok(client.get(TRACE, params={"limit": 4}, headers=op))
    assert [i["trace_id"] for i in page["items"]] == w.recent[:4]
    rest = await ok(client.get(TRACE, params={"limit": 4, "after": page["next"]},
                               headers=op))
    assert [i["trace_id"] for i in rest["items"]] == [w.recent[4], w.refused, w.shared]
    assert rest["next"] is None
    item = rest["items"][-1]
    assert sorted(item) == ["cursor", "events", "first_at", "last_at", "message_id",
                            "outcome", "peer", "queue_ids", "recipients", "sender",
                            "subject", "trace_id"]

    await error(client.get(TRACE, params={"outcome": "lost"}, headers=op), 400)
    await error(client.get(TRACE, params={"limit": 201}, headers=op), 400)
    await error(client.get(TRACE, params={"after": "nonsense"}, headers=op), 400,
                "not a trace search cursor")
    await error(client.get(TRACE, params={"since": "yesterday"}, headers=op), 400)
    await error(client.get(TRACE), 401)


async def test_story_in_each_scope(client: httpx.AsyncClient, op: Headers,
                                   customers: Tenants, world: World) -> None:
    w = world
    full = await ok(client.get(f"{TRACE}/{w.shared}", headers=op))
    assert len(full["events"]) == 12 and full["summary"]["outcome"] == "delivered"
    assert full["events"][0]["detail"] == {"helo": "mx.sender.example", "tls": True}
    alice = await ok(client.get(f"{TRACE}/{w.copy.lower()}", headers=customers.alice))
    assert {e["domain"] for e in alice["events"]} == {None, "acme.example"}
    assert alice["summary"]["trace_id"] == w.shared
    bob = await ok(client.get(f"{TRACE}/{w.shared}", headers=customers.bob))
    assert [e["kind"] for e in bob["events"]] == ["connect", "mail", "rcpt", "data",
                                                   "verdict"]
    assert bob["summary"]["outcome"] == "quarantined"
    # another account's trace is as missing as one that never was
    hidden = await error(client.get(f"{TRACE}/{w.refused}", headers=customers.alice), 404)
    missing = await error(client.get(f"{TRACE}/0123456789ABCDEF", headers=customers.alice),
                          404)
    assert hidden == f"no trace '{w.refused}'" and missing == "no trace '0123456789ABCDEF'"


async def test_dashboard(client: httpx.AsyncClient, op: Headers, customers: Tenants,
                         world: World, directory: Services) -> None:
    await directory.trace.flush()  # the recorder's counters of the seeded traces
    everything = await ok(client.get(f"{API}/dashboard", headers=op))
    assert everything["period"] == "24h" and len(everything["points"]) == 24
    assert sum(everything["series"]["delivered"]) == 7
    assert sum(everything["series"]["refused"]) == 3
    assert everything["spam_ratio"] == pytest.approx(0.5)
    assert sorted(everything["latency"]) == ["p50", "p90", "p99"]
    assert sorted(everything["queue"]) == ["queue_active", "queue_deferred", "queue_queued"]
    bob = await ok(client.get(f"{API}/dashboard", params={"period": "7d"},
                              headers=customers.bob))
    assert len(bob["points"]) == 28
    assert (sum(bob["series"]["refused"]), sum(bob["series"]["quarantined"]),
            sum(bob["series"]["delivered"])) == (1, 1, 0)
    assert [t["value"] for t in bob["top_refused_recipients"]] == ["bob@globex.example"]
    acme = await ok(client.get(f"{API}/dashboard", params={"account": "Acme", "period": "30d"},
                               headers=op))
    assert len(acme["points"]) == 30 and sum(acme["series"]["delivered"]) == 8
    await error(client.get(f"{API}/dashboard", params={"account": "Globex"},
                           headers=customers.alice), 404)
    await error(client.get(f"{API}/dashboard", params={"period": "1y"}, headers=op), 400)
