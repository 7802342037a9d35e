"""The procedures (docs/procedures.md) in a real browser, as a customer walks them: log in, bulk
add mixed lines and read the categories, set up a pending address, add and remove auto-cc,
check all and delete, auto-configure hosting, check the domain's DNS, and try another
tenant's pages. A screenshot of every page lands in test-output/screenshots/."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dns_world import OUR_MX, World, dns_world
from playwright.sync_api import Page, expect

from mailward.app import Services
from mailward.config import Settings
from mailward.db import Database
from mailward.directory import Actor

Shot = Callable[[Page, str], Path]
PASSWORD = "Wonderland-42x"
ACME = "/panel/accounts/Acme/"
LINES = """\
info@acme.example
bob@acme.example|Secret-pass-9
sales@acme.example|anna@example.net,ben@example.net|relay
carol@acme.example|Blue-sky-7788|rely
not an address
someone@globex.example
"""


@pytest.fixture
def world() -> Iterator[World]:
    with dns_world(OUR_MX) as world:
        yield world


@pytest.fixture
def settings(settings: Settings, world: World) -> Settings:
    """Two customers, Acme (hosting) and Globex; DNS from the loopback servers."""

    async def seed() -> None:
        db = Database(settings.db_url)
        directory, op = Services(db, settings), Actor.operator()
        try:
            for account, domain, admin in (("Acme", "acme.example", "alice@acme.example"),
                                           ("Globex", "globex.example", "bob@globex.example")):
                await directory.accounts.create(op, account)
                await directory.domains.create(op, domain, account=account, hosting=True)
                await directory.accounts.create_user(op, admin, PASSWORD, account=account)
        finally:
            await db.dispose()

    asyncio.run(seed())
    return world.settings(settings)


def log_in(page: Page, shot: Shot) -> None:
    page.goto(ACME + "addresses")  # a panel page: the login comes first, then back here
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("Login").fill("alice@acme.example")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("wrong login or password")
    shot(page, "login-failed")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/panel/accounts/Acme/addresses$"))


def test_address_procedures(page: Page, shot: Shot) -> None:
    log_in(page, shot)
    shot(page, "email-accounts-empty")

    page.get_by_role("banner").get_by_role("link", name="Add Addresses").click()
    page.get_by_label("Addresses").fill(LINES)
    page.get_by_label("the Filter list").check()
    shot(page, "add-addresses-form")
    page.get_by_role("button", name="Add").click()
    expect(page.get_by_role("heading", name="Add Addresses: results")).to_be_visible()
    expect(page.locator("#invalid tbody tr")).to_have_count(2)
    expect(page.locator("#added tbody tr")).to_have_count(4)
    expect(page.locator("#invalid")).to_contain_text("globex.example is not one of your domains")
    carol = page.locator("#added tbody tr", has_text="carol@acme.example")
    expect(carol.get_by_role("note")).to_contain_text("probable mistake")
    shot(page, "add-addresses-results")

    page.get_by_role("link", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/addresses$"))
    pending = page.locator('tr[data-address="info@acme.example"]')
    expect(pending).to_have_class("pending")
    expect(pending).to_contain_text("pending setup")
    shot(page, "email-accounts")

    pending.get_by_role("link", name="Set up").click()
    mailbox = page.get_by_role("form", name="set up as mailbox")
    mailbox.get_by_label("Password", exact=True).fill("Long-pass-123")
    mailbox.get_by_label("Password again").fill("Long-pass-123")
    shot(page, "setup-pending")
    mailbox.get_by_role("button", name="Create mailbox").click()
    expect(page.get_by_role("status")).to_have_text("info@acme.example is set up as a mailbox")

    auto_cc = page.get_by_role("form", name="add auto-cc")
    auto_cc.get_by_label("Add auto-cc").fill("archive@example.net")
    auto_cc.get_by_role("button", name="Add auto-cc").click()
    expect(page.get_by_role("status")).to_have_text("auto-cc of info@acme.example set")
    expect(page.get_by_role("region", name="destinations")).to_contain_text(
        "archive@example.net")
    shot(page, "auto-cc-added")
    page.get_by_role("button", name="Remove archive@example.net").click()
    expect(page.get_by_role("status")).to_have_text(
        "archive@example.net removed from info@acme.example")
    expect(page.get_by_role("region", name="destinations")).to_have_count(0)
    shot(page, "auto-cc-removed")

    page.get_by_role("link", name="Back to Email Accounts").click()
    expect(page.locator("tbody tr")).to_have_count(4)
    page.get_by_label("Check all").check()  # the one place that needs JavaScript
    for box in page.locator('input[name="email"]').all():
        expect(box).to_be_checked()
    page.get_by_label("check bob@acme.example").uncheck()
    page.get_by_role("button", name="Delete checked").click()
    expect(page.get_by_role("heading", name="Delete 3 addresses?")).to_be_visible()
    shot(page, "delete-confirmation")
    page.get_by_role("button", name="Delete 3 addresses").click()
    expect(page.get_by_role("status")).to_have_text(
        "deleted 3 addresses: carol@acme.example, info@acme.example, sales@acme.example")
    expect(page.locator("tbody tr")).to_have_count(1)
    shot(page, "after-delete")


def test_hosting_dns_and_other_tenants(page: Page, shot: Shot) -> None:
    log_in(page, shot)
    page.goto(ACME)
    expect(page.get_by_role("heading", name="Acme", level=1)).to_be_visible()
    shot(page, "dashboard")

    page.get_by_role("banner").get_by_role("link", name="Email Hosting").click()
    expect(page.get_by_role("heading", name="Domain Details: acme.example")).to_be_visible()
    shot(page, "domain-details")
    page.get_by_role("link", name="Mail Server Settings").last.click()
    form = page.get_by_role("form", name="add a mail server")
    form.get_by_label("Mail server").fill("mx.acme-office.example")
    form.get_by_label("Preference").fill("10")
    form.get_by_role("button", name="Add mail server").click()
    expect(page.get_by_role("status")).to_have_text(
        "mx.acme-office.example:25 added (preference 10)")
    shot(page, "mail-server-settings")
    page.get_by_role("button", name="Auto-Configure Mail Server Settings").click()
    expect(page.get_by_role("heading", name="Auto-Configure Mail Server Settings?")).to_be_visible()
    shot(page, "auto-configure-confirm")
    page.get_by_role("button", name="Yes, auto-configure").click()
    expect(page.get_by_role("heading", name="Hosting setup done")).to_be_visible()
    shot(page, "hosting-setup-done")

    page.goto(ACME + "domains/acme.example/dns")
    expect(page.get_by_role("heading", level=1)).to_contain_text("DNS of acme.example")
    checklist = page.get_by_role("table", name="checklist")
    expect(checklist.locator("tr", has_text="propagation")).to_contain_text("pass")
    expect(page.get_by_label("zone file lines")).to_contain_text(
        "IN MX    10 mailfilter1.example.net.")
    shot(page, "dns-check")

    for path in ("/panel/accounts/Globex/", "/panel/accounts/Globex/addresses",
                 ACME + "domains/globex.example", "/panel/accounts"):
        response = page.goto(path)
        assert response is not None and response.status == 404, path
        expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    shot(page, "other-tenant-404")
