"""The hostile mail corpus (tests/hostile_mail/, its README says what each file tries) read
in a real browser, on both backends: no script of a mail runs (no page error, no console
output of a script, no dialog, no title changed, no navigation), and no request leaves for
any host but the web server's origin; remote images stay blocked until "Show images", and
then load only through our proxy (/mail/img), never from the remote host; attachments of
the MIME-trick mails download as attachments, never rendered.

Every file is delivered through the node's local delivery into ann's INBOX.
"""

from __future__ import annotations

import contextlib
import html
import http.server
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import ConsoleMessage, Dialog, Page, Request, expect
from webmail_fixtures import (  # noqa: F401 - the fixtures
    ANN,
    BOB,
    CAROL,
    IMAGE_HOST,
    Node,
    crlf,
    csrf_token,
    html_mail,
    http_login,
    log_in,
    mail_node_fixture,
    node_overrides_fixture,
    spam_mail,
    text_mail,
    web_server_fixture,
)

Shot = Callable[[Page, str], Path]
CORPUS = Path(__file__).resolve().parents[1] / "hostile_mail"
PIXEL = bytes.fromhex(  # a 1x1 PNG
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da63f8cf00000301010018dd8db00000000049454e44ae426082")
# What the browser itself logs when it blocks something (not a script of the mail).
BROWSER_NOTICES = re.compile(
    r"^(Refused to|Blocked |Failed to load resource|Unsafe attempt|Not allowed to|"
    r"Mixed Content|Ignored call to|An iframe which has both)")


def corpus() -> list[Path]:
    files = sorted(p for p in CORPUS.glob("*.eml"))
    assert files, f"no hostile mail in {CORPUS}"
    return files


def t(name: str) -> str:
    return f'[data-test="{name}"]'


@dataclass
class Watch:
    """What the browser did: every request, console message, dialog and page error."""

    origin: str
    requests: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def on_request(self, request: Request) -> None:
        self.requests.append(request.url)

    def on_console(self, message: ConsoleMessage) -> None:
        # the browser's own notices of what it blocked are fine; anything a script logs is not
        if message.type not in ("error", "warning") or not BROWSER_NOTICES.match(message.text):
            self.console.append(f"{message.type}: {message.text}")

    def on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def foreign(self, since: int = 0) -> list[str]:
        """Requests (from ``since`` on) to anything but the web server's origin."""
        return [u for u in self.requests[since:]
                if not u.startswith(("data:", "about:")) and not u.startswith(self.origin + "/")]

    def proxied(self, since: int = 0) -> list[str]:
        return [u for u in self.requests[since:] if u.startswith(self.origin + "/mail/img?")]

    def clean(self) -> None:
        assert not self.console, self.console
        assert not self.dialogs, self.dialogs
        assert not self.errors, self.errors
        assert not self.foreign(), self.foreign()


@contextlib.contextmanager
def watching(page: Page, origin: str) -> Iterator[Watch]:
    watch = Watch(origin)
    page.context.on("request", watch.on_request)  # the iframe's requests too
    page.on("console", watch.on_console)
    page.on("dialog", watch.on_dialog)
    page.on("pageerror", lambda error: watch.errors.append(str(error)))
    # the watch sees what a script would do (then starts afresh)
    page.evaluate("() => { console.log('self-check'); alert('self-check'); }")
    assert watch.console == ["log: self-check"] and watch.dialogs == ["self-check"]
    watch.console.clear()
    watch.dialogs.clear()
    yield watch


def server_title(text: str) -> str:
    """The <title> the server sent."""
    found = re.search(r"<title>(.*?)</title>", text, re.S)
    assert found, "no <title>"
    return html.unescape(found.group(1)).strip()


def open_message(page: Page, uid: int) -> str:
    """Open INBOX message ``uid``; check the page is the one the server sent (same title, no
    navigation away) once loaded; the path opened."""
    path = f"/mail/msg?f=INBOX&uid={uid}"
    response = page.goto(path, wait_until="load")
    assert response is not None and response.status == 200, (path, response)
    expect(page).to_have_title(server_title(response.text()))
    assert urlsplit(page.url).path == "/mail/msg", page.url
    for frame in page.frames:
        assert "PWNED" not in frame.title().upper(), (path, frame.url)
    return path


def test_hostile_mail_runs_nothing_and_loads_nothing_remote(
        mail_node: Node, page: Page, shot: Shot) -> None:
    uids = {path.name: mail_node.deliver(ANN, crlf(path.read_bytes())) for path in corpus()}
    log_in(page, ANN)
    with watching(page, mail_node.url) as watch:
        banners = []
        for name, uid in uids.items():
            open_message(page, uid)
            shot(page, name.removesuffix(".eml"))
            if page.locator(t("images-banner")).count():
                banners.append((name, uid))
        watch.clean()
        bodies = [u for u in watch.requests if "/mail/msg/body?" in u]  # the iframes' too
        assert len(bodies) >= len([n for n in uids if not n.startswith("15-")]), bodies
        assert not watch.proxied(), "remote images loaded without consent"
        assert [name for name, _ in banners] and "16-images.eml" in dict(banners), banners

        # with consent: still nothing but our own origin, remote images through the proxy
        for name, uid in banners:
            since = len(watch.requests)
            open_message(page, uid)
            page.locator(t("show-images")).click()
            page.wait_for_load_state("load")
            expect(page.locator(t("images-banner"))).to_have_count(0)
            assert watch.proxied(since), f"{name}: no image through the proxy after consent"
            shot(page, name.removesuffix(".eml") + "-images-shown")
        watch.clean()


def test_attachments_of_mime_tricks_download_as_attachments(mail_node: Node,
                                                            page: Page) -> None:
    uids = {path.name: mail_node.deliver(ANN, crlf(path.read_bytes()))
            for path in corpus() if path.name.startswith(("14-", "15-"))}
    assert len(uids) == 2, uids
    log_in(page, ANN)
    with watching(page, mail_node.url) as watch:
        for name, uid in uids.items():
            open_message(page, uid)
            links = page.locator(t("attachment-link"))
            hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
            assert hrefs, f"{name}: no attachment links"
            for href in [h for h in hrefs if h]:
                answer = page.request.get(href)  # the page's session cookie
                assert answer.status == 200, (name, href, answer.status)
                headers = answer.headers
                disposition = headers.get("content-disposition", "")
                assert disposition.startswith("attachment;"), (name, href, disposition)
                assert headers.get("x-content-type-options") == "nosniff", (name, href)
                assert "sandbox" in headers.get("content-security-policy", ""), (name, href)
                assert "html" not in headers.get("content-type", ""), (name, href, headers)
                for bad in ("/", "\\", "\r", "\n", "\u202e"):
                    fallback = disposition.split('filename="', 1)[-1].split('"', 1)[0]
                    assert bad not in fallback, (name, disposition)
            raw = page.request.get(f"/mail/msg/raw?f=INBOX&uid={uid}")
            assert raw.headers.get("content-disposition", "").startswith("attachment;")
        watch.clean()


# -- a remote image behind our proxy: blocked until consent, then fetched by the server ----


class _Images(http.server.BaseHTTPRequestHandler):
    hits: list[str]

    def do_GET(self) -> None:
        cookie = self.headers.get("Cookie")
        self.hits.append(f"{self.headers.get('Host')}{self.path} cookie={cookie}")
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(PIXEL)))
        self.end_headers()
        self.wfile.write(PIXEL)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def image_server() -> Iterator[tuple[int, list[str]]]:
    """A loopback HTTP server answering every GET with a PNG: its port and the requests."""
    hits: list[str] = []
    handler = type("Images", (_Images,), {"hits": hits})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.mark.parametrize("node_overrides", [{
    "webmail_undo_seconds": 0, "webmail_image_proxy_allow": ["127.0.0.0/8"]}])
