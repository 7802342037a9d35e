"""The webmail's reading side in Chromium: log in, the list, an HTML mail in its sandboxed
iframe (its scripts never run, inline and remote images load through our routes),
keyboard shortcuts, the help overlay, dark mode; screenshots for review.

The server is the ``web`` role alone (``mailward.server.run``, as in the browser
conftest), serving a store seeded beforehand; a loopback HTTP server plays the remote
image host (allowed for the image proxy by ``webmail_image_proxy_allow``).
"""

from __future__ import annotations

import asyncio
import base64
import http.server
import threading
from collections.abc import Coroutine, Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from threaded_roles import roles_in_thread

from mailward.app import Services
from mailward.config import Settings
from mailward.db import AddressList, Database
from mailward.directory import Actor
from mailward.store import open_store

OP = Actor.operator()
ANN, PASSWORD = "ann@acme.example", "Mailbox-pass-77"
WAIT = 30
# a 1x1 PNG
PIXEL = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9Q"
                         "DwADhgGAWjR9awAAAABJRU5ErkJggg==")
EVIL = ("<h1>Monthly newsletter</h1><p>Hello reader, here is the news.</p>"
        "<script>parent.document.title='owned'; document.title='owned'</script>"
        "<img src='x' onerror=\"parent.document.title='owned'\" alt='broken'>"
        "<p><img src='cid:logo@acme' alt='inline logo' width='40' height='40'></p>"
        "<p><img src='http://127.0.0.1:{port}/banner.png' alt='remote banner' width='60'"
        " height='20'></p><a href='https://example.org/more'>Read more</a>")



