"""The audit log: every change writes one entry (who, what, when, from where), in the same
transaction; account admins see only their own account's entries; API, CLI and filters."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from api_server import API, Headers, Tenants, bulk, error, ok
from cli_helpers import WIDE, Cli, as_json, documented_shapes, keys_of
from sqlalchemy import delete

from mailward.app import Services
from mailward.core.audit import AuditView
from mailward.db.models import AddressList, AuditEntry, Role
from mailward.directory import (
    Actor,
    AddressFilter,
    Conflict,
    InvalidInput,
    record,
)
from mailward.directory.tokens import hash_token
from mailward.dkim import DkimService
from mailward.queue.spool import NewRecipient

ROOT = Actor.operator("root").via("web 192.0.2.7")
PASSWORDS = ("Wonder-land-123", "Mailbox-pass-1", "Mailbox-pass-2", "Mailbox-pass-3")
ADMIN_PW, BOX_PW, BOX_PW2, BOX_PW3 = PASSWORDS


def view_of(entry: AuditView) -> tuple[Any, ...]:
    return (entry.action, entry.target, entry.account, entry.actor, entry.role, entry.source)


class Log:
    """The entries written since the last look (the operator sees all of them)."""

    def __init__(self, directory: Services) -> None:
        self.directory = directory
        self.seen = 0

    async def new(self) -> list[AuditView]:
        page = await self.directory.audit.search(Actor.operator(), per_page=500)
        fresh = page.items[: page.total - self.seen]
        self.seen = page.total
        return fresh

    async def one(self, action: str, target: str, account: str | None, actor: Actor,
                  detail: str | None = None) -> AuditView:
        """Exactly one new entry, with these fields."""
        fresh = await self.new()
        assert len(fresh) == 1, [view_of(e) for e in fresh]
        entry = fresh[0]
        assert view_of(entry) == (action, target, account, actor.name, actor.role.value,
                                  actor.source)
        if detail is not None:
            assert entry.detail == detail
        return entry


async def test_every_service_change_writes_one_entry(directory: Services) -> None:
    log = Log(directory)
    d = directory
    await d.accounts.create(ROOT, "Acme")
    await log.one("account.create", "Acme", None, ROOT)
    alice = await d.accounts.create_user(ROOT, "Alice@acme.example", ADMIN_PW, account="Acme")
    await log.one("user.create", "alice@acme.example", "Acme", ROOT,
                  detail="account-admin of Acme")
    await d.accounts.create_user(ROOT, "ops", ADMIN_PW)
    await log.one("user.create", "ops", None, ROOT, detail="operator")
    await d.domains.create(ROOT, "acme.example", account="Acme")
    created = await log.one("domain.create", "acme.example", "Acme", ROOT)
    assert created.detail.startswith("account Acme, hosting off, DKIM selector mw")
    await d.domains.set_hosting(ROOT, "acme.example", True)
    await log.one("domain.hosting", "acme.example", "Acme", ROOT, detail="on")

    acme_id = (await d.accounts.get(ROOT, "Acme")).id
    admin = Actor.for_account(acme_id, alice.login, alice.id).via("api 192.0.2.9")
    result = await d.bulk.add_lines(admin, [
        "a@acme.example", f"b@acme.example|{BOX_PW}",
        "c@acme.example|x@elsewhere.example|relay", "bad@nowhere.example",
    ], AddressList.FILTER)
    assert result.counts["added"] == 3
    await log.one("address.bulk-add", "acme.example", "Acme", admin,
                  detail="4 lines to filter: invalid 1, added 3, updated 0, unchanged 0, "
                         "warnings 0")

    addr = d.addresses
    await addr.setup_mailbox(admin, "A@acme.example", BOX_PW2, BOX_PW2)
    await log.one("address.setup-mailbox", "a@acme.example", "Acme", admin, detail="")
    await addr.set_password(admin, "a@acme.example", BOX_PW3, BOX_PW3)
    await log.one("address.set-password", "a@acme.example", "Acme", admin, detail="")
    await addr.set_destinations(admin, "c@acme.example", "y@elsewhere.example")
    await log.one("address.set-destinations", "c@acme.example", "Acme", admin,
                  detail="to y@elsewhere.example")
    await addr.set_autocc(admin, "b@acme.example", "copy@elsewhere.example")
    await log.one("address.set-autocc", "b@acme.example", "Acme", admin,
                  detail="to copy@elsewhere.example")
    await addr.remove_autocc(admin, "b@acme.example")
    await log.one("address.remove-autocc", "b@acme.example", "Acme", admin)
    await addr.set_list(admin, "a@acme.example", AddressList.NO_FILTER)
    await log.one("address.move", "a@acme.example", "Acme", admin, detail="to no-filter")
    await addr.set_quota(ROOT, "a@acme.example", 1024)
    await log.one("address.quota", "a@acme.example", "Acme", ROOT, detail="1024 bytes")
    await d.bulk.add_one(admin, "d@acme.example", AddressList.FILTER)
    await log.one("address.add", "d@acme.example", "Acme", admin,
                  detail="added (pending) on filter")
    await addr.setup_forwarder(admin, "d@acme.example", "z@elsewhere.example")
    await log.one("address.setup-forwarder", "d@acme.example", "Acme", admin,
                  detail="to z@elsewhere.example")
    await addr.delete(admin, ["d@acme.example"])
    await log.one("address.delete", "d@acme.example", "Acme", admin)
    assert await addr.delete_matching(admin, AddressFilter(search="c@")) == 1
    await log.one("address.delete-matching", "matching search 'c@'", "Acme", admin,
                  detail="1 address(es) deleted")
    await d.mail_login.unlock(admin, addr, "b@acme.example")
    await log.one("address.unlock-login", "b@acme.example", "Acme", admin)

    servers = d.servers
    await servers.add(admin, "acme.example", "mx.acme-old.example", preference=10)
    await log.one("server.add", "acme.example", "Acme", admin,
                  detail="mx.acme-old.example:25 preference 10")
    await servers.edit(admin, "acme.example", "mx.acme-old.example", preference=20)
    await log.one("server.edit", "acme.example", "Acme", admin,
                  detail="mx.acme-old.example:25 preference 10 -> "
                         "mx.acme-old.example:25 preference 20")
    await servers.auto_configure_hosting(admin, "acme.example")
    hosting = d.settings.hosting_host
    await log.one("hosting.auto-configure", "acme.example", "Acme", admin,
                  detail=f"{hosting}:25 preference 0; replaced: "
                         "mx.acme-old.example:25 preference 20")
    await servers.delete(admin, "acme.example", hosting)
    await log.one("server.delete", "acme.example", "Acme", admin,
                  detail=f"{hosting}:25 preference 0")
    rotated = await DkimService(d.db).rotate(admin, "acme.example")
    await log.one("dkim.rotate", "acme.example", "Acme", admin,
                  detail=f"new selector {rotated.selector}")

    token = await d.tokens.create(admin, "alice@acme.example", "backup")
    await log.one("token.create", "alice@acme.example", "Acme", admin,
                  detail=f"token {token.id} (backup)")
    await d.tokens.revoke(admin, token.id)
    await log.one("token.revoke", "alice@acme.example", "Acme", admin,
                  detail=f"token {token.id} (backup)")

    everything = (await d.audit.search(ROOT, per_page=500)).items
    await d.domains.delete(ROOT, "acme.example", force=True)
    await log.one("domain.delete", "acme.example", "Acme", ROOT, detail="with 2 address(es)")
    await d.accounts.delete(ROOT, "Acme")
    await log.one("account.delete", "Acme", None, ROOT)

    # no password, token or hash of either in any entry
    secrets = [*PASSWORDS, token.token, hash_token(token.token), "$argon2"]
    for entry in everything:
        text = repr(asdict(entry))
        assert not [s for s in secrets if s in text], entry


async def test_refused_changes_write_nothing(directory: Services) -> None:
    """The entry commits with the change: a refusal or a rollback leaves no entry."""
    log = Log(directory)
    await directory.accounts.create(ROOT, "Acme")
    await directory.domains.create(ROOT, "acme.example", account="Acme")
    await directory.bulk.add_lines(ROOT, [f"box@acme.example|{BOX_PW}"], AddressList.FILTER)
    assert len(await log.new()) == 3
    with pytest.raises(Conflict):
        await directory.accounts.create(ROOT, "Acme")  # rolled back at commit
    with pytest.raises(InvalidInput):
        await directory.addresses.set_password(ROOT, "box@acme.example", BOX_PW2, BOX_PW3)
    with pytest.raises(Conflict):
        await directory.servers.add(ROOT, "acme.example", "mx.a.example", preference=1)
        await directory.servers.add(ROOT, "acme.example", "mx.a.example", preference=2)
    assert [e.action for e in await log.new()] == ["server.add"]
    invalid = await directory.bulk.add_lines(ROOT, ["x@nowhere.example"], AddressList.FILTER)
    assert invalid.counts["invalid"] == 1 and await log.new() == []


async def test_queue_actions_write_one_entry_per_account(directory: Services) -> None:
    log = Log(directory)
    for account, domain in (("Acme", "acme.example"), ("Globex", "globex.example")):
        await directory.accounts.create(ROOT, account)
        await directory.domains.create(ROOT, domain, account=account)
    await log.new()
    queue_id = await directory.queue.spool.enqueue(
        sender="x@sender.example", data=b"Subject: hi\r\n\r\nbody\r\n", origin="mx",
        recipients=[NewRecipient("a@acme.example"), NewRecipient("b@globex.example")],
    )
    await directory.queue.retry(ROOT, queue_id)
    retried = sorted((e.account, e.action, e.target, e.detail) for e in await log.new())
    assert retried == [("Acme", "queue.retry", queue_id, "1 recipient(s): a@acme.example"),
                       ("Globex", "queue.retry", queue_id, "1 recipient(s): b@globex.example")]
    acme = await directory.accounts.actor_for("Acme")
    await directory.queue.delete(acme.via("cli"), queue_id)
    await log.one("queue.delete", queue_id, "Acme", acme.via("cli"),
                  detail="1 recipient(s): a@acme.example")


async def test_account_admin_sees_only_its_own_entries(directory: Services) -> None:
    for account, domain in (("Acme", "acme.example"), ("Globex", "globex.example")):
        await directory.accounts.create(ROOT, account)
        await directory.domains.create(ROOT, domain, account=account)
        await directory.bulk.add_lines(ROOT, [f"info@{domain}"], AddressList.FILTER)
    acme = await directory.accounts.actor_for("Acme")
    globex = await directory.accounts.actor_for("Globex")
    await directory.addresses.set_list(globex, "info@globex.example", AddressList.NO_FILTER)

    seen = await directory.audit.search(acme)
    assert [(e.action, e.target) for e in seen.items] == [
        ("address.bulk-add", "acme.example"), ("domain.create", "acme.example")]
    assert seen.total == 2 and {e.account for e in seen.items} == {"Acme"}
    assert (await directory.audit.search(globex, target="acme")).total == 0
    assert (await directory.audit.search(globex)).total == 3
    everything = await directory.audit.search(ROOT)
    assert everything.total == 7
    assert [e.target for e in everything.items if e.account is None] == ["Globex", "Acme"]


async def test_filters_and_paging(directory: Services) -> None:
    await directory.accounts.create(ROOT, "Acme")
    acme = (await directory.accounts.get(ROOT, "Acme")).id
    start = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
    rows = [  # (minutes after start, actor, action, target)
        (0, ROOT, "address.set-password", "abc@acme.example"),
        (1, Actor.for_account(acme, "Alice@acme.example"), "address.move", "a_c@acme.example"),
        (2, ROOT, "addressbook.import", "book"),
        (3, Actor.operator("bob"), "server.add", "acme.example"),
        (4, ROOT, "address.delete", "x%y@acme.example"),
    ]
    async with directory.db.session() as session:
        await session.execute(delete(AuditEntry))  # only these rows
        for minutes, actor, action, target in rows:
            entry = record(session, actor, action, target, account_id=acme)
            entry.at = start + timedelta(minutes=minutes)
        await session.commit()

    async def targets(actor: Actor = ROOT, **criteria: Any) -> list[str]:
        page = await directory.audit.search(actor, per_page=500, **criteria)
        assert page.total == len(page.items)
        return [e.target for e in page.items]

    newest_first = ["x%y@acme.example", "acme.example", "book", "a_c@acme.example",
                    "abc@acme.example"]
    assert await targets() == newest_first
    assert await targets(action="address.") == [
        "x%y@acme.example", "a_c@acme.example", "abc@acme.example"]
    assert await targets(action="address") == [t for t in newest_first if t != "acme.example"]
    assert await targets(action="Address.SET") == ["abc@acme.example"]
    assert await targets(who="ALICE") == ["a_c@acme.example"]
    assert await targets(who="root") == ["x%y@acme.example", "book", "abc@acme.example"]
    assert await targets(target="a_c") == ["a_c@acme.example"]  # _ is no wildcard
    assert await targets(target="%") == ["x%y@acme.example"]
    assert await targets(target="ACME.example", who="bob") == ["acme.example"]
    assert await targets(since=start + timedelta(minutes=1),
                         until=start + timedelta(minutes=3)) == [
        "acme.example", "book", "a_c@acme.example"]
    naive = datetime(2026, 11, 25, 6, 3)  # taken as UTC
    assert await targets(since=naive) == ["x%y@acme.example", "acme.example"]
    assert await targets(until=start - timedelta(seconds=1)) == []

    pages = [await directory.audit.search(ROOT, page=n, per_page=2) for n in (1, 2, 3, 4)]
    assert [[e.target for e in p.items] for p in pages] == [
        newest_first[0:2], newest_first[2:4], newest_first[4:], []]
    assert {(p.total, p.pages) for p in pages} == {(5, 3)}
    for bad in ({"page": 0}, {"per_page": 0}, {"per_page": 501},
                {"since": start, "until": start - timedelta(seconds=1)}):
        with pytest.raises(InvalidInput):
            await directory.audit.search(ROOT, **bad)


# -- the API ------------------------------------------------------------------------------


async def test_api_audit_is_tenant_scoped(
    client: httpx.AsyncClient, op: Headers, customers: Tenants
) -> None:
    alice, bob = customers.alice, customers.bob
    await bulk(client, alice, "filter", f"box@acme.example|{BOX_PW}\nnobody@globex.example")
    await bulk(client, bob, "filter", "info@globex.example")

    mine = await ok(client.get(f"{API}/audit", headers=alice, params={"action": "address."}))
    assert set(mine) == {"items", "total", "page", "per_page", "pages"}
    assert mine["total"] == 1
    entry = mine["items"][0]
    assert {k: v for k, v in entry.items() if k != "at"} == {
        "account": "Acme", "actor": "alice@acme.example", "role": Role.ACCOUNT_ADMIN.value,
        "source": "api 127.0.0.1", "action": "address.bulk-add", "target": "acme.example",
        "detail": "2 lines to filter: invalid 1, added 1, updated 0, unchanged 0, warnings 0",
    }
    assert datetime.fromisoformat(entry["at"]).tzinfo is not None

    everything_alice = await ok(client.get(f"{API}/audit", headers=alice,
                                           params={"per_page": 500}))
    assert {e["account"] for e in everything_alice["items"]} == {"Acme"}
    assert not [e for e in everything_alice["items"] if "globex" in e["target"]]
    assert (await ok(client.get(f"{API}/audit", headers=alice, params={"who": "bob"})))[
        "total"] == 0

    ops = await ok(client.get(f"{API}/audit", headers=op,
                              params={"action": "account.create", "per_page": 1}))
    assert (ops["total"], ops["pages"], len(ops["items"])) == (2, 2, 1)
    assert ops["items"][0] | {"at": None} == {
        "at": None, "account": None, "actor": "root", "role": "operator",
        "source": "api 127.0.0.1", "action": "account.create", "target": "Globex", "detail": ""}
    both = await ok(client.get(f"{API}/audit", headers=op, params={"action": "address."}))
    assert [e["account"] for e in both["items"]] == ["Globex", "Acme"]
    first = both["items"][1]["at"]
    since = await ok(client.get(f"{API}/audit", headers=op,
                                params={"action": "address.", "since": both["items"][0]["at"]}))
    assert [e["account"] for e in since["items"]] == ["Globex"]
    until = await ok(client.get(f"{API}/audit", headers=op,
                                params={"action": "address.", "until": first}))
    assert [e["account"] for e in until["items"]] == ["Acme"]
    await error(client.get(f"{API}/audit", headers=op, params={"since": "yesterday"}), 400)
    await error(client.get(f"{API}/audit", headers=op, params={"per_page": 501}), 400)
    assert (await client.get(f"{API}/audit")).status_code == 401

    text = repr(everything_alice) + repr(await ok(client.get(f"{API}/audit", headers=op,
                                                             params={"per_page": 500})))
    assert BOX_PW not in text and "mw_" not in text


# -- the CLI ------------------------------------------------------------------------------

AUDIT_SHAPES = "### Audit JSON shapes"


def test_cli_audit_list(tenants: Cli) -> None:
    cli = tenants
    cli("address", "add", "--list", "filter", "--account", "Acme",
        input=f"box@acme.example|{BOX_PW}\n")
    page = as_json(cli("audit", "list", "--json"))
    assert [(e["action"], e["target"], e["account"]) for e in page["items"]] == [
        ("address.bulk-add", "acme.example", "Acme"),
        ("domain.create", "globex.example", "Globex"),
        ("domain.create", "acme.example", "Acme"),
        ("account.create", "Globex", None),
        ("account.create", "Acme", None),
    ]
    assert {e["source"] for e in page["items"]} == {"cli"}
    assert page["items"][0]["actor"] == "Acme" and page["items"][0]["role"] == "account-admin"
    assert {e["actor"] for e in page["items"][1:]} == {"cli"}
    assert BOX_PW not in repr(page)

    acme = as_json(cli("audit", "list", "--account", "Acme", "--json"))
    assert [(e["action"], e["target"]) for e in acme["items"]] == [
        ("address.bulk-add", "acme.example"), ("domain.create", "acme.example")]
    filtered = as_json(cli("audit", "list", "--action", "domain.", "--target", "globex",
                           "--json"))
    assert [e["target"] for e in filtered["items"]] == ["globex.example"]
    paged = as_json(cli("audit", "list", "--who", "cli", "--page", "2", "--per-page", "3",
                        "--json"))
    assert (paged["total"], paged["page"], paged["pages"], len(paged["items"])) == (4, 2, 2, 1)
    assert as_json(cli("audit", "list", "--until", "2000-01-01", "--json"))["total"] == 0
    assert as_json(cli("audit", "list", "--since", "2000-01-01T00:00:00+00:00",
                       "--json"))["total"] == 5

    table = cli("audit", "list", "--account", "Acme", env=WIDE).stdout
    assert "address.bulk-add" in table and "domain.create" in table and "Globex" not in table
    assert table.rstrip().endswith("1-2 of 2 change(s), page 1 of 1")
    assert cli("audit", "list", "--who", "nobody").stdout == "no changes match\n"
    assert "not an ISO 8601" in cli("audit", "list", "--since", "yesterday", code=2).stderr

    shapes = documented_shapes(AUDIT_SHAPES)
    assert sorted(shapes) == ["audit-entry", "audit-page"]
    assert keys_of(page) == keys_of(shapes["audit-page"])
    assert keys_of(page["items"][0]) == keys_of(shapes["audit-entry"])
