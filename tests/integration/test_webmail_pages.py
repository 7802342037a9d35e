"""The webmail's shell and reading side over a real socket (the web role serving a mail
store that announces its changes), as a browser without JavaScript uses it: login and its
session, CSRF, tenant isolation by folder and UID, the read view's headers, downloads,
live updates, folders and search. Both backends (SQLite + Maildir, PostgreSQL for both)."""

from __future__ import annotations

import asyncio
import contextlib
import html
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import pyotp
import pytest

from mailward.app import Services
from mailward.config import Settings
from mailward.db import AddressList
from mailward.directory import Actor
from mailward.server.mail_roles import MailSystem
from mailward.server.web_role import RoleServer, bind, web_server
from mailward.store import MailStore
from mailward.web.webmail.reading import BODY_CSP

OP = Actor.operator()
PASSWORD = "Mailbox-pass-77"
ANN, BOB, CARL = "ann@acme.example", "bob@acme.example", "carl@nohost.example"
_TOKEN = re.compile(r'name="_csrf_token" value="([^"]+)"')
WAIT = 30  # seconds: a safety net against a hang, never a synchronisation


@dataclass
class Web:
    url: str
    store: MailStore
    services: Services
    settings: Settings
    server: RoleServer


@contextlib.asynccontextmanager
async def serving(settings: Settings, services: Services) -> AsyncIterator[Web]:
    """The web role on a free loopback port, sharing the process's mail store and events
    (as ``mailward serve`` does when mail roles run beside it)."""
    mail = MailSystem.create(services, settings)
    server = web_server(services, settings, mail)
    sock = bind("127.0.0.1", 0)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    listening = asyncio.ensure_future(server.listening.wait())
    await asyncio.wait({task, listening}, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
    if not listening.done():
        listening.cancel()
        task.cancel()
        await task
    try:
        yield Web(f"http://127.0.0.1:{server.port}", mail.store, services, settings, server)
    finally:
        server.should_exit = True
        await task
        await mail.events.close()
        sock.close()


@pytest.fixture
def configured(settings: Settings) -> Settings:
    """The mail store of the database's kind (PostgreSQL store with PostgreSQL)."""
    return settings.model_copy(update={
        "store_backend": "postgresql" if settings.db_url.startswith("postgresql") else "maildir",
        "webmail_host": "webmail.acme.example"})


@pytest.fixture
async def seeded(configured: Settings, directory: Services) -> Services:
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "acme.example", account="Acme", hosting=True)
    await directory.domains.create(OP, "nohost.example", account="Acme", hosting=False)
    await directory.bulk.add_lines(OP, [f"{ANN}|{PASSWORD}", f"{BOB}|{PASSWORD}",
                                        f"{CARL}|{PASSWORD}"], AddressList.NO_FILTER)
    return Services(directory.db, configured)


@pytest.fixture
async def web(configured: Settings, seeded: Services) -> AsyncIterator[Web]:
    async with serving(configured, seeded) as running:
        yield running


@dataclass
class Browser:
    """Cookies, and each form's CSRF token as the last page rendered it."""

    http: httpx.AsyncClient
    token: str = ""

    async def get(self, path: str, status: int = 200, **params: Any) -> httpx.Response:
        response = await self.http.get(path, params=params)
        assert response.status_code == status, (path, response.status_code, response.text[:500])
        self._remember(response.text)
        return response

    async def post(self, path: str, data: dict[str, Any] | None = None, status: int = 303,
                   ) -> httpx.Response:
        response = await self.http.post(path, data={"_csrf_token": self.token, **(data or {})})
        assert response.status_code == status, (path, response.status_code, response.text[:800])
        self._remember(response.text)
        return response

    async def login(self, address: str, password: str = PASSWORD,
                    status: int = 303) -> httpx.Response:
        await self.get("/mail/login")
        return await self.post("/mail/login", {"address": address, "password": password},
                               status=status)

    def _remember(self, text: str) -> None:
        found = _TOKEN.search(text)
        if found:
            self.token = html.unescape(found.group(1))


