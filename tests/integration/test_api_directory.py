"""The JSON API over a real socket: accounts, domains, users and every address operation."""

from __future__ import annotations

from typing import Any

import httpx
from api_server import (
    ALICE_PASSWORD,
    API,
    MAILBOX_PASSWORD,
    Headers,
    Tenants,
    bulk,
    error,
    login,
    ok,
)

# -- operator: accounts, domains, users -------------------------------------------------


async def test_operator_manages_accounts_domains_and_users(
    client: httpx.AsyncClient, op: Headers
) -> None:
    acme = await ok(client.post(f"{API}/accounts", json={"name": "Acme"}, headers=op), 201)
    assert acme["name"] == "Acme" and acme["id"] > 0
    listed = await ok(client.get(f"{API}/accounts/Acme", headers=op))  # read back
    assert listed["created_at"].endswith(("Z", "+00:00")), listed  # RFC 3339, with its zone
    await error(client.post(f"{API}/accounts", json={"name": "Acme"}, headers=op), 409)
    await error(client.post(f"{API}/accounts", json={"name": "  "}, headers=op), 400, "empty")
    await error(client.post(f"{API}/accounts", json={}, headers=op), 400, "name")
    await error(client.post(f"{API}/accounts", json={"name": "A", "x": 1}, headers=op), 400, "x")
    await ok(client.post(f"{API}/accounts", json={"name": "Globex"}, headers=op), 201)
    names = [a["name"] for a in await ok(client.get(f"{API}/accounts", headers=op))]
    assert names == ["Acme", "Globex"]
    assert (await ok(client.get(f"{API}/accounts/Acme", headers=op)))["id"] == acme["id"]
    await error(client.get(f"{API}/accounts/Nobody", headers=op), 404)

    body = {"name": "Acme.Example.", "account": "Acme", "hosting": True}
    domain = await ok(client.post(f"{API}/domains", json=body, headers=op), 201)
    assert (domain["name"], domain["account"], domain["hosting"]) == ("acme.example", "Acme", True)
    body = {"name": "ACME.example", "account": "Globex"}
    await error(client.post(f"{API}/domains", json=body, headers=op), 409, "already in use")
    body = {"name": "x.example", "account": "Nobody"}
    await error(client.post(f"{API}/domains", json=body, headers=op), 404)
    body = {"name": "not a domain", "account": "Acme"}
    await error(client.post(f"{API}/domains", json=body, headers=op), 400)
    body = {"name": "globex.example", "account": "Globex"}
    await ok(client.post(f"{API}/domains", json=body, headers=op), 201)
    only_acme = await ok(client.get(f"{API}/domains", params={"account": "Acme"}, headers=op))
    assert [d["name"] for d in only_acme] == ["acme.example"]
    patched = client.patch(f"{API}/domains/acme.example", json={"hosting": False}, headers=op)
    assert (await ok(patched))["hosting"] is False
    assert (await ok(client.get(f"{API}/domains/acme.example", headers=op)))["hosting"] is False

    user = {"login": "Alice@Acme.example", "password": ALICE_PASSWORD}
    created = await ok(client.post(f"{API}/accounts/Acme/users", json=user, headers=op), 201)
    assert created["login"] == "alice@acme.example"
    assert (created["role"], created["account"]) == ("account-admin", "Acme")
    assert "password" not in created
    await error(client.post(f"{API}/accounts/Acme/users", json=user, headers=op), 409)
    weak = {"login": "weak@acme.example", "password": "short"}
    await error(client.post(f"{API}/accounts/Acme/users", json=weak, headers=op), 400, "8")
    await error(
        client.post(f"{API}/accounts/Nobody/users", json={**user, "login": "n"}, headers=op), 404
    )

    alice = await login(client, "alice@acme.example", ALICE_PASSWORD)
    me = await ok(client.get(f"{API}/me", headers=alice))
    assert me == {
        "role": "account-admin",
        "login": "alice@acme.example",
        "account_id": acme["id"],
        "account": "Acme",
    }
    assert [a["name"] for a in await ok(client.get(f"{API}/accounts", headers=alice))] == ["Acme"]
    await error(client.post(f"{API}/accounts", json={"name": "Mine"}, headers=alice), 403)
    body = {"name": "new.example", "account": "Acme"}
    await error(client.post(f"{API}/domains", json=body, headers=alice), 403, "operator")
    helper = {"login": "helper@acme.example", "password": "Assistant-pass-1"}
    await ok(client.post(f"{API}/accounts/Acme/users", json=helper, headers=alice), 201)
    await login(client, "helper@acme.example", "Assistant-pass-1")

    # Deleting: an account with domains, a domain with addresses need the right order/force.
    await ok(
        client.post(
            f"{API}/addresses",
            json={"address": "info@acme.example", "list": "filter"},
            headers=alice,
        ),
        201,
    )
    await error(client.delete(f"{API}/accounts/Acme", headers=op), 409, "domain")
    await error(client.delete(f"{API}/domains/acme.example", headers=op), 409, "1 address")
    deleted = await ok(
        client.delete(f"{API}/domains/acme.example", params={"force": "true"}, headers=op)
    )
    assert deleted == {"deleted": "acme.example", "addresses_deleted": 1}
    response = await client.delete(f"{API}/accounts/Acme", headers=op)
    assert response.status_code == 204
    await error(client.get(f"{API}/accounts/Acme", headers=op), 404)


