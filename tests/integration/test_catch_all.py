"""Catch-all and alias domains: RCPT answers of the real MX (stdlib smtplib client),
delivery into the mailbox, tenant scoping, and setting them by CLI and API. Both backends."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from api_server import ALICE_PASSWORD, API, Headers, Tenants, ok, running_server
from cli_helpers import Cli, as_json, error_line
from mail_helpers import eventually, mail_roles, mail_settings, message, port_of
from panel_client import Panel, messages

from mailward.app import Services
from mailward.config import Settings
from mailward.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from mailward.db import AddressList
from mailward.directory import Actor
from mailward.directory.aliases import AliasService
from mailward.store import StoreError, open_store

OP = Actor.operator()
OUTSIDER = "sender@outside.example"


def rcpt(port: int, recipient: str, data: bytes | None = None) -> tuple[int, bytes]:
    """RCPT TO ``recipient`` on the MX; with ``data``, send it when accepted."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.outside.example")
        client.mail(OUTSIDER)
        code, reply = client.rcpt(recipient)
        if code == 250 and data is not None:
            sent = client.data(data)
            assert sent[0] == 250, sent
        return code, reply


@dataclass
class World:
    settings: Settings
    services: Services
    mx: int
    aliases: AliasService
    acme: Actor  # Acme's account admin
    globex: Actor  # Globex's

    async def rcpt(self, recipient: str, data: bytes | None = None) -> tuple[int, bytes]:
        return await asyncio.to_thread(rcpt, self.mx, recipient, data)

    async def inbox(self, mailbox: str, count: int) -> list[bytes]:
        """The INBOX of ``mailbox`` once it holds ``count`` messages (delivery is async)."""
        store = open_store(self.settings, self.services.db)

        async def check() -> list[bytes]:
            try:
                found = await store.messages(mailbox, "INBOX")
            except StoreError:  # not created until the first delivery
                return []
            if len(found) < count:
                return []
            return [await store.fetch(mailbox, "INBOX", m.uid) for m in found]

        return await eventually(check)


@pytest.fixture
async def world(settings: Settings, directory: Services) -> AsyncIterator[World]:
    acme = await directory.accounts.create(OP, "Acme")
    globex = await directory.accounts.create(OP, "Globex")
    await directory.domains.create(OP, "acme.example", account="Acme", hosting=True)
    await directory.servers.auto_configure_hosting(OP, "acme.example")
    await directory.domains.create(OP, "globex.example", account="Globex", hosting=True)
    for line, domain_list in (("carol@acme.example|Secret-pass-9", AddressList.NO_FILTER),
                              ("dave@globex.example|Secret-pass-9", AddressList.NO_FILTER)):
        result = await directory.bulk.add_lines(OP, [line], domain_list)
        assert result.results[0].status.value == "added", result.results[0]
    configured = mail_settings(settings)
    async with mail_roles(configured) as urls:
        yield World(configured, Services(directory.db, configured), port_of(urls["mx"]),
                    AliasService(directory.db), Actor.for_account(acme.id, "alice"),
                    Actor.for_account(globex.id, "bob"))


async def test_catch_all_takes_unlisted_names_at_rcpt_and_delivers(world: World) -> None:
    code, reply = await world.rcpt("nobody@acme.example")
    assert (code, reply[:5]) == (550, b"5.1.1")  # off by default

    view = await world.aliases.set_catch_all(world.acme, "acme.example", "Carol@acme.example")
    assert view.address == "carol@acme.example" and "dictionary" in view.warning
    data = message(OUTSIDER, "nobody@acme.example", "To a guessed name")
    assert (await world.rcpt("nobody@acme.example", data))[0] == 250
    assert (await world.rcpt("other+tag@acme.example"))[0] == 250
    [got] = await world.inbox("carol@acme.example", 1)
    assert got.startswith(b"Delivered-To: carol@acme.example\r\n")
    assert b"Subject: To a guessed name" in got
    assert (await world.rcpt("nobody@globex.example"))[0] == 550  # only acme's

    audit = await world.services.audit.search(OP, action="domain.catch-all")
    assert [entry.detail for entry in audit.items] == ["to carol@acme.example"]

    await world.aliases.set_catch_all(world.acme, "acme.example", None)
    code, reply = await world.rcpt("nobody@acme.example")  # the cache forgot at once
    assert (code, reply[:5]) == (550, b"5.1.1")


async def test_deleting_the_address_turns_the_catch_all_off(world: World) -> None:
    await world.services.bulk.add_lines(OP, ["spam@acme.example|carol@acme.example|relay"],
                                        AddressList.FILTER)
    await world.aliases.set_catch_all(OP, "acme.example", "spam@acme.example")
    assert (await world.rcpt("anything@acme.example"))[0] == 250
    await world.services.addresses.delete(OP, ["spam@acme.example"])
    assert (await world.aliases.catch_all(OP, "acme.example")).address is None
    assert (await world.rcpt("anything@acme.example"))[0] == 550