@pytest.fixture
async def browser(web: Web) -> AsyncIterator[Callable[[], Browser]]:
    clients: list[httpx.AsyncClient] = []

    def new() -> Browser:
        clients.append(httpx.AsyncClient(base_url=web.url, timeout=WAIT))
        return Browser(clients[-1])

    yield new
    for client in clients:
        await client.aclose()


@pytest.fixture
async def ann(browser: Callable[[], Browser]) -> Browser:
    client = browser()
    await client.login(ANN)
    return client


def mail(subject: str, *, sender: str = "Zoe Quartermaine <zoe@remote.example>",
         to: str = ANN, text: str | None = "Hello there.", html_body: str | None = None,
         attachment: tuple[str, bytes] | None = None) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    message["Message-ID"] = f"<{abs(hash(subject))}@remote.example>"
    message["Date"] = "Mon, 07 Dec 2026 08:00:00 +0000"
    if text is not None:
        message.set_content(text)
    if html_body is not None:
        if text is None:
            message.set_content(html_body, subtype="html")
        else:
            message.add_alternative(html_body, subtype="html")
    if attachment is not None:
        name, data = attachment
        message.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    return bytes(message)


def set_cookies(response: httpx.Response) -> list[str]:
    return [v for k, v in response.headers.multi_items() if k == "set-cookie"]


def texts(page: str, test: str) -> list[str]:
    """The text of every element with ``data-test=test``."""
    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html.unescape(m))).strip()
            for m in re.findall(rf'data-test="{test}"[^>]*>(.*?)</', page, re.S)]


# ------------------------------------------------------------------ login and session

async def test_login_session_cookie_and_logout(browser: Callable[[], Browser]) -> None:
    client = browser()
    page = await client.get("/mail")  # no session: the login form
    assert 'data-test="login-form"' in page.text
    assert not [c for c in set_cookies(page) if c.startswith("mailward_mail=")]
    wrong = await client.post("/mail/login", {"address": ANN, "password": "nope"}, status=401)
    assert "Wrong address or password." in wrong.text
    client.http.cookies.set("mailward_mail", "chosen-by-an-attacker",
                            domain="127.0.0.1")  # fixation attempt
    landed = await client.post("/mail/login", {"address": ANN.upper(), "password": PASSWORD,
                                               "next": "https://evil.example/"})
    assert landed.headers["location"] == "/mail/box?f=INBOX"
    cookie = next(c for c in set_cookies(landed) if c.startswith("mailward_mail="))
    attributes = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in attributes and "samesite=lax" in attributes and "path=/" in attributes
    assert "secure" not in attributes and not any(a.startswith("domain") for a in attributes)
    assert "chosen-by-an-attacker" not in cookie
    assert not [c for c in set_cookies(landed) if c.startswith("mailward_session=")]
    box = await client.get("/mail/box", f="INBOX")
    assert 'data-test="folder-inbox"' in box.text and 'data-test="folder-junk"' in box.text
    assert ANN in box.text
    assert (await client.http.get("/mail")).headers["location"] == "/mail/box?f=INBOX"
    # the panel does not know this session
    assert (await client.http.get("/panel/me")).status_code == 303
    await client.post("/mail/logout")
    gone = await client.http.get("/mail/box?f=INBOX")
    assert gone.status_code == 303
    assert gone.headers["location"] == "/mail/login?next=%2Fmail%2Fbox%3Ff%3DINBOX"


async def test_csrf_token_is_required(browser: Callable[[], Browser], ann: Browser) -> None:
    client = browser()
    await client.get("/mail/login")
    forged = await client.http.post("/mail/login", data={"address": ANN, "password": PASSWORD})
    assert forged.status_code == 403
    assert (await ann.http.post("/mail/folders/create", data={"name": "Evil"})).status_code == 403
    assert (await ann.http.post("/mail/logout")).status_code == 403
    page = await ann.get("/mail/box", f="INBOX")
    assert 'data-test="folder-evil"' not in page.text


async def test_throttled_and_no_hosting_logins(browser: Callable[[], Browser],
                                               configured: Settings) -> None:
    client = browser()
    carl = await client.login(CARL, status=401)  # right password, hosting off: as wrong
    assert "Wrong address or password." in carl.text
    for _ in range(configured.auth_failures_per_window):
        await client.post("/mail/login", {"address": ANN, "password": "wrong"}, status=401)
    locked = await client.post("/mail/login", {"address": ANN, "password": PASSWORD},
                               status=429)
    assert re.search(r"Too many failed logins\. Try again in \d+ (minutes|seconds)\.",
                     locked.text)
    assert 'data-test="login-throttled"' in locked.text
    assert not [c for c in set_cookies(locked) if c.startswith("mailward_mail=")]