# -- account admin: adding addresses --------------------------------------------------------


async def test_bulk_add_reports_every_category(client: httpx.AsyncClient, customers: Tenants):
    alice = customers.alice
    first = await bulk(
        client,
        alice,
        "filter",
        "\n".join(
            [
                "info@acme.example",
                "Sales@ACME.example|Secret-pass-1",
                "fwd@acme.example|one@elsewhere.example,two@elsewhere.example|relay",
                "typo@acme.example|Secret-pass-2|rely",
                "",
                "not-an-address",
                "someone@globex.example",
                "weak@acme.example|short",
            ]
        ),
    )
    assert first["list"] == "filter"
    statuses = [(r["line"], r["status"], r["address"]) for r in first["results"]]
    assert statuses == [
        (1, "added", "info@acme.example"),
        (2, "added", "sales@acme.example"),
        (3, "added", "fwd@acme.example"),
        (4, "added", "typo@acme.example"),
        (6, "invalid", None),
        (7, "invalid", "someone@globex.example"),
        (8, "invalid", "weak@acme.example"),
    ]
    by_line = {r["line"]: r for r in first["results"]}
    assert [by_line[n]["kind"] for n in (1, 2, 3, 4)] == [
        "pending",
        "mailbox",
        "forwarder",
        "mailbox",
    ]
    assert "not 'relay'" in by_line[4]["warning"]
    assert "not a valid address" in by_line[6]["reason"]
    assert "not one of your domains" in by_line[7]["reason"]
    assert "at least" in by_line[8]["reason"]
    assert first["counts"] == {
        "invalid": 3,
        "added": 4,
        "updated": 0,
        "unchanged": 0,
        "warnings": 1,
    }
    text = str(first)
    assert "Secret-pass-1" not in text and "Secret-pass-2" not in text
    assert all("|" not in r["input"] for r in first["results"])

    moved = await bulk(client, alice, "no-filter", "info@acme.example\nsales@acme.example")
    assert [r["status"] for r in moved["results"]] == ["updated", "updated"]
    again = await bulk(client, alice, "no-filter", "INFO@acme.example")
    assert again["results"][0]["status"] == "unchanged"
    assert again["counts"]["unchanged"] == 1
    info = await ok(client.get(f"{API}/addresses/info@acme.example", headers=alice))
    assert (info["list"], info["kind"], info["needs_setup"]) == ("no-filter", "pending", True)
    fwd = await ok(client.get(f"{API}/addresses/fwd@acme.example", headers=alice))
    assert fwd["destinations"] == ["one@elsewhere.example", "two@elsewhere.example"]

    await error(
        client.post(f"{API}/addresses/bulk", json={"list": "spam", "text": "x"}, headers=alice),
        400,
        "list",
    )


async def test_add_one_address(client: httpx.AsyncClient, customers: Tenants) -> None:
    alice = customers.alice
    body = {"address": "box@acme.example", "list": "filter", "password": MAILBOX_PASSWORD}
    added = await ok(client.post(f"{API}/addresses", json=body, headers=alice), 201)
    assert (added["status"], added["kind"], added["address"]) == (
        "added",
        "mailbox",
        "box@acme.example",
    )
    body = {
        "address": "fw@acme.example",
        "list": "no-filter",
        "destinations": ["a@elsewhere.example", "b@elsewhere.example"],
    }
    added = await ok(client.post(f"{API}/addresses", json=body, headers=alice), 201)
    assert added["kind"] == "forwarder"
    body = {"address": "box@acme.example", "list": "no-filter"}
    assert (await ok(client.post(f"{API}/addresses", json=body, headers=alice), 201))[
        "status"
    ] == "updated"

    response = await client.post(
        f"{API}/addresses", headers=alice, json={"address": "x@elsewhere.example", "list": "filter"}
    )
    assert response.status_code == 422
    assert "not one of your domains" in response.json()["error"]
    assert response.json()["result"]["status"] == "invalid"
    body = {"address": "weak@acme.example", "list": "filter", "password": "weakp"}
    response = await client.post(f"{API}/addresses", json=body, headers=alice)
    assert response.status_code == 422 and "weakp" not in response.text
    both = {
        "address": "y@acme.example",
        "list": "filter",
        "password": MAILBOX_PASSWORD,
        "destinations": "a@elsewhere.example",
    }
    await error(client.post(f"{API}/addresses", json=both, headers=alice), 422, "not both")
    await error(
        client.post(f"{API}/addresses", json={"address": "z@acme.example"}, headers=alice),
        400,
        "list",
    )