async def test_catch_all_is_one_of_the_domains_own_addresses(world: World) -> None:
    with pytest.raises(NotFound):  # not Globex's domain
        await world.aliases.set_catch_all(world.globex, "acme.example", "carol@acme.example")
    with pytest.raises(InvalidInput, match=r"not an address of globex\.example"):
        await world.aliases.set_catch_all(world.globex, "globex.example", "carol@acme.example")
    with pytest.raises(InvalidInput):  # unlisted
        await world.aliases.set_catch_all(world.acme, "acme.example", "ghost@acme.example")
    await world.services.bulk.add_lines(OP, ["pending@acme.example"], AddressList.FILTER)
    with pytest.raises(Conflict, match="pending"):
        await world.aliases.set_catch_all(world.acme, "acme.example", "pending@acme.example")
    assert (await world.aliases.catch_all(OP, "acme.example")).address is None
    assert (await world.aliases.catch_all(OP, "globex.example")).address is None


async def test_alias_domain_delivers_once_verified(world: World) -> None:
    added = await world.aliases.add_alias(world.acme, "acme.example", "Alias.example")
    assert not added.verified and added.verification_txt.startswith("mailward-verification=")
    code, reply = await world.rcpt("carol@alias.example")
    assert (code, reply[:5]) == (550, b"5.7.1")  # nobody proved it: not ours

    with pytest.raises(NotFound):  # Globex cannot vouch for (or see) Acme's alias
        await world.aliases.verify_alias(world.globex, "alias.example", _never_called)
    with pytest.raises(Forbidden, match="operator"):
        await world.aliases.verify_alias(world.acme, "alias.example", _never_called,
                                         operator=True)

    async def txt_found(view):  # type: ignore[no-untyped-def]  # DNS showing the token
        assert (view.name, view.verification_txt) == ("alias.example", added.verification_txt)
        return "txt", "TXT record found"

    result = await world.aliases.verify_alias(world.acme, "alias.example", txt_found)
    assert result.verified and result.alias.verified_by == "txt"

    data = message(OUTSIDER, "carol@alias.example", "Via the alias")
    assert (await world.rcpt("Carol+x@alias.example", data))[0] == 250
    [got] = await world.inbox("carol@acme.example", 1)
    assert got.startswith(b"Delivered-To: carol@acme.example\r\n")
    assert b"Subject: Via the alias" in got

    code, reply = await world.rcpt("nobody@alias.example")  # unlisted at the target
    assert (code, reply[:5]) == (550, b"5.1.1")
    await world.aliases.set_catch_all(world.acme, "acme.example", "carol@acme.example")
    assert (await world.rcpt("nobody@alias.example"))[0] == 250

    await world.aliases.remove_alias(world.acme, "alias.example")
    assert (await world.rcpt("carol@alias.example"))[0] == 550


async def _never_called(view):  # type: ignore[no-untyped-def]
    raise AssertionError("no DNS check expected")


async def test_an_alias_is_a_name_used_nowhere_else(world: World) -> None:
    with pytest.raises(Conflict, match="in use as a domain"):
        await world.aliases.add_alias(world.acme, "acme.example", "globex.example")
    operator_added = await world.aliases.add_alias(OP, "acme.example", "acme-mail.example")
    assert operator_added.verified and operator_added.verified_by == "operator"
    with pytest.raises(Conflict, match="already in use as an alias"):
        await world.aliases.add_alias(world.globex, "globex.example", "acme-mail.example")
    with pytest.raises(Conflict, match="alias domain"):
        await world.services.domains.create(OP, "acme-mail.example", account="Globex")
    assert (await world.rcpt("carol@acme-mail.example"))[0] == 250


# -- CLI and API -----------------------------------------------------------------------