async def test_two_factor_step(browser: Callable[[], Browser], seeded: Services) -> None:
    secret = seeded.mailbox_two_factor.new_secret(ANN).secret
    totp = pyotp.TOTP(secret)
    await seeded.mailbox_two_factor.enable(ANN, secret, totp.now())
    client = browser()
    asked = await client.login(ANN, status=200)
    assert 'data-test="code-input"' in asked.text
    # the password alone is no login
    assert (await client.http.get("/mail/box?f=INBOX")).status_code == 303
    wrong = await client.post("/mail/login/code", {"code": "000000"}, status=401)
    assert "Wrong or used code." in wrong.text
    code = totp.at(datetime.now(UTC) + timedelta(seconds=30))  # enable used up this step's
    done = await client.post("/mail/login/code", {"code": code})
    assert done.headers["location"] == "/mail/box?f=INBOX"
    await client.get("/mail/box", f="INBOX")


async def test_password_change_elsewhere_ends_the_session(ann: Browser,
                                                          seeded: Services) -> None:
    await ann.get("/mail/box", f="INBOX")
    await seeded.mailbox_self.change_password(ANN, PASSWORD, "New-pass-4242x",
                                              "New-pass-4242x", source="test")
    assert (await ann.http.get("/mail/box?f=INBOX")).status_code == 303
    for path in ("/mail/box?f=INBOX", "/mail", "/mail/login"):  # no redirect loop
        landed = await ann.http.get(path, follow_redirects=True)
        assert landed.status_code == 200 and 'data-test="login-form"' in landed.text


async def test_https_public_url_gives_a_host_prefixed_secure_cookie(
        configured: Settings, seeded: Services) -> None:
    tls = configured.model_copy(update={"public_url": "https://mail.acme.example"})
    async with serving(tls, seeded) as running, \
            httpx.AsyncClient(base_url=running.url, timeout=WAIT) as http:
        # the CSRF cookie is Secure too: httpx keeps it from plain http, so send it by hand
        form = await http.get("/mail/login")
        csrf = next(c for c in set_cookies(form) if c.startswith("mailward_csrf="))
        token = html.unescape(_TOKEN.search(form.text).group(1))  # type: ignore[union-attr]
        landed = await http.post(
            "/mail/login", data={"_csrf_token": token, "address": ANN, "password": PASSWORD},
            headers={"cookie": csrf.split(";", 1)[0]})
        assert landed.status_code == 303, landed.text
        cookie = next(c for c in set_cookies(landed) if c.startswith("__Host-mailward_mail="))
        attributes = [part.strip().lower() for part in cookie.split(";")]
        assert "secure" in attributes and "path=/" in attributes and "httponly" in attributes
        assert not any(a.startswith("domain") for a in attributes)


async def test_webmail_host_goes_to_the_webmail(web: Web) -> None:
    async with httpx.AsyncClient(base_url=web.url, timeout=WAIT) as http:
        there = await http.get("/", headers={"host": "webmail.acme.example:8080"})
        assert there.status_code == 303 and there.headers["location"] == "/mail"
        home = await http.get("/")
        assert home.status_code == 200 and "/mail" not in home.headers.get("location", "")


# ------------------------------------------------------------------ reading

async def test_another_mailboxs_mail_is_unreachable(ann: Browser, web: Web) -> None:
    stored = await web.store.deliver(BOB, mail("Bob's secret", to=BOB,
                                               attachment=("plan.pdf", b"%PDF-1.4 bob")))
    await web.store.create_folder(BOB, "Secret")
    uid = str(stored.uid)
    for path in ("/mail/msg", "/mail/msg/body", "/mail/msg/raw"):
        response = await ann.http.get(path, params={"f": "INBOX", "uid": uid})
        assert response.status_code == 404, (path, response.status_code)
        assert "secret" not in response.text.lower()
    part = await ann.http.get("/mail/msg/part", params={"f": "INBOX", "uid": uid, "part": "2"})
    assert part.status_code == 404
    assert (await ann.http.get("/mail/box?f=Secret")).status_code == 404
    listing = await ann.get("/mail/box", f="INBOX")
    assert "Bob&#39;s secret" not in listing.text and "Bob's secret" not in listing.text