class _Images(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(PIXEL)))
        self.end_headers()
        self.wfile.write(PIXEL)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def image_host() -> Iterator[int]:
    """A loopback "remote" image server; its port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _mail(subject: str, *, html: str | None = None, minute: int = 0,
          sender: str = "Zoe Quartermaine <zoe@remote.example>") -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, ANN, subject
    msg["Date"] = f"Mon, 07 Dec 2026 08:{minute:02d}:00 +0000"
    msg["Message-ID"] = f"<{abs(hash(subject))}@remote.example>"
    msg.set_content(f"{subject}: the text part.\n")
    if html is not None:
        msg.add_alternative(html, subtype="html")
        html_part = msg.get_payload()[1]  # type: ignore[index]
        assert isinstance(html_part, EmailMessage)
        html_part.add_related(PIXEL, maintype="image", subtype="png", cid="<logo@acme>")
    return msg.as_bytes()


async def _seed(settings: Settings, image_port: int) -> None:
    db = Database(settings.db_url)
    try:
        services = Services(db, settings)
        await services.accounts.create(OP, "Acme")
        await services.domains.create(OP, "acme.example", account="Acme", hosting=True)
        await services.bulk.add_lines(OP, [f"{ANN}|{PASSWORD}"], AddressList.NO_FILTER)
        store = open_store(settings, db)
        for minute, (subject, sender) in enumerate((
                ("First steps", "Mailward Team <team@acme.example>"),
                ("Lunch on Friday", "Bob Builder <bob@acme.example>"),
                ("Project plan", "Carla Diaz <carla@partner.example>"))):
            await store.deliver(ANN, _mail(subject, minute=minute, sender=sender))
        await store.deliver(ANN, _mail("Monthly newsletter", minute=10,
                                       html=EVIL.format(port=image_port)))
    finally:
        await db.dispose()


@pytest.fixture
def web_server(settings: Settings, image_host: int) -> Iterator[str]:
    """This module's server: the web role over a store with ann's mail in it."""
    configured = settings.model_copy(update={
        "bind": "127.0.0.1", "port_web": 0,
        "store_backend": "postgresql" if settings.db_url.startswith("postgresql") else "maildir",
        "webmail_image_proxy_allow": ["127.0.0.1/32"]})
    asyncio.run(_seed(configured, image_host))
    _SETTINGS["current"] = configured
    with roles_in_thread(configured) as (_, urls):
        yield urls["web"]


_SETTINGS: dict[str, Settings] = {}


def settings_of(page: Page) -> Settings:
    """The settings of the server ``page`` talks to."""
    return _SETTINGS["current"]


async def _deliver(settings: Settings, data: bytes) -> None:
    db = Database(settings.db_url)
    try:
        await open_store(settings, db).deliver(ANN, data)
    finally:
        await db.dispose()


def _in_thread(job: Coroutine[Any, Any, None]) -> None:
    """Run ``job`` to its end in a thread's own loop (this thread is Playwright's)."""
    failure: list[BaseException] = []

    def main() -> None:
        try:
            asyncio.run(job)
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=main)
    thread.start()
    thread.join(WAIT)
    if failure:
        raise failure[0]


def t(name: str) -> str:
    return f'[data-test="{name}"]'


def test_read_html_mail_and_shortcuts(page: Page, shot: object) -> None:
    page.goto("/mail")
    expect(page.locator(t("login-form"))).to_be_visible()
    page.locator(t("login-address")).fill(ANN)
    page.locator(t("login-password")).fill(PASSWORD)
    page.locator(t("login-submit")).click()
    expect(page.locator(t("folder-inbox"))).to_be_visible()
    rows = page.locator(t("message-row"))
    expect(rows).to_have_count(4)
    expect(rows.first.locator(t("message-subject"))).to_have_text("Monthly newsletter")
    expect(page.locator(t("folder-inbox")).locator(t("unread-count"))).to_have_text("4")
    shot(page, "list")  # type: ignore[operator]

    # j/k move the cursor; ? shows the help, Escape hides it
    page.keyboard.press("j")
    expect(rows.nth(0)).to_have_class("row unread cursor")
    page.keyboard.press("j")
    expect(rows.nth(1)).to_have_class("row unread cursor")
    page.keyboard.press("k")
    expect(rows.nth(0)).to_have_class("row unread cursor")
    page.keyboard.press("?")
    expect(page.locator(t("shortcut-help"))).to_be_visible()
    shot(page, "help")  # type: ignore[operator]
    page.keyboard.press("Escape")
    expect(page.locator(t("shortcut-help"))).to_be_hidden()

    # open the HTML mail: its scripts do not run, the remote image waits for consent
    page.keyboard.press("o")
    expect(page.locator(t("body-frame"))).to_be_visible()
    frame = page.frame_locator(t("body-frame"))
    expect(frame.locator("h1")).to_have_text("Monthly newsletter")
    expect(page.locator(t("images-banner"))).to_contain_text("1 remote image blocked")
    inline = frame.locator("img[alt='inline logo']")
    expect(inline).to_have_js_property("naturalWidth", 1)  # the cid: part, by signed URL
    assert "owned" not in page.title()
    shot(page, "message")  # type: ignore[operator]
    page.locator(t("show-images")).click()
    expect(page.locator(t("images-banner"))).to_have_count(0)
    remote = page.frame_locator(t("body-frame")).locator("img[alt='remote banner']")
    expect(remote).to_have_js_property("naturalWidth", 1)  # through /mail/img
    assert "owned" not in page.title()

    # in the read view j goes to the next message of the list, u back to the list
    page.keyboard.press("j")
    expect(page.locator(".msg-subject")).to_have_text("Project plan")
    page.keyboard.press("k")
    expect(page.locator(".msg-subject")).to_contain_text("Monthly newsletter")
    page.keyboard.press("u")
    expect(page.locator(t("message-row")).first).to_be_visible()
    expect(page.locator(t("folder-inbox")).locator(t("unread-count"))).to_have_text("2")
    # "/" focuses the search box
    page.keyboard.press("/")
    expect(page.locator(t("search-input"))).to_be_focused()
    page.keyboard.type("friday")
    page.keyboard.press("Enter")
    expect(page.locator(t("search-results")).locator(t("message-subject"))).to_have_text(
        ["Lunch on Friday"])

    # live updates: a delivery shows up in the open list without a reload (the stream's
    # change event, at the latest its bounded re-check); drag a row onto Trash to delete
    page.goto("/mail/box?f=INBOX")
    expect(page.locator(t("message-row"))).to_have_count(4)
    marker = page.evaluate("() => (window.__kept = 'same page')")
    _in_thread(_deliver(settings_of(page), _mail("Breaking news", minute=30)))
    expect(page.locator(t("message-subject")).first).to_have_text("Breaking news", timeout=25000)
    assert page.evaluate("() => window.__kept") == marker  # swapped in place, not reloaded
    page.locator(t("message-row")).filter(has_text="First steps").drag_to(
        page.locator(t("folder-trash")))
    expect(page.locator(t("message-row")).filter(has_text="First steps")).to_have_count(0)
    page.goto("/mail/box?f=Trash")
    expect(page.locator(t("message-subject"))).to_have_text(["First steps"])

    # dark mode follows the system
    page.emulate_media(color_scheme="dark")
    page.goto("/mail/box?f=INBOX")
    shot(page, "list-dark")  # type: ignore[operator]
    page.set_viewport_size({"width": 390, "height": 800})
    shot(page, "list-mobile")  # type: ignore[operator]