def test_cli_sets_and_unsets_the_catch_all_and_aliases(tenants: Cli) -> None:
    cli = tenants
    cli("address", "add", "--account", "Acme", "--list", "no-filter",
        input="carol@acme.example|Secret-pass-9\n")
    shown = cli("domain", "catch-all", "acme.example")
    assert "no catch-all for acme.example" in shown.stdout
    set_ = cli("domain", "catch-all", "acme.example", "carol@acme.example")
    assert "catch-all for acme.example: carol@acme.example" in set_.stdout
    assert "dictionary attacks" in set_.stdout
    assert as_json(cli("domain", "catch-all", "acme.example", "--json"))["address"] == \
        "carol@acme.example"
    refused = cli("domain", "catch-all", "globex.example", "carol@acme.example", code=1)
    assert "not an address of globex.example" in error_line(refused)
    cli("domain", "catch-all", "acme.example", "x@acme.example", "--off", code=2)
    off = as_json(cli("domain", "catch-all", "acme.example", "--off", "--json"))
    assert off["address"] is None

    added = as_json(cli("domain", "alias", "add", "acme.example", "alias.example", "--json"))
    assert added["verified"] is True and added["verified_by"] == "operator"  # an operator's
    listed = cli("domain", "alias", "list", "acme.example").stdout
    assert "alias.example" in listed and "verified (operator)" in listed
    cli("domain", "alias", "add", "globex.example", "alias.example", code=1)
    cli("domain", "alias", "delete", "alias.example")
    assert "no alias domains" in cli("domain", "alias", "list", "acme.example").stdout


async def test_api_catch_all_and_aliases_are_tenant_scoped(
        client: httpx.AsyncClient, customers: Tenants, op: Headers, directory: Services
) -> None:
    result = await directory.bulk.add_lines(OP, ["carol@acme.example|Secret-pass-9"],
                                            AddressList.NO_FILTER)
    assert result.results[0].status.value == "added"
    alice, bob = customers.alice, customers.bob
    url = f"{API}/domains/acme.example/catch-all"
    assert (await ok(client.get(url, headers=alice)))["address"] is None
    body = await ok(client.put(url, json={"address": "carol@acme.example"}, headers=alice))
    assert body["address"] == "carol@acme.example" and "dictionary" in body["warning"]
    response = await client.put(url, json={"address": None}, headers=bob)
    assert response.status_code == 404  # not Bob's domain
    response = await client.put(f"{API}/domains/globex.example/catch-all",
                                json={"address": "carol@acme.example"}, headers=bob)
    assert response.status_code == 400
    assert (await ok(client.get(url, headers=alice)))["address"] == "carol@acme.example"
    assert (await ok(client.put(url, json={"address": None}, headers=alice)))["address"] is None

    aliases = f"{API}/domains/acme.example/aliases"
    added = await ok(client.post(aliases, json={"alias": "alias.example"}, headers=alice), 201)
    assert added["verified"] is False and added["domain"] == "acme.example"
    assert (await client.get(aliases, headers=bob)).status_code == 404
    verify = f"{aliases}/alias.example/verify"
    assert (await client.post(verify, json={"operator": True}, headers=alice)).status_code \
        == 403
    done = await ok(client.post(verify, json={"operator": True}, headers=op))
    assert done["verified"] is True and done["alias"]["verified_by"] == "operator"
    assert [a["alias"] for a in await ok(client.get(aliases, headers=alice))] == \
        ["alias.example"]
    assert (await client.delete(f"{API}/domains/globex.example/aliases/alias.example",
                                headers=bob)).status_code == 404
    await ok(client.delete(f"{aliases}/alias.example", headers=alice))
    assert await ok(client.get(aliases, headers=alice)) == []


async def test_panel_domain_page_sets_the_catch_all_with_its_warning(
        settings: Settings, directory: Services) -> None:
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "acme.example", account="Acme", hosting=True)
    await directory.accounts.create_user(OP, "alice@acme.example", ALICE_PASSWORD,
                                         account="Acme")
    await directory.bulk.add_lines(OP, ["carol@acme.example|Secret-pass-9"],
                                   AddressList.NO_FILTER)
    page = "/panel/accounts/Acme/domains/acme.example"
    async with running_server(settings) as url, \
            httpx.AsyncClient(base_url=url, timeout=30) as http:
        alice = Panel(http)
        await alice.login("alice@acme.example", ALICE_PASSWORD)
        shown = await alice.get(page)
        assert "dictionary attacks" in shown and "Off: mail to unlisted names" in shown
        response = await http.post(f"{page}/catch-all", data={"address": "carol@acme.example"})
        assert response.status_code == 403  # no CSRF token: refused
        done = await alice.post(f"{page}/catch-all", {"address": "carol@acme.example"})
        assert messages(done) == ["catch-all of acme.example: carol@acme.example"]
        bad = await alice.post(f"{page}/catch-all", {"address": "ghost@acme.example"},
                               status=400)
        assert "not an address of acme.example" in bad
        off = await alice.post(f"{page}/catch-all", {"off": "yes"})
        assert messages(off) == ["catch-all of acme.example is off"]
        added = await alice.post(f"{page}/aliases", {"action": "add", "alias": "alias.example"})
        assert "alias alias.example added" in messages(added)[0]
        assert "not verified" in added and "mailward-verification=" in added
    assert (await AliasService(directory.db).catch_all(OP, "acme.example")).address is None