async def test_read_view_html_body_in_a_sandbox(ann: Browser, web: Web) -> None:
    body = ('<p onclick="x()">Quarterly <b>numbers</b></p><script>parent.document.title='
            '"owned"</script><img src="https://tracker.example/pixel.png" alt="t">')
    stored = await web.store.deliver(ANN, mail("Numbers", text="Quarterly numbers",
                                               html_body=body))
    page = await ann.get("/mail/msg", f="INBOX", uid=str(stored.uid))
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    frame = re.search(r'<iframe[^>]*data-test="body-frame"[^>]*>', page.text)
    assert frame is not None
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in frame.group(0)
    assert "allow-scripts" not in page.text and "allow-same-origin" not in page.text
    assert texts(page.text, "images-banner")[0].startswith("1 remote image blocked")
    src = html.unescape(re.search(r'src="([^"]+)"', frame.group(0)).group(1))  # type: ignore[union-attr]
    doc = await ann.http.get(src)
    assert doc.status_code == 200 and doc.headers["content-type"].startswith("text/html")
    assert doc.headers["content-security-policy"] == BODY_CSP
    assert "frame-ancestors 'self'" in doc.headers["content-security-policy"]
    assert "sandbox allow-popups allow-popups-to-escape-sandbox" in BODY_CSP
    assert doc.headers["x-frame-options"] == "SAMEORIGIN"
    assert doc.headers["x-content-type-options"] == "nosniff"
    assert "numbers" in doc.text and "<script" not in doc.text.lower()
    assert "tracker.example" not in doc.text and "onclick" not in doc.text
    # opening marked it read
    listing = await ann.get("/mail/box", f="INBOX")
    row = re.search(rf'<li class="row[^"]*"[^>]*data-uid="{stored.uid}"', listing.text)
    assert row is not None and "unread" not in row.group(0)
    # show this message's images: the body then loads them through the proxy
    await ann.post("/mail/images/allow", {"f": "INBOX", "uid": str(stored.uid),
                                          "scope": "message"})
    shown = await ann.get("/mail/msg", f="INBOX", uid=str(stored.uid))
    assert 'data-test="images-banner"' not in shown.text
    doc = await ann.http.get(f"/mail/msg/body?f=INBOX&uid={stored.uid}&images=1")
    assert "/mail/img?u=https%3A%2F%2Ftracker.example%2Fpixel.png" in html.unescape(doc.text)
    # the sandboxed document sends no cookie: its proxy URLs carry a grant instead
    proxied = html.unescape(re.search(r'src="(/mail/img\?[^"]+)"', doc.text).group(1))  # type: ignore[union-attr]
    assert "&e=" in proxied and "&t=" in proxied
    async with httpx.AsyncClient(base_url=str(ann.http.base_url), timeout=WAIT) as cookieless:
        granted = await cookieless.get(proxied)  # the login check passes, the proxy refuses
        assert granted.status_code == 422 and "image refused" in granted.text, granted.text
        forged = await cookieless.get(re.sub(r"t=[0-9a-f]+", "t=" + "0" * 64, proxied))
        assert forged.status_code == 403 and "log in first" in forged.text


async def test_text_mail_is_escaped_and_linkified(ann: Browser, web: Web) -> None:
    text = 'See https://example.org/a?b=1&c=2. <script>alert(1)</script> "quoted"'
    stored = await web.store.deliver(ANN, mail("Plain", text=text))
    page = await ann.get("/mail/msg", f="INBOX", uid=str(stored.uid))
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert ('<a href="https://example.org/a?b=1&amp;c=2" target="_blank" '
            'rel="noopener noreferrer nofollow">') in page.text
    assert 'data-test="body-frame"' not in page.text


