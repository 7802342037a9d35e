"""The rules and vacation editors over a real socket (both backends): an account admin
saves a mailbox's rules and out-of-office reply in the panel and reads them back (the
``mailward`` script is stored and active); a bad script in the advanced editor is refused
with its line number and nothing changes; another account's admin gets 404; the mailbox
user edits the same script in webmail."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from api_server import OPERATOR_PASSWORD, running_server
from panel_client import Panel, messages

from mailward.app import Services
from mailward.config import Settings
from mailward.db import AddressList
from mailward.directory import Actor
from mailward.sieve.scripts import SieveScripts
from mailward.sieve.simple import read_script

OP = Actor.operator()
ADMIN_PASSWORD = "Boss-pass-4471"
BOLT_PASSWORD = "Bolt-pass-9913"
MAILBOX_PASSWORD = "Blue-sky-7788"
ANN, CY = "ann@acme.example", "cy@bolt.example"
ANN_RULES = f"/panel/accounts/Acme/addresses/{ANN}/rules"
CY_RULES = f"/panel/accounts/Bolt/addresses/{CY}/rules"
FORM: dict[str, str | list[str]] = {
    "rule-0-field": "from", "rule-0-match": "contains", "rule-0-value": "news@shop.example",
    "rule-0-action": "fileinto", "rule-0-target": "Shopping", "rule-0-stop": "1",
    "rule-1-field": "header", "rule-1-header": "List-Id", "rule-1-match": "contains",
    "rule-1-value": "dev.lists.example", "rule-1-action": "read", "rule-1-target": "",
    "rule-2-field": "subject", "rule-2-match": "is", "rule-2-value": "", "rule-2-action":
    "discard", "rule-2-target": "",  # a blank row: left out
    "vacation": "1", "subject": "Out until the 24th", "text": 'Back soon, "really".\nAnn',
    "days": "5", "start": "2026-12-01", "end": "2026-12-24", "addresses": "",
}


@pytest.fixture
async def url(settings: Settings, directory: Services) -> AsyncIterator[str]:
    for account, domain in (("Acme", "acme.example"), ("Bolt", "bolt.example")):
        await directory.accounts.create(OP, account)
        await directory.domains.create(OP, domain, account=account, hosting=True)
    await directory.bulk.add_lines(OP, [f"{ANN}|{MAILBOX_PASSWORD}",
                                        f"{CY}|{MAILBOX_PASSWORD}"], AddressList.FILTER)
    await directory.accounts.create_user(OP, "admin@acme.example", ADMIN_PASSWORD,
                                         account="Acme")
    await directory.accounts.create_user(OP, "admin@bolt.example", BOLT_PASSWORD,
                                         account="Bolt")
    await directory.accounts.create_user(OP, "root", OPERATOR_PASSWORD)
    async with running_server(settings) as found:
        yield found


@pytest.fixture
async def http(url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield client


async def panel_as(http: httpx.AsyncClient, login: str, password: str) -> Panel:
    panel = Panel(http)
    await panel.login(login, password)
    return panel


def field(page: str, name: str) -> str:
    """The value an input (or the text a textarea) of the page shows."""
    found = re.search(rf'<input[^>]*name="{name}"[^>]*value="([^"]*)"', page) or re.search(
        rf'<textarea name="{name}"[^>]*>(.*?)</textarea>', page, re.S)
    assert found is not None, name
    return html.unescape(found[1])


def checked(page: str, name: str) -> bool:
    found = re.search(rf'<input type="checkbox" name="{name}"[^>]*>', page)
    assert found is not None, name
    return " checked" in found[0]


def selected(page: str, name: str) -> str:
    select = page.split(f'name="{name}"', 1)[1].split("</select>", 1)[0]
    found = re.search(r'<option value="([^"]*)" selected>', select)
    assert found is not None, name
    return found[1]


async def test_admin_saves_rules_and_vacation_and_reads_them_back(
        settings: Settings, directory: Services, http: httpx.AsyncClient) -> None:
    admin = await panel_as(http, "admin@acme.example", ADMIN_PASSWORD)
    address_page = await admin.get(f"/panel/accounts/Acme/addresses/{ANN}")
    assert f'href="{ANN_RULES}"' in address_page
    empty = await admin.get(ANN_RULES)
    assert "No rules run now" in empty and field(empty, "rule-0-value") == ""

    saved = await admin.post(f"{ANN_RULES}/save", FORM)
    assert messages(saved) == [f"rules and vacation of {ANN} saved"]
    assert field(saved, "rule-0-value") == "news@shop.example"
    assert field(saved, "rule-0-target") == "Shopping" and checked(saved, "rule-0-stop")
    assert selected(saved, "rule-1-field") == "header"
    assert field(saved, "rule-1-header") == "List-Id" and selected(saved, "rule-1-action") == "read"
    assert field(saved, "rule-2-value") == ""  # the blank row was left out: blank again
    assert checked(saved, "vacation") and field(saved, "subject") == "Out until the 24th"
    assert field(saved, "text") == 'Back soon, "really".\nAnn'
    assert (field(saved, "days"), field(saved, "start"), field(saved, "end")) == (
        "5", "2026-12-01", "2026-12-24")
    assert "No rules run now" not in saved

    scripts = SieveScripts(directory.db)
    assert [(i.name, i.active) for i in await scripts.list(ANN)] == [("mailward", True)]
    active = await scripts.active(ANN) or ""
    assert 'fileinto "Shopping";' in active and 'addflag "\\\\Seen";' in active
    assert 'currentdate :value "ge" "date" "2026-12-01"' in active
    assert ':subject "Out until the 24th"' in active
    stored = read_script(active).form
    assert stored is not None and len(stored.rules) == 2 and stored.vacation.days == 5

    # a rule deleted, the vacation turned off: the script follows
    again = await admin.post(f"{ANN_RULES}/save", {**FORM, "rule-0-delete": "1",
                                                   "vacation": ""})
    assert field(again, "rule-0-value") == "dev.lists.example"
    assert not checked(again, "vacation")
    active = await scripts.active(ANN) or ""
    assert "Shopping" not in active.split("\n", 1)[1] and "vacation" not in active.split(
        "\n", 1)[1]

    bad = await admin.post(f"{ANN_RULES}/save", {**FORM, "rule-0-action": "redirect",
                                                 "rule-0-target": "not an address"},
                           status=400)
    assert messages(bad)[0].startswith("rule 1: 'not an address' is not a valid address")
    assert field(bad, "rule-0-target") == "not an address"  # the form keeps what was typed
    assert await scripts.active(ANN) == active  # nothing saved


async def test_a_bad_script_is_refused_with_its_line(directory: Services,
                                                     http: httpx.AsyncClient) -> None:
    admin = await panel_as(http, "admin@acme.example", ADMIN_PASSWORD)
    await admin.post(f"{ANN_RULES}/save", FORM)
    scripts = SieveScripts(directory.db)
    before = await scripts.active(ANN)

    broken = 'require "fileinto";\nif header :contains "subject" "x" {\n  fileinto "X"\n}\n'
    refused = await admin.post(f"{ANN_RULES}/raw", {"script": broken}, status=400)
    assert re.match(r"line 4: ", messages(refused)[0]), messages(refused)
    assert field(refused, "script") == broken  # kept for fixing
    unknown = await admin.post(f"{ANN_RULES}/raw", {"script": 'require "reject";\nkeep;\n'},
                               status=400)
    assert messages(unknown) == ["line 1: unsupported extension 'reject'"]
    assert await scripts.active(ANN) == before

    fixed = broken.replace('"X"\n', '"X";\n')
    saved = await admin.post(f"{ANN_RULES}/raw", {"script": fixed})
    assert messages(saved) == [f"script 'mailward' of {ANN} saved"]
    assert await scripts.active(ANN) == fixed
    assert "changed with a Sieve editor" in saved  # the form no longer describes it
    assert field(saved, "rule-0-value") == ""


async def test_another_accounts_admin_is_refused(directory: Services,
                                                 http: httpx.AsyncClient) -> None:
    bolt = await panel_as(http, "admin@bolt.example", BOLT_PASSWORD)
    await bolt.get(CY_RULES)  # their own mailbox opens
    await bolt.get(ANN_RULES, status=404)
    await bolt.get(f"/panel/accounts/Bolt/addresses/{ANN}/rules", status=404)
    await bolt.post(f"{ANN_RULES}/save", FORM, status=404)
    await bolt.post(f"/panel/accounts/Bolt/addresses/{ANN}/rules/raw", {"script": "keep;"},
                    status=404)
    assert await SieveScripts(directory.db).list(ANN) == []

    async with httpx.AsyncClient(base_url=str(http.base_url), timeout=30) as other:
        root = await panel_as(other, "root", OPERATOR_PASSWORD)
        saved = await root.post(f"{CY_RULES}/save", FORM)  # the operator acts as Bolt's admin
        assert messages(saved) == [f"rules and vacation of {CY} saved"]


async def test_the_mailbox_user_edits_the_same_script_in_webmail(
        directory: Services, http: httpx.AsyncClient) -> None:
    admin = await panel_as(http, "admin@acme.example", ADMIN_PASSWORD)
    await admin.post(f"{ANN_RULES}/save", FORM)

    async with httpx.AsyncClient(base_url=str(http.base_url), timeout=30) as browser:
        ann = Panel(browser)
        await ann.get("/mail/login")
        await ann.post("/mail/login", {"address": ANN, "password": MAILBOX_PASSWORD})
        settings_page = await ann.get("/mail/settings")
        assert 'href="/mail/settings/rules"' in settings_page
        mine = await ann.get("/mail/settings/rules")
        assert field(mine, "rule-0-target") == "Shopping"  # what the admin saved
        assert '<datalist id="rule-folders">' in mine and '<option value="INBOX">' in mine

        changed = await ann.post("/mail/settings/rules/save",
                                 {**FORM, "rule-0-target": "Deals", "days": "2"})
        assert "Rules and vacation saved." in changed
        assert field(changed, "rule-0-target") == "Deals" and field(changed, "days") == "2"
        refused = await ann.post("/mail/settings/rules/raw",
                                 {"script": 'keep;\nfileinto "X";\n'}, status=400)
        assert "line 2: extension &#39;fileinto&#39; not loaded" in refused

    active = await SieveScripts(directory.db).active(ANN) or ""
    assert 'fileinto "Deals";' in active and ":days 2 " in active
    assert await SieveScripts(directory.db).list(CY) == []
    reread = await admin.get(ANN_RULES)
    assert field(reread, "rule-0-target") == "Deals"
