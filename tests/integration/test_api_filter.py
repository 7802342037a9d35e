"""The JSON API over a real socket: spam filter settings (``/domains/{name}/filter``,
``/addresses/{email}/filter``) and the quarantine (``/quarantine``), both backends, with
the other tenant's token trying everything."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from api_server import API, Headers, Tenants, error, ok
from test_cli_filter import ANN, HAM, SPAM, check_filter_shapes

from mailward.app import Services
from mailward.config import Settings
from mailward.db import AddressList
from mailward.directory import Actor
from mailward.filter.pipeline import Finding
from mailward.quarantine.service import Hold, Quarantine

OP = Actor.operator()
DOMAIN = f"{API}/domains/acme.example/filter"
ADDRESS = f"{API}/addresses/{ANN}/filter"
QUARANTINE = f"{API}/quarantine"


@pytest.fixture
async def acme(customers: Tenants, directory: Services) -> Tenants:
    """Alice's Acme (acme.example) with ann@, Bob's Globex (globex.example) with bob@."""
    await directory.bulk.add_lines(OP, [ANN, "bob@globex.example"], AddressList.FILTER)
    return customers


async def held(directory: Services, settings: Settings, recipient: str = ANN,
               data: bytes = SPAM) -> int:
    """Hold ``data`` for ``recipient`` as the MX tier does; its quarantine (entry) id."""
    await Quarantine(directory.db, settings).hold(
        sender="bounce@prizes.example", peer="192.0.2.1", data=data, score=12.0,
        findings=(Finding("content", 12.0, "x"),),
        holds=[Hold(recipient, "score 12 ≥ quarantine threshold 10")])
    page = await directory.quarantine.list(OP, address=recipient, per_page=1)
    return page.items[0].id


async def queued_for(directory: Services, recipient: str) -> list[str]:
    page = await directory.queue.list(OP, domain=recipient.rsplit("@", 1)[1])
    return [e.queue_id for e in page.items if e.recipient == recipient]


# -- settings ------------------------------------------------------------------------------


async def test_policy_with_inheritance(client: httpx.AsyncClient, acme: Tenants) -> None:
    alice = acme.alice
    domain = await ok(client.get(DOMAIN, headers=alice))
    assert (domain["domain"], domain["address"], domain["tag_score"]) == (
        "acme.example", None, None)
    assert domain["effective"]["quarantine_score"] == 10.0

    body = {"tag_score": 4, "subject_tag": "[SPAM]", "dmarc_reject": "reject",
            "virus_action": "quarantine"}
    changed = await ok(client.put(DOMAIN, json=body, headers=alice))
    assert (changed["tag_score"], changed["subject_tag"], changed["dmarc_reject"],
            changed["virus_action"]) == (4.0, "[SPAM]", "reject", "quarantine")
    mine = await ok(client.put(ADDRESS, json={"quarantine_score": 8}, headers=alice))
    assert mine["address"] == ANN and mine["effective"] == {
        "tag_score": 4.0, "quarantine_score": 8.0, "reject_score": 15.0,
        "subject_tag": "[SPAM]", "dmarc_reject": "reject", "virus_action": "quarantine",
        "bulk_action": "deliver", "bulk_score": -100.0}
    # a missing field stays, null inherits again
    mine = await ok(client.put(ADDRESS, json={"quarantine_score": None, "reject_score": 20},
                               headers=alice))
    assert (mine["quarantine_score"], mine["reject_score"]) == (None, 20.0)
    assert mine["effective"]["quarantine_score"] == 10.0
    assert (await ok(client.get(ADDRESS, headers=alice)))["reject_score"] == 20.0

    await error(client.put(DOMAIN, json={"tag_score": 20}, headers=alice), 400,
                "thresholds must rise: tag 20 ≤ quarantine 10 ≤ reject 15")
    await error(client.put(ADDRESS, json={"reject_score": 6}, headers=alice), 400,
                "thresholds must rise")
    assert (await ok(client.get(DOMAIN, headers=alice)))["tag_score"] == 4.0
    await error(client.put(DOMAIN, json={}, headers=alice), 400, "nothing to change")
    await error(client.put(DOMAIN, json={"tag": 3}, headers=alice), 400, "tag")
    await error(client.put(DOMAIN, json={"dmarc_reject": "bounce"}, headers=alice), 400,
                "dmarc_reject")
    await error(client.put(DOMAIN, json={"virus_action": "deliver"}, headers=alice), 400,
                "virus_action")
    await error(client.put(DOMAIN, json={"tag_score": 5000}, headers=alice), 400,
                "tag_score: must be between -100 and 1000")
    await error(client.get(f"{API}/addresses/nobody@acme.example/filter", headers=alice), 404,
                "no address nobody@acme.example")


# -- allow and block lists -----------------------------------------------------------------


async def test_sender_lists(client: httpx.AsyncClient, acme: Tenants) -> None:
    alice = acme.alice
    rule = await ok(client.post(f"{DOMAIN}/senders", headers=alice,
                                json={"sender": "Friend@Partner.example", "action": "allow"}),
                    201)
    assert rule == {"domain": "acme.example", "address": None,
                    "sender": "friend@partner.example", "action": "allow"}
    await ok(client.post(f"{ADDRESS}/senders", headers=alice,
                         json={"sender": "*@spammer.example", "action": "block"}), 201)
    listing = await ok(client.get(f"{DOMAIN}/senders", headers=alice))
    assert [(r["address"], r["action"], r["sender"]) for r in listing] == [
        (None, "allow", "friend@partner.example"), (ANN, "block", "spammer.example")]
    assert [r["sender"] for r in await ok(client.get(f"{ADDRESS}/senders",
                                                     headers=alice))] == ["spammer.example"]

    for action in ("allow", "block"):
        await error(client.post(f"{ADDRESS}/senders", headers=alice,
                                json={"sender": "spammer.example", "action": action}),
                    409, f"spammer.example is already on {ANN}'s block list")
    await error(client.post(f"{ADDRESS}/senders", headers=alice,
                            json={"sender": "x@y.example", "action": "maybe"}), 400)

    gone = await ok(client.delete(f"{ADDRESS}/senders/@spammer.example", headers=alice))
    assert (gone["sender"], gone["action"], gone["address"]) == ("spammer.example", "block",
                                                                 ANN)
    await error(client.delete(f"{ADDRESS}/senders/spammer.example", headers=alice), 404,
                "is not on")
    await ok(client.delete(f"{DOMAIN}/senders/friend@partner.example", headers=alice))
    assert await ok(client.get(f"{DOMAIN}/senders", headers=alice)) == []


# -- training ------------------------------------------------------------------------------


async def test_train_spam_and_ham(client: httpx.AsyncClient, acme: Tenants) -> None:
    alice = acme.alice
    body = {"verdict": "spam", "message": SPAM.decode()}
    learnt = await ok(client.post(f"{DOMAIN}/train", json=body, headers=alice))
    assert learnt["spam"] is True and learnt["after"] >= 0.9
    again = await ok(client.post(f"{ADDRESS}/train", json=body, headers=alice))
    assert again["steps"] == 0 and again["before"] >= 0.9  # the domain's model kept it

    eight_bit = HAM.replace(b"Hi Ann", "Grüß dich, Ann".encode("latin-1"))
    body = {"verdict": "ham", "message_base64": base64.b64encode(eight_bit).decode()}
    ham = await ok(client.post(f"{ADDRESS}/train", json=body, headers=alice))
    assert ham["spam"] is False and ham["after"] <= 0.1

    for bad, reason in (({"verdict": "spam"}, 'exactly one of "message"'),
                        ({"verdict": "spam", "message": "x", "message_base64": "eA=="},
                         'exactly one of "message"'),
                        ({"verdict": "spam", "message_base64": "not base64!"}, "base64"),
                        ({"verdict": "spam", "message": "  \r\n"}, "the message is empty"),
                        ({"verdict": "junk", "message": "x"}, "verdict")):
        await error(client.post(f"{DOMAIN}/train", json=bad, headers=alice), 400, reason)


# -- quarantine ----------------------------------------------------------------------------


async def test_quarantine_list_show_download(
    client: httpx.AsyncClient, acme: Tenants, directory: Services, settings: Settings
) -> None:
    alice = acme.alice
    empty = await ok(client.get(QUARANTINE, headers=alice))
    assert empty == {"items": [], "total": 0, "page": 1, "per_page": 50, "pages": 1}
    first = await held(directory, settings)
    second = await held(directory, settings)

    page = await ok(client.get(QUARANTINE, headers=alice))
    assert [i["id"] for i in page["items"]] == [second, first]
    item = page["items"][0]
    assert {k: item[k] for k in ("recipient", "sender", "from_header", "subject", "score",
                                 "status", "released_by")} == {
        "recipient": ANN, "sender": "bounce@prizes.example",
        "from_header": "Lucky Winner <winner@prizes.example>",
        "subject": "You won! Claim your prize now", "score": 12.0, "status": "held",
        "released_by": None}
    one = await ok(client.get(QUARANTINE, params={"per_page": 1, "page": 2,
                                                  "address": ANN}, headers=alice))
    assert ([i["id"] for i in one["items"]], one["pages"]) == ([first], 2)
    by_domain = await ok(client.get(QUARANTINE, params={"domain": "acme.example",
                                                        "status": "all"}, headers=alice))
    assert by_domain["total"] == 2
    await error(client.get(QUARANTINE, params={"status": "gone"}, headers=alice), 400,
                "status")
    await error(client.get(QUARANTINE, params={"per_page": 0}, headers=alice), 400,
                "per_page")

    detail = await ok(client.get(f"{QUARANTINE}/{first}", headers=alice))
    assert (detail["entry"]["id"], detail["peer"]) == (first, "192.0.2.1")
    assert detail["findings"] == [{"check": "content", "score": 12.0, "reason": "x"}]
    assert detail["headers"].startswith("From: Lucky Winner")

    raw = await client.get(f"{QUARANTINE}/{first}/raw", headers=alice)
    assert raw.status_code == 200 and raw.content == SPAM
    assert raw.headers["content-type"].startswith("message/rfc822")
    assert f'filename="quarantine-{first}.eml"' in raw.headers["content-disposition"]
    await error(client.get(f"{QUARANTINE}/99999/raw", headers=alice), 404,
                "no quarantined message 99999")


async def test_release_and_delete(
    client: httpx.AsyncClient, acme: Tenants, directory: Services, settings: Settings
) -> None:
    alice = acme.alice
    entry = await held(directory, settings)
    released = await ok(client.post(f"{QUARANTINE}/{entry}/release",
                                    json={"allow_sender": True}, headers=alice))
    assert released["entry"]["status"] == "released"
    assert released["entry"]["released_by"] == "alice@acme.example"
    assert (released["learnt"], released["allowed"]) == (True, "winner@prizes.example")
    assert await queued_for(directory, ANN) == [released["queue_id"]]
    allowed = await ok(client.get(f"{ADDRESS}/senders", headers=alice))
    assert [(r["sender"], r["action"]) for r in allowed] == [("winner@prizes.example", "allow")]

    await error(client.post(f"{QUARANTINE}/{entry}/release", headers=alice), 409,
                f"quarantined message {entry} was already released")
    assert await queued_for(directory, ANN) == [released["queue_id"]]
    assert (await ok(client.get(QUARANTINE, headers=alice)))["total"] == 0
    done = await ok(client.get(QUARANTINE, params={"status": "released"}, headers=alice))
    assert [i["id"] for i in done["items"]] == [entry]

    plain = await held(directory, settings)
    quiet = await ok(client.post(f"{QUARANTINE}/{plain}/release", headers=alice))
    assert quiet["allowed"] is None and len(await queued_for(directory, ANN)) == 2

    doomed = await held(directory, settings)
    deleted = await ok(client.delete(f"{QUARANTINE}/{doomed}", headers=alice))
    assert (deleted["id"], deleted["status"]) == (doomed, "held")
    await error(client.get(f"{QUARANTINE}/{doomed}", headers=alice), 404)
    await error(client.delete(f"{QUARANTINE}/{doomed}", headers=alice), 404)
    assert len(await queued_for(directory, ANN)) == 2


# -- tenants -------------------------------------------------------------------------------


async def test_another_account_gets_404(
    client: httpx.AsyncClient, acme: Tenants, op: Headers, directory: Services,
    settings: Settings,
) -> None:
    bob = acme.bob
    entry = await held(directory, settings)
    await ok(client.post(f"{DOMAIN}/senders", headers=acme.alice,
                         json={"sender": "friend@partner.example", "action": "allow"}), 201)
    missing = f"no quarantined message {entry}"
    for request in (client.get(f"{QUARANTINE}/{entry}", headers=bob),
                    client.get(f"{QUARANTINE}/{entry}/raw", headers=bob),
                    client.post(f"{QUARANTINE}/{entry}/release", headers=bob),
                    client.delete(f"{QUARANTINE}/{entry}", headers=bob)):
        await error(request, 404, missing)
    assert (await ok(client.get(QUARANTINE, params={"address": ANN}, headers=bob)))[
        "total"] == 0
    assert (await ok(client.get(QUARANTINE, params={"domain": "acme.example"},
                                headers=bob)))["total"] == 0

    train = {"verdict": "spam", "message": SPAM.decode()}
    for base, what in ((DOMAIN, "no domain acme.example"), (ADDRESS, f"no address {ANN}")):
        for request in (client.get(base, headers=bob),
                        client.put(base, json={"tag_score": 1}, headers=bob),
                        client.get(f"{base}/senders", headers=bob),
                        client.post(f"{base}/senders", headers=bob,
                                    json={"sender": "x@y.example", "action": "block"}),
                        client.delete(f"{base}/senders/friend@partner.example", headers=bob),
                        client.post(f"{base}/train", json=train, headers=bob)):
            await error(request, 404, what.split(" ")[0])
    # nothing changed for Acme; the operator sees Acme's held mail
    assert (await ok(client.get(DOMAIN, headers=acme.alice)))["tag_score"] is None
    assert len(await ok(client.get(f"{DOMAIN}/senders", headers=acme.alice))) == 1
    assert (await ok(client.get(f"{QUARANTINE}/{entry}", headers=op)))["entry"]["status"] == (
        "held")
    assert await queued_for(directory, ANN) == []


# -- documentation ---------------------------------------------------------------------------


async def test_answers_match_the_documented_shapes(
    client: httpx.AsyncClient, acme: Tenants, directory: Services, settings: Settings
) -> None:
    alice = acme.alice
    entry = await held(directory, settings)
    actual: dict[str, Any] = {
        "filter-policy": await ok(client.put(ADDRESS, json={"tag_score": 3}, headers=alice)),
        "sender-rule": await ok(client.post(f"{DOMAIN}/senders", headers=alice, json={
            "sender": "partner.example", "action": "allow"}), 201),
        "learnt": await ok(client.post(f"{DOMAIN}/train", headers=alice, json={
            "verdict": "ham", "message": HAM.decode()})),
        "quarantine-page": await ok(client.get(QUARANTINE, headers=alice)),
        "quarantine-detail": await ok(client.get(f"{QUARANTINE}/{entry}", headers=alice)),
    }
    actual["quarantine-entry"] = actual["quarantine-page"]["items"][0]
    actual["quarantine-released"] = await ok(client.post(f"{QUARANTINE}/{entry}/release",
                                                         headers=alice))
    check_filter_shapes(actual)


async def test_routes_need_a_token_and_are_documented(client: httpx.AsyncClient) -> None:
    await error(client.get(QUARANTINE), 401)
    await error(client.get(DOMAIN), 401)
    spec = await ok(client.get(f"{API}/openapi.json"))
    paths = spec["paths"]
    for base in (f"{API}/domains/{{name}}/filter", f"{API}/addresses/{{email}}/filter"):
        assert set(paths[base]) == {"get", "put"}
        assert set(paths[f"{base}/senders"]) == {"get", "post"}
        assert set(paths[f"{base}/senders/{{sender}}"]) == {"delete"}
        assert set(paths[f"{base}/train"]) == {"post"}
    assert set(paths[QUARANTINE]) == {"get"}
    assert set(paths[f"{QUARANTINE}/{{entry_id}}"]) == {"get", "delete"}
    assert set(paths[f"{QUARANTINE}/{{entry_id}}/raw"]) == {"get"}
    assert set(paths[f"{QUARANTINE}/{{entry_id}}/release"]) == {"post"}
    raw = paths[f"{QUARANTINE}/{{entry_id}}/raw"]["get"]["responses"]["200"]
    assert "message/rfc822" in raw["content"]
    status = next(p for p in paths[QUARANTINE]["get"]["parameters"] if p["name"] == "status")
    assert "released" in str(status["schema"])