# -- account admin: setting up and editing -------------------------------------------------


async def test_setup_and_edit_addresses(client: httpx.AsyncClient, customers: Tenants) -> None:
    alice = customers.alice
    await bulk(client, alice, "filter", "box@acme.example\nfwd@acme.example\nnew@acme.example")
    box, fwd = f"{API}/addresses/box@acme.example", f"{API}/addresses/fwd@acme.example"

    def mailbox(password: str, repeat: str) -> dict[str, str]:
        return {"kind": "mailbox", "password": password, "password_repeat": repeat}

    setup = f"{box}/setup"
    await error(
        client.post(setup, json=mailbox(MAILBOX_PASSWORD, MAILBOX_PASSWORD + "x"), headers=alice),
        400,
        "do not match",
    )
    await error(client.post(setup, json=mailbox("short", "short"), headers=alice), 400, "least")
    await error(
        client.post(setup, json={"kind": "mailbox", "password": MAILBOX_PASSWORD}, headers=alice),
        400,
        "password_repeat",
    )
    await error(client.post(setup, json={"kind": "alias"}, headers=alice), 400, "kind")
    response = await client.post(
        setup, json=mailbox(MAILBOX_PASSWORD, MAILBOX_PASSWORD), headers=alice
    )
    assert response.status_code == 200 and MAILBOX_PASSWORD not in response.text
    assert (response.json()["kind"], response.json()["needs_setup"]) == ("mailbox", False)
    await error(
        client.post(setup, json=mailbox(MAILBOX_PASSWORD, MAILBOX_PASSWORD), headers=alice),
        409,
        "already set up",
    )

    forwarder = {"kind": "forwarder", "destinations": ["x@elsewhere.example"]}
    await error(client.post(f"{fwd}/setup", json={"kind": "forwarder"}, headers=alice), 400)
    set_up = await ok(client.post(f"{fwd}/setup", json=forwarder, headers=alice))
    assert (set_up["kind"], set_up["destinations"]) == ("forwarder", ["x@elsewhere.example"])

    # A forwarder has no mailbox: it cannot auto-cc, nor take a password.
    copies = {"destinations": "copy@elsewhere.example"}
    await error(client.put(f"{fwd}/autocc", json=copies, headers=alice), 409, "cannot auto-cc")
    await error(
        client.put(
            f"{fwd}/password",
            headers=alice,
            json={"password": MAILBOX_PASSWORD, "password_repeat": MAILBOX_PASSWORD},
        ),
        409,
    )
    changed = await ok(
        client.put(
            f"{fwd}/destinations",
            headers=alice,
            json={"destinations": "y@elsewhere.example, z@elsewhere.example"},
        )
    )
    assert changed["destinations"] == ["y@elsewhere.example", "z@elsewhere.example"]
    too_long = ",".join(f"someone{n}@elsewhere.example" for n in range(6))
    await error(
        client.put(f"{fwd}/destinations", json={"destinations": too_long}, headers=alice),
        400,
        "128",
    )
    await error(
        client.put(f"{fwd}/destinations", json={"destinations": "fwd@acme.example"}, headers=alice),
        400,
        "itself",
    )

    # Auto-cc on a mailbox, then off again.
    autocc = await ok(client.put(f"{box}/autocc", json=copies, headers=alice))
    assert (autocc["kind"], autocc["destinations"]) == ("autocc", ["copy@elsewhere.example"])
    changed = await ok(
        client.put(
            f"{box}/destinations", headers=alice, json={"destinations": ["other@elsewhere.example"]}
        )
    )
    assert changed["destinations"] == ["other@elsewhere.example"]
    plain = await ok(client.delete(f"{box}/autocc", headers=alice))
    assert (plain["kind"], plain["destinations"]) == ("mailbox", [])
    await error(client.delete(f"{box}/autocc", headers=alice), 409, "not auto-cc")
    await error(
        client.put(f"{API}/addresses/new@acme.example/autocc", json=copies, headers=alice),
        409,
        "setting up",
    )

    # Password change and list move.
    await error(
        client.put(
            f"{box}/password",
            headers=alice,
            json={"password": "Another-pass-1", "password_repeat": "Another-pass-2"},
        ),
        400,
        "match",
    )
    response = await client.put(
        f"{box}/password",
        headers=alice,
        json={"password": "Another-pass-1", "password_repeat": "Another-pass-1"},
    )
    assert response.status_code == 200 and "Another-pass-1" not in response.text
    moved = await ok(client.put(f"{box}/list", json={"list": "no-filter"}, headers=alice))
    assert moved["list"] == "no-filter"
    await error(client.put(f"{box}/list", json={"list": "maybe"}, headers=alice), 400)
    await error(client.get(f"{API}/addresses/nobody@acme.example", headers=alice), 404)