def test_remote_images_come_through_the_proxy_only_after_consent(
        mail_node: Node, node_overrides: dict[str, Any], page: Page, shot: Shot,
        image_server: tuple[int, list[str]]) -> None:
    port, hits = image_server
    remote = f"http://{IMAGE_HOST}:{port}/news/pixel.png"
    uid = mail_node.deliver(ANN, html_mail(
        "Newsletter with a picture", f'<p>Hello</p><img id="pic" src="{remote}" alt="pic">'))
    log_in(page, ANN)
    with watching(page, mail_node.url) as watch:
        open_message(page, uid)
        expect(page.locator(t("images-banner"))).to_contain_text("1 remote image")
        body = page.frame_locator(t("body-frame"))
        expect(body.locator("p")).to_have_text("Hello")
        assert hits == [] and not watch.proxied()
        shot(page, "blocked")
        page.locator(t("show-images")).click()
        page.wait_for_load_state("load")
        expect(body.locator("img")).to_have_js_property("naturalWidth", 1)  # it loaded
        [proxied] = watch.proxied()
        assert "u=http" in proxied and IMAGE_HOST in proxied
        assert len(hits) == 1 and hits[0].startswith(f"{IMAGE_HOST}:{port}/news/pixel.png")
        assert hits[0].endswith("cookie=None")  # the reader's cookies never reach the sender
        shot(page, "shown")
        watch.clean()


# -- another mailbox: none of ann's mail, whatever it asks for ----------------------------


def test_another_mailbox_reaches_none_of_anns_mail(mail_node: Node) -> None:
    """carol (Globex) and bob (ann's own domain) ask for ann's message, its parts, her
    held mail and a word of hers by URL: not found, nothing of hers shown."""
    uid = mail_node.deliver(ANN, text_mail("Private plans", "The secret word is marmalade.\n"))
    held = mail_node.hold(spam_mail("Held for ann"))
    for other in (CAROL, BOB):
        with contextlib.closing(http_login(mail_node.url, other)) as http:
            assert http.get("/mail/box?f=INBOX").text.count('data-test="message-row"') == 0
            for path in (f"/mail/msg?f=INBOX&uid={uid}", f"/mail/msg/raw?f=INBOX&uid={uid}",
                         f"/mail/msg/body?f=INBOX&uid={uid}",
                         f"/mail/msg/part?f=INBOX&uid={uid}&part=1",
                         f"/mail/quarantine/{held.id}"):
                answer = http.get(path)
                assert answer.status_code == 404, (other, path, answer.status_code)
                assert "marmalade" not in answer.text and "Held for ann" not in answer.text
            found = http.get("/mail/search", params={"q": "marmalade"})
            assert found.status_code == 200 and "Private plans" not in found.text
            page = http.get("/mail/box?f=INBOX").text
            for action in ("read", "spam", "delete"):
                answer = http.post("/mail/actions", data={
                    "_csrf_token": csrf_token(page), "f": "INBOX", "uid": str(uid),
                    "action": action})
                assert answer.status_code == 404, (other, action, answer.status_code)
            answer = http.post(f"/mail/quarantine/{held.id}/release",
                               data={"_csrf_token": csrf_token(page)})
            assert answer.status_code == 404, (other, answer.status_code)
    assert mail_node.uids(ANN) == [uid] and mail_node.flags(ANN, "INBOX", uid) == frozenset()
    assert [entry.id for entry in mail_node.held(ANN)] == [held.id]