async def test_sender_images_preference(ann: Browser, web: Web) -> None:
    body = '<p>Hi</p><img src="https://cdn.remote.example/logo.png" alt="logo">'
    first = await web.store.deliver(ANN, mail("Logo 1", text=None, html_body=body))
    second = await web.store.deliver(ANN, mail("Logo 2", text=None, html_body=body))
    page = await ann.get("/mail/msg", f="INBOX", uid=str(first.uid))
    assert 'data-test="allow-sender-images"' in page.text
    await ann.post("/mail/images/allow", {"f": "INBOX", "uid": str(first.uid),
                                          "scope": "sender"})
    other = await ann.get("/mail/msg", f="INBOX", uid=str(second.uid))
    assert 'data-test="images-banner"' not in other.text
    doc = await ann.http.get(f"/mail/msg/body?f=INBOX&uid={second.uid}")
    assert "/mail/img?u=" in doc.text


async def test_conversation_below_the_message(ann: Browser, web: Web) -> None:
    first = EmailMessage()
    first["From"], first["To"], first["Subject"] = "zoe@remote.example", ANN, "Trip"
    first["Message-ID"], first["Date"] = "<trip-1@remote.example>", "Mon, 07 Dec 2026 07:00 +0000"
    first.set_content("Shall we go?")
    reply = EmailMessage()
    reply["From"], reply["To"], reply["Subject"] = "zoe@remote.example", ANN, "Re: Trip"
    reply["Message-ID"], reply["Date"] = "<trip-2@remote.example>", "Mon, 07 Dec 2026 08:00 +0000"
    reply["In-Reply-To"] = reply["References"] = "<trip-1@remote.example>"
    reply.set_content("Yes.")
    await web.store.deliver(ANN, bytes(first))
    stored = await web.store.deliver(ANN, bytes(reply))
    page = await ann.get("/mail/msg", f="INBOX", uid=str(stored.uid), threads="1")
    conversation = page.text.split('data-test="conversation"', 1)[1].split("</section>", 1)[0]
    assert "Trip" in conversation and "Re: Trip" in conversation
    alone = await ann.get("/mail/msg", f="INBOX", uid=str(stored.uid), threads="0")
    assert 'data-test="conversation"' not in alone.text


async def test_attachment_and_source_downloads(ann: Browser, web: Web) -> None:
    stored = await web.store.deliver(ANN, mail("Report", attachment=(
        "Bericht März.pdf", b"%PDF-1.4 report")))
    page = await ann.get("/mail/msg", f="INBOX", uid=str(stored.uid))
    link = re.search(r'data-test="attachment-link" href="([^"]+)"', page.text)
    assert link is not None and "Bericht März.pdf" in page.text
    download = await ann.http.get(html.unescape(link.group(1)))
    assert download.status_code == 200 and download.content == b"%PDF-1.4 report"
    disposition = download.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''Bericht%20M%C3%A4rz.pdf" in disposition
    assert download.headers["x-content-type-options"] == "nosniff"
    assert download.headers["content-security-policy"] == "default-src 'none'; sandbox"
    raw = await ann.http.get(f"/mail/msg/raw?f=INBOX&uid={stored.uid}")
    assert raw.status_code == 200 and b"Subject: Report" in raw.content
    assert raw.headers["content-disposition"].startswith("attachment;")
    assert raw.headers["content-security-policy"] == "default-src 'none'; sandbox"


async def test_image_proxy_refuses_unsigned_urls_and_sets_no_cookie(ann: Browser) -> None:
    refused = await ann.http.get("/mail/img", params={"u": "https://x.example/a.png",
                                                      "s": "0" * 64})
    assert refused.status_code == 403 and "image refused" in refused.text
    assert set_cookies(refused) == []
    async with httpx.AsyncClient(base_url=str(ann.http.base_url), timeout=WAIT) as stranger:
        anonymous = await stranger.get("/mail/img", params={"u": "https://x.example/a.png",
                                                            "s": "0" * 64})
        assert anonymous.status_code == 403 and "log in first" in anonymous.text


# ------------------------------------------------------------------ list, folders, search

