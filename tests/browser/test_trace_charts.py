"""The dashboard's charts and the message trace in a real browser: an account admin opens
their dashboard with recorded numbers, switches from 24 hours to 7 days and sees the SVG
charts drawn (visible, with their legend); then searches the trace and opens a story.
Screenshots land in the test's tmp dir (and in test-output/screenshots/)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from test_trace_panel import ADMIN_PASSWORD, ANN, CY, DAN, MAILBOX_PASSWORD, seed

from mailward.app import Services
from mailward.config import Settings
from mailward.db import AddressList, Database
from mailward.directory import Actor

Shot = Callable[[Page, str], Path]
OP = Actor.operator()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Acme (ann, dan, its admin) and Bolt (cy), and the traces of ``seed``."""

    async def prepare() -> None:
        db = Database(settings.db_url)
        services = Services(db, settings)
        try:
            for account, domain in (("Acme", "acme.example"), ("Bolt", "bolt.example")):
                await services.accounts.create(OP, account)
                await services.domains.create(OP, domain, account=account, hosting=True)
            await services.bulk.add_lines(OP, [f"{a}|{MAILBOX_PASSWORD}" for a in (ANN, DAN, CY)],
                                          AddressList.FILTER)
            await services.accounts.create_user(OP, "admin@acme.example", ADMIN_PASSWORD,
                                                account="Acme")
            await seed(services, settings)
            await services.trace.close()
        finally:
            await db.dispose()

    asyncio.run(prepare())
    return settings


def test_dashboard_charts_and_a_trace_story(page: Page, shot: Shot, tmp_path: Path) -> None:
    page.goto("/panel/accounts/Acme/")
    page.get_by_label("Login").fill("admin@acme.example")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/panel/accounts/Acme/?$"))

    periods = page.get_by_role("navigation", name="period")
    expect(periods.get_by_role("link", name="24 hours")).to_have_attribute("aria-current", "page")
    periods.get_by_role("link", name="7 days").click()
    expect(page).to_have_url(re.compile(r"\?period=7d$"))
    expect(periods.get_by_role("link", name="7 days")).to_have_attribute("aria-current", "page")

    received = page.get_by_role("img", name="Mail received", exact=True)
    expect(received).to_be_visible()
    box = received.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 150  # drawn, not empty
    bars = received.locator("rect.bar")
    expect(bars).to_have_count(2)  # accepted and quarantined, stacked in one 6-hour point
    for i in range(2):
        bar = bars.nth(i).bounding_box()
        assert bar is not None and bar["height"] > 1
    expect(received.locator(".legend-item text")).to_have_text(
        ["accepted (1)", "quarantined (1)", "refused (0)"])
    expect(received.locator("text.tick.x").first).to_be_visible()
    for name in ("Delivery", "Spam ratio", "Queue depth", "Delivery latency",
                 "Top refused senders", "Top refused recipients"):
        expect(page.get_by_role("img", name=name, exact=True)).to_be_visible()
    latency = page.get_by_role("img", name="Delivery latency", exact=True)
    expect(latency.locator("path.line")).to_have_count(3)  # p50, p90, p99
    expect(latency.locator(".legend-item text")).to_have_text(["p50", "p90", "p99"])
    colour = received.locator("rect.bar.s-accepted").evaluate(
        "e => getComputedStyle(e).fill")
    assert colour == "rgb(46, 139, 87)"  # the stylesheet's series colour
    page.screenshot(path=tmp_path / "dashboard-7d.png", full_page=True)
    assert (tmp_path / "dashboard-7d.png").stat().st_size > 10_000
    shot(page, "dashboard-7d")

    page.goto("/panel/trace")
    form = page.get_by_role("search", name="search traces")
    form.get_by_label("Sender").fill("deals@shop.example")
    form.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(r"sender=deals%40shop\.example"))
    results = page.get_by_role("table", name="traces")
    expect(results.locator("tbody tr")).to_have_count(1)
    results.get_by_role("link", name="Quarterly report").click()
    events = page.get_by_role("table", name="events")
    expect(events.locator("tbody tr")).to_have_count(8)
    expect(events).to_contain_text("Delivered to the mailbox ann@acme.example")
    expect(events).to_contain_text("Reply: 451 4.3.0 mailbox busy")
    page.screenshot(path=tmp_path / "trace-story.png", full_page=True)
    shot(page, "trace-story")
    page.get_by_role("link", name="Back to the search").click()
    expect(page.get_by_label("Sender")).to_have_value("deals@shop.example")
