"""Operator pages and the DNS page of the panel over a real socket (both backends): new
accounts and domains, hosting on/off, the dashboard, and a domain's DNS checklist answered
by loopback DNS servers."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from api_server import OPERATOR_PASSWORD, running_server
from dns_world import OUR_MX, World, dns_world
from panel_client import Panel, messages, rows

from mailward.app import Services
from mailward.config import Settings
from mailward.directory import Actor
from mailward.dns.service import domain_records


@pytest.fixture
def world() -> Iterator[World]:
    with dns_world(OUR_MX) as world:
        yield world


@pytest.fixture
def settings(settings: Settings, world: World) -> Settings:
    return world.settings(settings)


@pytest.fixture
async def root(settings: Settings, directory: Services) -> AsyncIterator[Panel]:
    await directory.accounts.create_user(Actor.operator(), "root", OPERATOR_PASSWORD)
    async with running_server(settings) as url, httpx.AsyncClient(base_url=url,
                                                                  timeout=30) as http:
        panel = Panel(http)
        await panel.login("root", OPERATOR_PASSWORD)
        yield panel


async def test_operator_creates_accounts_and_domains(root: Panel, directory: Services) -> None:
    start = await root.http.get("/panel")
    assert start.headers["location"] == "/panel/accounts"
    created = await root.post("/panel/accounts", {"name": "Acme"})
    assert messages(created) == ["account Acme created"]
    assert "<h1>Acme</h1>" in created  # landed on its dashboard
    again = await root.post("/panel/accounts", {"name": "Acme"}, status=409)
    assert messages(again) == ["account 'Acme' already exists"]

    added = await root.post("/panel/accounts/Acme/domains", {"name": "Acme.Example"})
    assert messages(added) == ["domain acme.example added to Acme"]
    bad = await root.post("/panel/accounts/Acme/domains", {"name": "not a domain"},
                          status=400)
    assert "is not a valid domain" in messages(bad)[0]
    on = await root.post("/panel/accounts/Acme/domains/acme.example/hosting",
                         {"hosting": "on"})
    assert messages(on) == ["hosting for acme.example is on"]
    assert (await directory.domains.get(Actor.operator(), "acme.example")).hosting
    table = rows(on, "accounts")
    assert table[0][0] == "Acme" and "acme.example hosting" in table[0][1]

    dashboard = await root.get("/panel/accounts/Acme/")
    assert rows(dashboard, "domains")[0][:3] == ["acme.example", "hosting", "not checked yet"]


async def test_dns_page_shows_the_checklist_and_the_records(
        root: Panel, directory: Services, settings: Settings) -> None:
    op = Actor.operator()
    await directory.accounts.create(op, "Acme")
    await directory.domains.create(op, "acme.example", account="Acme")
    page = await root.get("/panel/accounts/Acme/domains/acme.example/dns")
    assert "DNS of acme.example: <span class=\"status-pass\">pass</span>" in page
    checklist = {row[1]: row[0] for row in rows(page, "checklist")}
    assert checklist["mx"] == "pass" and checklist["propagation"] == "pass"
    zone = html.unescape(page.split('aria-label="zone file lines">', 1)[1].split("</pre>")[0])
    expected = await domain_records(directory, settings, op, "acme.example")
    assert zone.splitlines() == expected.zone  # the same lines as `mailward dns records`
    assert any(line.startswith("acme.example.") and "IN MX" in line
               and line.endswith("10 mailfilter1.example.net.") for line in expected.zone)
    registrar = rows(page, "registrar fields")
    assert registrar[0] == ["@", "MX", "10", "mailfilter1.example.net", "3600"]
