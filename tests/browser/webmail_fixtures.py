"""Fixtures of the webmail browser tests (issue 19): a node running the ``web``, ``mx`` and
``delivery`` roles over a hosted domain with mailbox users, on both backends (SQLite with the
Maildir store, PostgreSQL with the PostgreSQL store).

A test module imports the fixtures (``from webmail_fixtures import mail_node_fixture,
node_overrides_fixture, web_server_fixture  # noqa: F401``; they are named ``mail_node``,
``node_overrides``, ``web_server``). The module's ``web_server`` overrides the browser
conftest's, so the conftest's ``page`` opens pages on this node.

* ``mail_node`` (:class:`Node`): the roles run in a thread with their own event loop;
  ``node.call(coro)`` runs a coroutine in that loop (the test thread is busy with Playwright's
  sync API, where ``asyncio.run`` is refused). Its helpers deliver mail the real way:
  ``deliver`` queues the message and waits until the node's delivery worker stored it (local
  delivery, as mail from the MX); ``hold`` sends spam over SMTP to the node's MX (spam filter
  on, DNS from a loopback server) and waits until it is in quarantine; ``put`` writes
  straight into a folder through the store.
* ``node_overrides``: settings for the node; parametrise it to change them (the default
  sends webmail mail at once: ``webmail_undo_seconds = 0``).
* ``log_in(page, address)``: the /mail login form; ``http_login(url, address)``: an httpx
  client logged in the same way (cookies, CSRF token of the form).

Acme (acme.example, hosting) has the mailboxes ann and bob, both on the Filter list; ann's
mail is quarantined from 6 points. Globex (globex.example, hosting) has carol.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import html.parser
import smtplib
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from dns_server import dns_server
from mail_helpers import filter_mail, mail_settings, port_of
from playwright.sync_api import Page, expect
from threaded_roles import roles_in_thread

from mailward.app import Services
from mailward.config import Settings
from mailward.db import AddressList, Database
from mailward.directory import Actor
from mailward.directory.facts import domain_keys
from mailward.filter.learning import DomainLearning
from mailward.quarantine.service import QuarantineView
from mailward.queue.spool import NewRecipient
from mailward.store import MailStore, NoSuchFolder, open_store

T = TypeVar("T")
OP = Actor.operator()
PASSWORD = "Mailbox-pass-77"
DOMAIN, OTHER_DOMAIN = "acme.example", "globex.example"
ANN, BOB, CAROL = f"ann@{DOMAIN}", f"bob@{DOMAIN}", f"carol@{OTHER_DOMAIN}"
SPAMMER = "sales@shop.example"
OUTSIDE = "friend@outside.example"
WAIT = 30.0  # seconds any one step of the node may take
IMAGE_HOST = "img.remote.example"  # a "remote" image host: 127.0.0.1 in the test DNS
ZONE = f"""
shop.example.    300 IN TXT "v=spf1 ip4:127.0.0.1 -all"
outside.example. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"
{IMAGE_HOST}.    300 IN A   127.0.0.1
"""
ROLES = frozenset({"web", "mx", "delivery"})


# -- messages ------------------------------------------------------------------------------


def text_mail(subject: str, body: str = "Hello.\n", *, sender: str = OUTSIDE, to: str = ANN,
              message_id: str | None = None, **headers: str) -> bytes:
    """A plain-text message with Date and Message-ID (CRLF line ends)."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Date"] = "Mon, 07 Dec 2026 09:00:00 +0000"
    msg["Message-ID"] = message_id or f"<{abs(hash((sender, to, subject)))}@outside.example>"
    for name, value in headers.items():  # Message_ID="<...>": header Message-ID
        del msg[name.replace("_", "-")]
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return crlf(msg.as_bytes())


def html_mail(subject: str, html: str, text: str = "See the HTML part.\n", *,
              sender: str = OUTSIDE, to: str = ANN, **headers: str) -> bytes:
    """A multipart/alternative message: ``text`` and ``html``."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Date"] = "Mon, 07 Dec 2026 09:30:00 +0000"
    msg["Message-ID"] = f"<{abs(hash((sender, to, subject, 'html')))}@outside.example>"
    for name, value in headers.items():  # Message_ID="<...>": header Message-ID
        del msg[name.replace("_", "-")]
        msg[name.replace("_", "-")] = value
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return crlf(msg.as_bytes())


def spam_mail(subject: str = "Your documents", to: str = ANN) -> bytes:
    """Mail from SPAMMER that ann's policy quarantines (an attached Windows executable)."""
    return filter_mail(SPAMMER, to, subject, attachment="documents.pdf.exe")


def crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def parse(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)


def body_text(message: EmailMessage) -> str:
    """The message's text body (its HTML part's source when it has no text part)."""
    part = message.get_body(preferencelist=("plain", "html"))
    return "" if part is None else str(part.get_content())


def attachment_names(message: EmailMessage) -> list[str]:
    """The file names of the message's attachments."""
    return [str(part.get_filename()) for part in message.iter_attachments()
            if part.get_filename()]


# -- the node ------------------------------------------------------------------------------


class Node:
    """Our roles running in a thread's event loop, and helpers working in that loop."""

    def __init__(self, settings: Settings, urls: dict[str, str],
                 loop: asyncio.AbstractEventLoop) -> None:
        self.settings = settings
        self.url = urls["web"]
        self.mx_port = port_of(urls["mx"])
        self.loop = loop
        self._services: Services | None = None
        self._store: MailStore | None = None

    # running coroutines in the node's loop

    def call(self, coro: Coroutine[Any, Any, T], seconds: float = WAIT * 2) -> T:
        """Run ``coro`` in the node's loop; its result (blocking this thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(seconds)

    @property
    def services(self) -> Services:
        """The helpers' own services (a database of their own, used in the node's loop)."""
        if self._services is None:
            self._services = Services(Database(self.settings.db_url), self.settings)
        return self._services

    @property
    def store(self) -> MailStore:
        if self._store is None:
            self._store = open_store(self.settings, self.services.db)
        return self._store

    def close(self) -> None:
        if self._services is not None:
            self.call(self._services.db.dispose())

    # the mail store

    def uids(self, mailbox: str, folder: str = "INBOX") -> list[int]:
        """UIDs of ``folder`` (none when the folder does not exist)."""
        async def run() -> list[int]:
            try:
                return [m.uid for m in await self.store.messages(mailbox, folder)]
            except NoSuchFolder:
                return []
        return self.call(run())

    def fetch(self, mailbox: str, folder: str, uid: int) -> bytes:
        return self.call(self.store.fetch(mailbox, folder, uid))

    def flags(self, mailbox: str, folder: str, uid: int) -> frozenset[str]:
        async def run() -> frozenset[str]:
            [found] = [m for m in await self.store.messages(mailbox, folder) if m.uid == uid]
            return found.flags
        return self.call(run())

    def folder(self, mailbox: str, folder: str) -> dict[int, EmailMessage]:
        """Every message of ``folder``, parsed, by UID."""
        async def run() -> dict[int, bytes]:
            try:
                infos = await self.store.messages(mailbox, folder)
            except NoSuchFolder:
                return {}
            return await self.store.fetch_many(mailbox, folder, [m.uid for m in infos])
        return {uid: parse(data) for uid, data in self.call(run()).items()}

    def wait_for(self, mailbox: str, folder: str, subject: str, seconds: float = WAIT, *,
                 check: Callable[[EmailMessage], bool] = lambda _m: True,
                 ) -> tuple[int, EmailMessage]:
        """Until a message whose Subject contains ``subject`` (and that passes ``check``) is
        in ``folder``: its UID and the parsed message (the newest such)."""
        async def run() -> tuple[int, EmailMessage]:
            async with asyncio.timeout(seconds):
                while True:
                    try:
                        infos = await self.store.messages(mailbox, folder)
                    except NoSuchFolder:
                        infos = []
                    found = await self.store.fetch_many(mailbox, folder,
                                                        [m.uid for m in infos])
                    for uid in sorted(found, reverse=True):
                        parsed = parse(found[uid])
                        if subject in str(parsed["Subject"] or "") and check(parsed):
                            return uid, parsed
                    await asyncio.sleep(0.1)  # store state: nothing to wait on
        try:
            return self.call(run(), seconds + 5)
        except TimeoutError:
            raise AssertionError(
                f"no message {subject!r} in {mailbox} {folder} after {seconds}s") from None

    def put(self, mailbox: str, data: bytes, folder: str = "INBOX",
            flags: frozenset[str] = frozenset()) -> int:
        """Store ``data`` straight into ``folder`` (created if missing); its UID."""
        async def run() -> int:
            try:
                return (await self.store.deliver(mailbox, data, folder=folder, flags=flags)).uid
            except NoSuchFolder:
                await self.store.create_folder(mailbox, folder)
                return (await self.store.deliver(mailbox, data, folder=folder, flags=flags)).uid
        return self.call(run())

    def deliver(self, mailbox: str, data: bytes, *, sender: str = OUTSIDE) -> int:
        """Queue ``data`` for ``mailbox`` (as the MX does, origin "mx") and wait until the
        node's delivery worker stored it in INBOX (local delivery); its UID."""
        before = set(self.uids(mailbox))

        async def run() -> int:
            await self.services.spool.enqueue(sender=sender, recipients=[NewRecipient(mailbox)],
                                              data=data, origin="mx")
            async with asyncio.timeout(WAIT):
                while True:
                    try:
                        now = {m.uid for m in await self.store.messages(mailbox, "INBOX")}
                    except NoSuchFolder:
                        now = set()
                    if new := now - before:
                        return max(new)
                    await asyncio.sleep(0.05)  # store state: nothing to wait on
        return self.call(run())

    # the quarantine (the MX's hold) and the filter's learning

    def hold(self, data: bytes, *, sender: str = SPAMMER, recipient: str = ANN) -> QuarantineView:
        """Send ``data`` over SMTP to the node's MX; wait until the filter held it for
        ``recipient``; the new quarantine entry."""
        known = {entry.id for entry in self.held(recipient)}
        with smtplib.SMTP("127.0.0.1", self.mx_port, timeout=WAIT) as client:
            client.sendmail(sender, [recipient], data)

        async def run() -> QuarantineView:
            async with asyncio.timeout(WAIT):
                while True:
                    page = await self.services.quarantine.list(OP, address=recipient)
                    new = [entry for entry in page.items if entry.id not in known]
                    if new:
                        return new[0]
                    await asyncio.sleep(0.05)  # database state: nothing to wait on
        return self.call(run())

    def held(self, recipient: str) -> list[QuarantineView]:
        """The entries held for ``recipient`` (status held)."""
        async def run() -> list[QuarantineView]:
            return list((await self.services.quarantine.list(OP, address=recipient)).items)
        return self.call(run())

    def learnt_points(self, mailbox: str, data: bytes) -> float:
        """The points the corrections of ``mailbox``'s domain add to ``data``'s content
        score (0 while the domain has no model of its own). A fresh learner each time: no
        cached model of an earlier call."""
        async def run() -> float:
            db = Database(self.settings.db_url)
            try:
                async with db.session() as session:
                    domain = mailbox.rsplit("@", 1)[1]
                    domain_id = (await domain_keys(session, [domain]))[domain][0]
                found = await DomainLearning(db).findings({domain_id: domain}, data)
                return found[domain_id].score if domain_id in found else 0.0
            finally:
                await db.dispose()
        return self.call(run())

    def queued(self) -> int:
        """Rows in the delivery queue (all states)."""
        async def run() -> int:
            return len((await self.services.queue.list(OP)).items)
        return self.call(run())