# -- search and delete -------------------------------------------------------------------


async def test_search_with_pagination_and_filters(
    client: httpx.AsyncClient, op: Headers, customers: Tenants
) -> None:
    alice = customers.alice
    body = {"name": "acme-shop.example", "account": "Acme"}
    await ok(client.post(f"{API}/domains", json=body, headers=op), 201)
    await bulk(client, alice, "filter", "\n".join(f"user{n:02}@acme.example" for n in range(15)))
    await bulk(
        client,
        alice,
        "no-filter",
        "\n".join(f"shop{n:02}@acme-shop.example|Shop-pass-{n:02}x" for n in range(10)),
    )

    async def search(**params: Any) -> Any:
        return await ok(client.get(f"{API}/addresses", params=params, headers=alice))

    page = await search(per_page=10, page=3)
    assert (page["total"], page["page"], page["per_page"], page["pages"]) == (25, 3, 10, 3)
    assert [a["email"] for a in page["items"]] == [
        f"user{n:02}@acme.example" for n in (10, 11, 12, 13, 14)
    ]
    everything = await search(per_page=500)
    emails = [a["email"] for a in everything["items"]]
    assert emails == sorted(emails) and len(emails) == 25
    assert (await search(page=9))["items"] == []
    assert (await search(domain="acme-shop.example"))["total"] == 10
    assert (await search(list="filter"))["total"] == 15
    assert (await search(kind="mailbox"))["total"] == 10
    assert (await search(kind="pending", list="no-filter"))["total"] == 0
    found = await search(search="USER1")
    assert [a["email"] for a in found["items"]] == [f"user{n}@acme.example" for n in range(10, 15)]
    assert (await search(search="%"))["total"] == 0  # LIKE wildcards are literal
    assert (await search(search="shop0", domain="acme-shop.example", list="no-filter"))[
        "total"
    ] == 10
    for bad in (
        {"page": 0},
        {"per_page": 0},
        {"per_page": 501},
        {"list": "x"},
        {"kind": "x"},
        {"page": "two"},
    ):
        await error(client.get(f"{API}/addresses", params=bad, headers=alice), 400)


async def test_delete_one_several_and_all_matching(
    client: httpx.AsyncClient, customers: Tenants
) -> None:
    alice = customers.alice
    await bulk(client, alice, "filter", "\n".join(f"a{n}@acme.example" for n in range(6)))
    await bulk(client, alice, "no-filter", "\n".join(f"b{n}@acme.example" for n in range(4)))

    async def total(**params: Any) -> int:
        page = await ok(client.get(f"{API}/addresses", params=params, headers=alice))
        return page["total"]

    one = await ok(client.delete(f"{API}/addresses/A0@acme.example", headers=alice))
    assert one == {"deleted": 1, "addresses": ["a0@acme.example"]}
    await error(client.get(f"{API}/addresses/a0@acme.example", headers=alice), 404)
    await error(client.delete(f"{API}/addresses/a0@acme.example", headers=alice), 404)

    delete = f"{API}/addresses/delete"
    several = await ok(
        client.post(
            delete, headers=alice, json={"addresses": ["a1@acme.example", "a2@acme.example"]}
        )
    )
    assert several == {"deleted": 2, "addresses": ["a1@acme.example", "a2@acme.example"]}
    # All or none: one missing address deletes nothing.
    await error(
        client.post(
            delete, headers=alice, json={"addresses": ["a3@acme.example", "gone@acme.example"]}
        ),
        404,
    )
    assert await total() == 7
    await error(client.post(delete, json={"addresses": []}, headers=alice), 400)
    await error(client.post(delete, json={"list": "no-filter"}, headers=alice), 400, '"all"')
    await error(
        client.post(
            delete, headers=alice, json={"addresses": ["a3@acme.example"], "list": "filter"}
        ),
        400,
        "not both",
    )

    matching = await ok(client.post(delete, json={"list": "no-filter", "all": True}, headers=alice))
    assert matching["deleted"] == 4
    assert await total(list="no-filter") == 0
    assert await total() == 3
    everything = await ok(client.post(delete, json={"all": True}, headers=alice))
    assert everything["deleted"] == 3
    assert await total() == 0
