"""The public pages in a real browser: the home page, and the DNS lookup form at /tools/dns
answered by a loopback DNS server (MX records in the doc's columns, NXDOMAIN told)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dns_server import dns_server
from playwright.sync_api import Page, expect

from mailward.config import Settings

ZONE = """
acme.example.      300 IN MX 20 mailfilter2.example.net.
acme.example.      300 IN MX 10 mailfilter1.example.net.
www.acme.example.  600 IN A 192.0.2.10
"""

Shot = Callable[[Page, str], Path]
COLUMNS = ["Name", "TTL", "Class", "Type", "Priority", "Answer"]


@pytest.fixture
def settings(settings: Settings) -> Iterator[Settings]:
    with dns_server(ZONE) as nameserver:
        yield settings.model_copy(update={"dns_nameservers": [nameserver],
                                          "dns_timeout_seconds": 1})


def test_home_page(page: Page, shot: Shot) -> None:
    page.goto("/")
    expect(page).to_have_title("mailward")
    expect(page.get_by_role("heading", name="mailward", level=1)).to_be_visible()
    expect(page.get_by_role("heading", name="Hosts to publish")).to_be_visible()
    mx_hosts = page.get_by_role("table").first.locator("tbody tr")
    expect(mx_hosts).to_have_count(2)
    expect(mx_hosts.first.get_by_role("cell")).to_have_text(["mailfilter1.example.net", "10"])
    shot(page, "home")

    page.get_by_role("banner").get_by_role("link", name="A lookup").click()
    expect(page).to_have_url(re.compile(r"/tools/dns\?type=A$"))
    expect(page.get_by_role("heading", name="A lookup")).to_be_visible()
    expect(page.get_by_label("Type")).to_have_value("A")
    shot(page, "a-lookup-form")


def test_dns_lookup_page(page: Page, shot: Shot) -> None:
    page.goto("/tools/dns")
    expect(page).to_have_title("MX lookup · mailward")
    expect(page.get_by_role("table")).to_have_count(0)  # the form alone
    shot(page, "form")

    page.get_by_label("Name", exact=True).fill("acme.example")
    page.get_by_label("Type").select_option("MX")
    page.get_by_role("button", name="Look up").click()

    expect(page).to_have_url(re.compile(r"/tools/dns\?name=acme\.example&type=MX$"))
    table = page.get_by_role("table", name="MX records of acme.example.")
    expect(table.get_by_role("columnheader")).to_have_text(COLUMNS)
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0).get_by_role("cell")).to_have_text(
        ["acme.example.", "300", "IN", "MX", "10", "mailfilter1.example.net."])
    expect(rows.nth(1).get_by_role("cell")).to_have_text(
        ["acme.example.", "300", "IN", "MX", "20", "mailfilter2.example.net."])
    expect(page.get_by_label("Name", exact=True)).to_have_value("acme.example")
    shot(page, "mx-answer")

    page.get_by_label("Name", exact=True).fill("nope.example")
    page.get_by_role("button", name="Look up").click()
    expect(page.get_by_role("status")).to_have_text(
        "no such domain: nope.example. does not exist (NXDOMAIN)")
    expect(page.get_by_role("table")).to_have_count(0)
    shot(page, "nxdomain")
