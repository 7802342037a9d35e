"""Resellers on both backends: the service rules, the panel and the API see only the
reseller's own accounts, and the CLI sets them up."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from api_server import API, OPERATOR_PASSWORD, login, running_server
from cli_helpers import Cli, as_json
from panel_client import Panel, messages, rows

from mailward.app import Services
from mailward.config import Settings
from mailward.directory import Actor, Forbidden, NotFound

RESELLER_PASSWORD = "Reseller-pass-77"


@pytest.fixture
async def world(directory: Services) -> Actor:
    """Reseller "Northwind" with account Acme; Globex belongs to no reseller. Returns the
    reseller user's actor as a login makes it."""
    op = Actor.operator()
    await directory.resellers.create(op, "Northwind")
    await directory.accounts.create(op, "Acme", reseller="Northwind")
    await directory.accounts.create(op, "Globex")
    await directory.domains.create(op, "globex.example", account="Globex")
    await directory.accounts.create_user(op, "sam@northwind.example", RESELLER_PASSWORD,
                                         reseller="Northwind")
    await directory.accounts.create_user(op, "root", OPERATOR_PASSWORD)
    actor = await directory.accounts.authenticate("sam@northwind.example", RESELLER_PASSWORD)
    assert actor is not None and actor.is_reseller
    return actor


async def test_a_reseller_manages_only_its_accounts(world: Actor, directory: Services) -> None:
    sam = world
    assert [a.name for a in await directory.accounts.list(sam)] == ["Acme"]
    await directory.accounts.create(sam, "Initech")  # becomes Northwind's
    sam = await directory.accounts.authenticate("sam@northwind.example", RESELLER_PASSWORD)
    assert sam is not None
    assert [a.name for a in await directory.accounts.list(sam)] == ["Acme", "Initech"]
    await directory.domains.create(sam, "initech.example", account="Initech", hosting=True)
    await directory.domains.set_hosting(sam, "initech.example", False)
    await directory.accounts.create_user(sam, "peter@initech.example", "Initech-pass-1",
                                         account="Initech")
    assert [d.name for d in await directory.domains.list(sam)] == ["initech.example"]

    with pytest.raises(NotFound):
        await directory.domains.create(sam, "more.example", account="Globex")
    with pytest.raises(NotFound):
        await directory.domains.get(sam, "globex.example")
    with pytest.raises(NotFound):
        await directory.accounts.delete(sam, "Globex")
    with pytest.raises(Forbidden):
        await directory.accounts.create_user(sam, "boss", "Boss-pass-123")  # an operator
    with pytest.raises(Forbidden):
        await directory.resellers.create(sam, "Other")
    with pytest.raises(Forbidden):
        await directory.accounts.create(sam, "Stolen", reseller="Northwind")
    assert [(r.name, r.accounts) for r in await directory.resellers.list(sam)] == [
        ("Northwind", 2)]
    account_admin = await directory.accounts.authenticate("peter@initech.example",
                                                          "Initech-pass-1")
    assert account_admin is not None
    with pytest.raises(Forbidden):
        await directory.accounts.create(account_admin, "Mine")


@pytest.fixture
async def url(settings: Settings, world: Actor) -> AsyncIterator[str]:
    async with running_server(settings) as url:
        yield url


async def test_panel_and_api_of_a_reseller(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        sam = Panel(http)
        landed = await sam.login("sam@northwind.example", RESELLER_PASSWORD)
        assert "Customer accounts" in landed
        assert [r[0] for r in rows(landed, "accounts")] == ["Acme"]
        created = await sam.post("/panel/accounts", {"name": "Initech"})
        assert messages(created) == ["account Initech created"]
        accounts = await sam.get("/panel/accounts")
        assert [r[0] for r in rows(accounts, "accounts")] == ["Acme", "Initech"]
        await sam.get("/panel/accounts/Globex/", status=404)
        refused = await sam.post("/panel/accounts/Globex/domains", {"name": "x.example"},
                                 status=404)
        assert "Not found" in refused
        domain = await sam.post("/panel/accounts/Initech/domains", {"name": "initech.example"})
        assert messages(domain) == ["domain initech.example added to Initech"]
        await sam.post("/panel/accounts/Initech/addresses/add",
                       {"lines": "x@initech.example", "list": "filter"})

        token = await login(http, "sam@northwind.example", RESELLER_PASSWORD)
        listed = await http.get(f"{API}/accounts", headers=token)
        assert [a["name"] for a in listed.json()] == ["Acme", "Initech"]
        me = (await http.get(f"{API}/me", headers=token)).json()
        assert (me["role"], me["account"]) == ("reseller", None)
        assert (await http.get(f"{API}/domains/globex.example", headers=token)).status_code \
            == 404
        root = await login(http, "root", OPERATOR_PASSWORD)
        log = (await http.get(f"{API}/audit", headers=root,
                              params={"who": "sam"})).json()["items"]
        assert {(e["action"], e["source"]) for e in log} == {
            ("account.create", "web 127.0.0.1"),
            ("domain.create", "web 127.0.0.1"),
            ("address.bulk-add", "web 127.0.0.1 (reseller)"),  # inside the account
            ("token.create", "api 127.0.0.1"),
        }


def test_cli_sets_up_resellers(cli: Cli) -> None:
    cli("reseller", "add", "Northwind")
    cli("account", "add", "Acme", "--reseller", "Northwind")
    cli("account", "add", "Globex")
    added = cli("user", "add", "sam@northwind.example", "--reseller", "Northwind",
                "--password-stdin", input=f"{RESELLER_PASSWORD}\n")
    assert added.stdout == "added user sam@northwind.example of reseller Northwind\n"
    assert as_json(cli("reseller", "list", "--json"))[0]["accounts"] == 1
    missing = cli("account", "add", "Initech", "--reseller", "Nobody", code=1)
    assert missing.stderr == "error: no reseller 'Nobody'\n"