async def seed(settings: Settings) -> None:
    """Acme with ann and bob (hosting, Filter list, ann quarantined from 6 points); Globex
    with carol."""
    db = Database(settings.db_url)
    services = Services(db, settings)
    try:
        for account, domain, users in (("Acme", DOMAIN, [ANN, BOB]),
                                       ("Globex", OTHER_DOMAIN, [CAROL])):
            await services.accounts.create(OP, account)
            await services.domains.create(OP, domain, account=account, hosting=True)
            await services.servers.auto_configure_hosting(OP, domain)
            result = await services.bulk.add_lines(
                OP, [f"{user}|{PASSWORD}" for user in users], AddressList.FILTER)
            assert result.counts.get("added") == len(users), result.counts
        await services.filter.set_policy(OP, {"quarantine_score": 6, "reject_score": 50},
                                         address=ANN)
    finally:
        await db.dispose()


@contextlib.contextmanager
def running_node(settings: Settings, roles: frozenset[str] = ROLES) -> Iterator[Node]:
    """Run ``roles`` of ``settings`` in a thread with its own loop (the browser conftest's
    ``roles_in_thread``); yield the :class:`Node`. A node that fails to start, dies during
    the test or does not stop in time fails the test."""
    with roles_in_thread(settings, roles, "node") as (loop, urls):
        node = Node(settings, urls, loop)
        try:
            yield node
        finally:
            node.close()


def node_settings(settings: Settings, nameserver: str, **overrides: Any) -> Settings:
    """``settings`` for a loopback node: the spam filter on with DNS from ``nameserver``,
    mail for other domains to a closed loopback port (nothing leaves), the PostgreSQL store
    on PostgreSQL. Overrides naming a setting that does not exist (yet) are left out."""
    known = {k: v for k, v in overrides.items() if k in Settings.model_fields}
    return mail_settings(settings, spam_filter=True, dns_nameservers=[nameserver],
                         dns_timeout_seconds=1, relay_host="127.0.0.1:9", **known)