async def test_list_filters_sorting_and_conversation_toggle(ann: Browser, web: Web) -> None:
    for subject in ("Alpha", "Bravo", "Charlie"):
        await web.store.deliver(ANN, mail(subject))
    starred = await web.store.deliver(ANN, mail("Delta"))
    await web.store.set_flags(ANN, "INBOX", starred.uid, frozenset({"\\Seen", "\\Flagged"}))
    page = await ann.get("/mail/box", f="INBOX", threads="0", sort="subject", order="asc")
    assert texts(page.text, "message-subject") == ["Alpha", "Bravo", "Charlie", "Delta"]
    assert 'data-test="thread-toggle"' in page.text
    newest = await ann.get("/mail/box", f="INBOX", threads="0", sort="subject")
    assert texts(newest.text, "message-subject") == ["Delta", "Charlie", "Bravo", "Alpha"]
    flagged = await ann.get("/mail/box", f="INBOX", only="flagged")
    assert texts(flagged.text, "message-subject") == ["Delta"]
    unread = await ann.get("/mail/box", f="INBOX", only="unread", sort="subject", order="asc")
    assert texts(unread.text, "message-subject") == ["Alpha", "Bravo", "Charlie"]
    assert texts(unread.text, "unread-count")[0] == "3"


async def test_folder_create_rename_delete(ann: Browser) -> None:
    await ann.get("/mail/box", f="INBOX")
    created = await ann.post("/mail/folders/create", {"name": "Projects"})
    assert created.headers["location"] == "/mail/box?f=Projects"
    page = await ann.get("/mail/box", f="Projects")
    assert 'data-test="folder-projects"' in page.text
    await ann.post("/mail/folders/rename", {"name": "Projects", "new": "Clients"})
    page = await ann.get("/mail/box", f="Clients")
    assert 'data-test="folder-clients"' in page.text and 'data-test="folder-projects"' \
        not in page.text
    await ann.post("/mail/folders/delete", {"name": "Clients"})
    page = await ann.get("/mail/box", f="INBOX")
    assert 'data-test="folder-clients"' not in page.text
    refused = await ann.post("/mail/folders/delete", {"name": "INBOX"})
    assert refused.headers["location"] == "/mail/box?f=INBOX"
    page = await ann.get("/mail/box", f="INBOX")
    assert 'class="flash error"' in page.text


async def test_search_page(ann: Browser, web: Web) -> None:
    await web.store.deliver(ANN, mail("Invoice 4711", text="Please pay by Friday."))
    await web.store.deliver(ANN, mail("Lunch", text="Pizza?"))
    page = await ann.get("/mail/search", q="friday")
    results = page.text.split('data-test="search-results"', 1)[1]
    assert texts(results, "message-subject") == ["Invoice 4711"]
    assert 'data-test="search-input"' in page.text


# ------------------------------------------------------------------ live updates

async def test_events_stream_announces_a_delivery(ann: Browser, web: Web) -> None:
    before = (await ann.http.get("/mail/poll")).json()["version"]
    seen: list[str] = []
    async with asyncio.timeout(WAIT), ann.http.stream("GET", "/mail/events") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()
        async for line in lines:
            seen.append(line)
            if line == "event: ready":
                break
        await web.store.deliver(ANN, mail("Fresh"))
        async for line in lines:
            seen.append(line)
            if line == "event: change":
                break
    assert "event: change" in seen
    after = (await ann.http.get("/mail/poll")).json()["version"]
    assert after != before
    # a page rendered at an older version hears of the change as soon as it connects
    for since, expected in ((before, "event: change"), (after, None)):
        async with asyncio.timeout(WAIT), ann.http.stream(
                "GET", "/mail/events", params={"v": since}) as stream:
            lines = stream.aiter_lines()
            async for line in lines:
                if line == "event: ready":
                    break
            following = [await anext(lines) for _ in range(4)]  # data, retry, "", next
        assert following[3] == (expected or ": keepalive"), following


async def test_a_stopping_server_ends_the_streams_cleanly(ann: Browser, web: Web) -> None:
    """Streams end as the server begins to stop (a clean end of the chunked answer), not
    when the graceful shutdown gives up on them and cuts the connection."""
    async with asyncio.timeout(WAIT), ann.http.stream("GET", "/mail/events") as stream:
        lines = stream.aiter_lines()
        async for line in lines:
            if line == "event: ready":
                break
        web.server.should_exit = True
        rest = [line async for line in lines]  # raises if the connection is cut
    assert "event: change" not in rest
