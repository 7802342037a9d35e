"""The JSON API over a real socket: the mail queue (``/queue``), both backends."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from api_server import API, Headers, Tenants, error, ok
from test_cli_queue import (
    LONG_ERROR,
    MESSAGE,
    ORDER,
    SUBJECT,
    check_shapes,
    expected,
    keys_of,
    later,
    rows,
    seed,
    set_rows,
    when,
)

from mailward.app import Services

QUEUE = f"{API}/queue"
EVERYONE = tuple(recipient for _, recipient in ORDER)
ACME = ("a@acme.example", "c@acme.example", "e@acme.example")
GLOBEX = ("b@globex.example", "d@globex.example")


async def listing(client: httpx.AsyncClient, headers: Headers, **params: Any) -> Any:
    return await ok(client.get(QUEUE, params=params, headers=headers))


async def test_list_filters_and_pages(
    client: httpx.AsyncClient, op: Headers, customers: Tenants, directory: Services
) -> None:
    empty = await listing(client, op)
    assert empty == {"items": [], "total": 0, "page": 1, "per_page": 50, "pages": 1}
    ids = await seed(directory)

    everything = await listing(client, op)
    assert rows(everything) == expected(ids, *EVERYONE)
    assert (everything["total"], everything["pages"]) == (6, 1)
    first = everything["items"][0]
    assert {k: v for k, v in first.items() if not k.endswith("_at")} == {
        "queue_id": ids["shared"], "recipient": "a@acme.example", "domain": "acme.example",
        "sender": "x@sender.example", "subject": SUBJECT, "size": len(MESSAGE),
        "origin": "mx", "status": "queued", "attempts": 0, "last_error": None}
    assert when(first["next_attempt_at"]) <= datetime.now(UTC)

    by_status = {
        "queued": ("a@acme.example", "b@globex.example", "out@elsewhere.example"),
        "deferred": ("c@acme.example",),
        "held": ("d@globex.example",),
        "active": ("e@acme.example",),
    }
    for status, recipients in by_status.items():
        found = await listing(client, op, status=status)
        assert rows(found) == expected(ids, *recipients), status
    deferred = (await listing(client, op, status="deferred"))["items"][0]
    assert (deferred["attempts"], deferred["last_error"]) == (2, LONG_ERROR)
    assert rows(await listing(client, op, domain="Acme.Example")) == expected(ids, *ACME)
    assert rows(await listing(client, op, domain="globex.example", status="held")) == expected(
        ids, "d@globex.example")

    second = await listing(client, op, per_page=2, page=2)
    assert rows(second) == expected(ids, "c@acme.example", "d@globex.example")
    assert (second["total"], second["page"], second["per_page"], second["pages"]) == (
        6, 2, 2, 3)
    past = await listing(client, op, page=9)
    assert (past["items"], past["total"]) == ([], 6)

    await error(client.get(QUEUE, params={"status": "bogus"}, headers=op), 400,
                "status must be one of queued, deferred, active, held")
    for bad in ({"page": 0}, {"per_page": 0}, {"per_page": 1001}, {"page": "two"},
                {"domain": "not a domain"}):
        await error(client.get(QUEUE, params=bad, headers=op), 400)


async def test_show_retry_delete(
    client: httpx.AsyncClient, op: Headers, customers: Tenants, directory: Services
) -> None:
    ids = await seed(directory)
    spool = directory.queue.spool
    shared = await ok(client.get(f"{QUEUE}/{ids['shared']}", headers=op))
    assert {k: v for k, v in shared.items() if k not in ("received_at", "recipients")} == {
        "queue_id": ids["shared"], "sender": "x@sender.example", "subject": SUBJECT,
        "size": len(MESSAGE), "origin": "mx", "peer": "192.0.2.10"}
    assert [r["recipient"] for r in shared["recipients"]] == ["a@acme.example",
                                                              "b@globex.example"]
    assert await ok(client.get(f"{QUEUE}/{ids['shared'].lower()}", headers=op)) == shared
    await error(client.get(f"{QUEUE}/0123456789ABCDEF", headers=op), 404,
                "no queued message '0123456789ABCDEF'")

    before = (await ok(client.get(f"{QUEUE}/{ids['deferred']}", headers=op)))["recipients"][0]
    assert when(before["next_attempt_at"]) > datetime.now(UTC)
    retried = await ok(client.post(f"{QUEUE}/{ids['deferred']}/retry", headers=op))
    entry = retried["recipients"][0]
    assert when(entry["next_attempt_at"]) <= datetime.now(UTC)
    assert (entry["status"], entry["attempts"], entry["last_error"]) == (
        "deferred", 2, LONG_ERROR)
    assert await ok(client.get(f"{QUEUE}/{ids['deferred']}", headers=op)) == retried
    busy = await ok(client.post(f"{QUEUE}/{ids['active']}/retry", headers=op))
    assert busy["recipients"][0]["status"] == "active"
    assert when(busy["recipients"][0]["next_attempt_at"]) > datetime.now(UTC)  # left alone
    await error(client.post(f"{QUEUE}/0123456789ABCDEF/retry", headers=op), 404)

    path = None if spool.in_database else spool.path_of(ids["deferred"])
    assert path is None or path.exists()
    deleted = await ok(client.delete(f"{QUEUE}/{ids['deferred']}", headers=op))
    assert deleted == retried  # what was deleted
    assert path is None or not path.exists()
    await error(client.get(f"{QUEUE}/{ids['deferred']}", headers=op), 404)
    await error(client.delete(f"{QUEUE}/{ids['deferred']}", headers=op), 404)
    assert rows(await listing(client, op)) == expected(
        ids, *(r for r in EVERYONE if r != "c@acme.example"))


async def test_customers_only_reach_their_own_recipients(
    client: httpx.AsyncClient, op: Headers, customers: Tenants, directory: Services
) -> None:
    alice, bob = customers.alice, customers.bob
    ids = await seed(directory)
    assert rows(await listing(client, alice)) == expected(ids, *ACME)
    assert rows(await listing(client, bob)) == expected(ids, *GLOBEX)
    assert (await listing(client, bob, domain="acme.example"))["total"] == 0
    assert rows(await listing(client, op)) == expected(ids, *EVERYONE)  # the operator: all
    shared = await ok(client.get(f"{QUEUE}/{ids['shared']}", headers=bob))
    assert [r["recipient"] for r in shared["recipients"]] == ["b@globex.example"]

    # Acme's message is invisible to Globex, the forward leaving us to every account.
    for queue_id, headers in ((ids["deferred"], bob), (ids["forward"], alice)):
        for attempt in (client.get(f"{QUEUE}/{queue_id}", headers=headers),
                        client.post(f"{QUEUE}/{queue_id}/retry", headers=headers),
                        client.delete(f"{QUEUE}/{queue_id}", headers=headers)):
            await error(attempt, 404, f"no queued message '{queue_id}'")
    untouched = await ok(client.get(f"{QUEUE}/{ids['deferred']}", headers=op))
    assert when(untouched["recipients"][0]["next_attempt_at"]) > datetime.now(UTC)

    # Globex retries and deletes only its own recipient of the shared message.
    await set_rows(directory, "a@acme.example", "b@globex.example", next_attempt_at=later())
    retried = await ok(client.post(f"{QUEUE}/{ids['shared']}/retry", headers=bob))
    assert [r["recipient"] for r in retried["recipients"]] == ["b@globex.example"]
    times = {r["recipient"]: when(r["next_attempt_at"]) for r in
             (await ok(client.get(f"{QUEUE}/{ids['shared']}", headers=op)))["recipients"]}
    assert times["b@globex.example"] <= datetime.now(UTC) < times["a@acme.example"]

    spool = directory.queue.spool
    path = None if spool.in_database else spool.path_of(ids["shared"])
    removed = await ok(client.delete(f"{QUEUE}/{ids['shared']}", headers=bob))
    assert [r["recipient"] for r in removed["recipients"]] == ["b@globex.example"]
    left = await ok(client.get(f"{QUEUE}/{ids['shared']}", headers=alice))
    assert [r["recipient"] for r in left["recipients"]] == ["a@acme.example"]
    assert path is None or path.exists()  # Acme's recipient still needs the message
    await error(client.get(f"{QUEUE}/{ids['shared']}", headers=bob), 404)
    await ok(client.delete(f"{QUEUE}/{ids['shared']}", headers=alice))
    assert path is None or not path.exists()
    await error(client.get(f"{QUEUE}/{ids['shared']}", headers=op), 404)


async def test_shapes_match_the_cli_docs(
    client: httpx.AsyncClient, op: Headers, directory: Services
) -> None:
    ids = await seed(directory)
    page = await listing(client, op)
    message = await ok(client.get(f"{QUEUE}/{ids['shared']}", headers=op))
    check_shapes({"queue-page": page, "queue-entry": page["items"][0], "queue-message": message})
    retried = await ok(client.post(f"{QUEUE}/{ids['shared']}/retry", headers=op))
    deleted = await ok(client.delete(f"{QUEUE}/{ids['shared']}", headers=op))
    assert keys_of(retried) == keys_of(deleted) == keys_of(message)


async def test_queue_routes_need_a_token_and_are_documented(
    client: httpx.AsyncClient, op: Headers
) -> None:
    await error(client.get(QUEUE), 401)
    spec = await ok(client.get(f"{API}/openapi.json"))
    paths = spec["paths"]
    assert set(paths[QUEUE]) == {"get"}
    assert set(paths[f"{QUEUE}/{{queue_id}}"]) == {"get", "delete"}
    assert set(paths[f"{QUEUE}/{{queue_id}}/retry"]) == {"post"}
    status = next(p for p in paths[QUEUE]["get"]["parameters"] if p["name"] == "status")
    assert "held" in str(status["schema"])