@pytest.fixture(name="node_overrides")
def node_overrides_fixture() -> dict[str, Any]:
    """Settings of the node; parametrise this fixture to change them."""
    return {"webmail_undo_seconds": 0}


@pytest.fixture(name="mail_node")
def mail_node_fixture(settings: Settings, node_overrides: dict[str, Any]) -> Iterator[Node]:
    """The seeded node (see the module docstring), on the test's backend."""
    asyncio.run(seed(settings))
    with dns_server(ZONE) as nameserver, \
            running_node(node_settings(settings, nameserver, **node_overrides)) as node:
        yield node


@pytest.fixture(name="web_server")
def web_server_fixture(mail_node: Node) -> str:
    """The node's web role: the browser conftest's ``page`` opens pages here."""
    return mail_node.url


# -- logging in ----------------------------------------------------------------------------


def log_in(page: Page, address: str = ANN, password: str = PASSWORD) -> None:
    """Log in at /mail with the login form; ends on the inbox."""
    page.goto("/mail")
    page.locator('[data-test="login-address"]').fill(address)
    page.locator('[data-test="login-password"]').fill(password)
    page.locator('[data-test="login-submit"]').click()
    expect(page.locator('[data-test="folder-inbox"]')).to_be_visible()


class _Form(html.parser.HTMLParser):
    """The action and fields (name → value, data-test → name) of the first form
    ``data-test=form_test`` of a page."""

    def __init__(self, form_test: str) -> None:
        super().__init__()
        self.form_test, self.inside, self.done = form_test, False, False
        self.action = ""
        self.values: dict[str, str] = {}
        self.by_test: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and not self.done and a.get("data-test") == self.form_test:
            self.inside, self.action = True, a.get("action", "")
        elif self.inside and tag in ("input", "button", "textarea") and a.get("name"):
            self.values.setdefault(a["name"], a.get("value", ""))
            if a.get("data-test"):
                self.by_test[a["data-test"]] = a["name"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self.inside:
            self.inside, self.done = False, True


def form_fields(page_html: str, form_test: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """A form's action, its fields' values and its ``data-test`` → field name map."""
    form = _Form(form_test)
    form.feed(page_html)
    assert form.done, f"no form data-test={form_test!r} on the page"
    return form.action, form.values, form.by_test


def http_login(base_url: str, address: str = ANN, password: str = PASSWORD) -> httpx.Client:
    """An httpx client with a logged-in /mail session (filled in as the login form)."""
    client = httpx.Client(base_url=base_url, timeout=WAIT, follow_redirects=True)
    login = client.get("/mail")
    action, values, names = form_fields(login.text, "login-form")
    values[names["login-address"]] = address
    values[names["login-password"]] = password
    response = client.post(action or str(login.url), data=values)
    assert response.status_code == 200 and "/mail/login" not in str(response.url), (
        response.status_code, str(response.url), response.text[:500])
    return client


def csrf_token(page_html: str) -> str:
    """The CSRF token a page's forms carry (Litestar's ``_csrf_token`` field)."""
    marker = 'name="_csrf_token" value="'
    assert marker in page_html, "no CSRF token on the page"
    return page_html.split(marker, 1)[1].split('"', 1)[0]


def wait_until(check: Callable[[], Awaitable[T]], node: Node, seconds: float = WAIT) -> T:
    """Poll the async ``check`` in the node's loop until it returns something truthy."""
    async def run() -> T:
        async with asyncio.timeout(seconds):
            while not (result := await check()):  # noqa: ASYNC110 - DB/disk state, no event
                await asyncio.sleep(0.05)
        return result
    return node.call(run(), seconds + 5)


def file_of(tmp: Path, name: str, data: bytes) -> Path:
    """``data`` written to ``tmp/name`` (for an upload through a file input)."""
    path = tmp / name
    path.write_bytes(data)
    return path


# two contacts as a vCard 3.0 file (the import steps of the browser tests)
VCARDS = """BEGIN:VCARD\r
VERSION:3.0\r
FN:Dora Explorer\r
N:Explorer;Dora;;;\r
EMAIL;TYPE=INTERNET:dora@maps.example\r
END:VCARD\r
BEGIN:VCARD\r
VERSION:3.0\r
FN:Eve Listener\r
N:Listener;Eve;;;\r
EMAIL;TYPE=INTERNET:eve@wire.example\r
TEL;TYPE=CELL:+1 555 0100\r
END:VCARD\r
"""
