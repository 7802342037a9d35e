"""The webmail pages that change things, over a real ``web`` role and httpx (both
backends): message actions and their effect on the store, emptying Trash, the user's
quarantine, contacts, settings, compose errors keeping the form, undo send (in time, and
too late once a delivery worker took the mail), CSRF refusal, and another mailbox's ids
answering 404."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pyotp
import pytest
from api_server import running_server
from mail_helpers import mail_settings
from sqlalchemy import select

from mailward.app import Services
from mailward.config import Settings
from mailward.db import AddressList
from mailward.db.models import WebmailOutbox
from mailward.directory import Actor
from mailward.filter import Finding
from mailward.quarantine.service import Hold, Quarantine
from mailward.queue.local import LocalDelivery
from mailward.queue.worker import DeliveryWorker
from mailward.store import DRAFT, FLAGGED, SEEN, MailStore, NoSuchFolder, open_store
from mailward.webmail.contacts import Contacts
from mailward.webmail.identities import Identities
from mailward.webmail.prefs import MailPrefs, Prefs

OP = Actor.operator()
PASSWORD = "Mailbox-pass-77"
ANN, BOB, CAROL = "ann@acme.example", "bob@acme.example", "carol@globex.example"
SPAMMER = "deals@shop.example"
_TOKEN = re.compile(r'name="_csrf_token" value="([^"]+)"')


def mail(subject: str, sender: str = "friend@outside.example", to: str = ANN) -> bytes:
    return (f"From: Friend <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Date: Mon, 07 Dec 2026 09:00:00 +0000\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@outside.example>\r\n\r\n"
            f"Hello about {subject}.\r\n").encode()


def flashes(text: str) -> list[str]:
    found = re.findall(r'<div class="flash [a-z]+" role="(?:status|alert)">(.*?)(?:<form.*?</form>'
                       r'\s*(?:<script[^>]*></script>\s*)?)?</div>', text, re.S)
    return [re.sub(r"<[^>]+>", "", html.unescape(m)).strip() for m in found]


def field(text: str, name: str) -> str:
    """The value of the first input ``name`` of a page."""
    found = re.search(rf'<input[^>]*name="{re.escape(name)}"[^>]*value="([^"]*)"', text)
    assert found, f"no input {name!r}"
    return html.unescape(found.group(1))


def textarea(text: str, name: str) -> str:
    found = re.search(rf'<textarea[^>]*name="{re.escape(name)}"[^>]*>(.*?)</textarea>', text,
                      re.S)
    assert found, f"no textarea {name!r}"
    return html.unescape(found.group(1))


@dataclass
class Client:
    """A browser-like client of /mail: cookies, the CSRF token of the last page."""

    http: httpx.AsyncClient
    token: str = ""

    def _remember(self, text: str) -> None:
        found = _TOKEN.search(text)
        if found:
            self.token = html.unescape(found.group(1))

    async def get(self, path: str, status: int = 200, **params: str) -> str:
        response = await self.http.get(path, params=params)
        assert response.status_code == status, (path, response.status_code,
                                                response.text[:600])
        self._remember(response.text)
        return response.text

    async def post(self, path: str, data: Mapping[str, str | list[str]] | None = None,
                   status: int = 200, files: dict[str, tuple[str, bytes, str]] | None = None,
                   csrf: bool = True) -> httpx.Response:
        fields = {"_csrf_token": self.token} if csrf else {}
        response = await self.http.post(path, data={**fields, **(data or {})}, files=files,
                                        follow_redirects=True)
        assert response.status_code == status, (path, response.status_code,
                                                response.text[:800])
        self._remember(response.text)
        return response

    async def login(self, address: str) -> None:
        await self.get("/mail/login")
        page = await self.post("/mail/login", {"address": address, "password": PASSWORD,
                                               "next": "/mail/box?f=INBOX"})
        assert str(page.url).endswith("/mail/box?f=INBOX"), page.url


@dataclass
class Env:
    url: str
    services: Services
    store: MailStore
    settings: Settings
    ann: Client
    bob: Client

    async def put(self, mailbox: str, data: bytes, folder: str = "INBOX") -> int:
        try:
            return (await self.store.deliver(mailbox, data, folder=folder)).uid
        except NoSuchFolder:
            await self.store.create_folder(mailbox, folder)
            return (await self.store.deliver(mailbox, data, folder=folder)).uid

    async def subjects(self, mailbox: str, folder: str) -> list[str]:
        try:
            infos = await self.store.messages(mailbox, folder)
        except NoSuchFolder:
            return []
        found = []
        for info in infos:
            data = await self.store.fetch(mailbox, folder, info.uid)
            subject = re.search(rb"^Subject: (.*?)\r?$", data, re.M)
            found.append(subject.group(1).decode() if subject else "")
        return sorted(found)

    async def flags(self, mailbox: str, folder: str, uid: int) -> frozenset[str]:
        [info] = [m for m in await self.store.messages(mailbox, folder) if m.uid == uid]
        return info.flags


@pytest.fixture
async def env(settings: Settings, directory: Services) -> AsyncIterator[Env]:
    configured = mail_settings(settings, queue_poll_seconds=600)
    for account, domain, users in (("Acme", "acme.example", [ANN, BOB]),
                                   ("Globex", "globex.example", [CAROL])):
        await directory.accounts.create(OP, account)
        await directory.domains.create(OP, domain, account=account, hosting=True)
        await directory.servers.auto_configure_hosting(OP, domain)
        await directory.bulk.add_lines(OP, [f"{u}|{PASSWORD}" for u in users],
                                       AddressList.FILTER)
    services = Services(directory.db, configured)
    store = open_store(configured, services.db)
    async with running_server(configured) as url, \
            httpx.AsyncClient(base_url=url, timeout=30) as one, \
            httpx.AsyncClient(base_url=url, timeout=30) as two:
        ann, bob = Client(one), Client(two)
        await ann.login(ANN)
        await bob.login(BOB)
        yield Env(url, services, store, configured, ann, bob)


async def test_message_actions_change_the_store(env: Env) -> None:
    one, two = await env.put(ANN, mail("One")), await env.put(ANN, mail("Two"))
    three = await env.put(ANN, mail("Three"))
    await env.ann.get("/mail/box", f="INBOX")
    page = await env.ann.post("/mail/actions", {"f": "INBOX", "action": "read",
                                                "uid": [str(one), str(two)]})
    assert flashes(page.text) == ["Marked 2 messages as read."]
    assert str(page.url).endswith("/mail/box?f=INBOX")
    assert SEEN in await env.flags(ANN, "INBOX", one)
    assert SEEN in await env.flags(ANN, "INBOX", two)
    assert SEEN not in await env.flags(ANN, "INBOX", three)
    await env.ann.post("/mail/actions", {"f": "INBOX", "action": "unread", "uid": str(two)})
    assert SEEN not in await env.flags(ANN, "INBOX", two)
    page = await env.ann.post("/mail/actions", {"f": "INBOX", "action": "flag",
                                                "uid": str(three), "back": "/mail/outbox"})
    assert str(page.url).endswith("/mail/outbox")  # a same-site back target is followed
    assert FLAGGED in await env.flags(ANN, "INBOX", three)
    page = await env.ann.post("/mail/actions", {"f": "INBOX", "action": "unflag",
                                                "uid": str(three),
                                                "back": "https://evil.example/x"})
    assert str(page.url).startswith(env.url)  # another site's is not
    assert FLAGGED not in await env.flags(ANN, "INBOX", three)

    await env.store.create_folder(ANN, "Archive")
    page = await env.ann.post("/mail/actions", {"f": "INBOX", "action": "move",
                                                "uid": str(one), "target": "Archive"})
    assert flashes(page.text) == ["Moved 1 message to Archive."]
    assert await env.subjects(ANN, "Archive") == ["One"]
    page = await env.ann.post("/mail/actions", {"f": "INBOX", "action": "delete",
                                                "uid": str(two)})
    assert flashes(page.text) == ["Moved 1 message to Trash."]
    assert await env.subjects(ANN, "INBOX") == ["Three"]
    assert await env.subjects(ANN, "Trash") == ["Two"]
    [trashed] = [m.uid for m in await env.store.messages(ANN, "Trash")]
    page = await env.ann.post("/mail/actions", {"f": "Trash", "action": "delete",
                                                "uid": str(trashed)})
    assert flashes(page.text) == ["Deleted 1 message for good."]
    assert await env.subjects(ANN, "Trash") == []

    page = await env.ann.post("/mail/actions", {"f": "INBOX", "action": "spam",
                                                "uid": str(three)})
    assert flashes(page.text) == ["Reported 1 message as spam: moved to Junk."]
    assert await env.subjects(ANN, "Junk") == ["Three"]
    [junk] = [m.uid for m in await env.store.messages(ANN, "Junk")]
    page = await env.ann.post("/mail/actions", {"f": "Junk", "action": "notspam",
                                                "uid": str(junk)})
    assert flashes(page.text) == ["Reported 1 message as not spam: moved to INBOX."]
    assert await env.subjects(ANN, "INBOX") == ["Three"]


async def test_sender_rules_take_the_sender_from_the_stored_message(env: Env) -> None:
    uid = await env.put(ANN, mail("Offer", sender=SPAMMER))
    await env.ann.get("/mail/box", f="INBOX")
    page = await env.ann.post("/mail/actions", {"f": "INBOX", "action": "block-sender",
                                                "uid": str(uid), "sender": "boss@acme.example"})
    assert flashes(page.text) == [f"Mail from {SPAMMER} is blocked from now on."]
    actor = await env.services.mailbox_self.actor(ANN, "test")
    rules = await env.services.filter.list_senders(actor, address=ANN)
    assert [(r.sender, r.action) for r in rules] == [(SPAMMER, "block")]
    await env.ann.post("/mail/actions", {"f": "INBOX", "action": "allow-sender",
                                         "uid": str(uid)})
    rules = await env.services.filter.list_senders(actor, address=ANN)
    assert [(r.sender, r.action) for r in rules] == [(SPAMMER, "allow")]


async def test_emptying_trash_asks_first(env: Env) -> None:
    await env.put(ANN, mail("Old"), "Trash")
    await env.put(ANN, mail("Older"), "Trash")
    await env.ann.get("/mail/box", f="Trash")
    ask = await env.ann.post("/mail/folders/empty", {"f": "Trash"})
    assert "2 messages in Trash will be deleted for good" in ask.text
    assert await env.subjects(ANN, "Trash") == ["Old", "Older"]
    done = await env.ann.post("/mail/folders/empty", {"f": "Trash", "confirm": "yes"})
    assert flashes(done.text) == ["Emptied Trash: 2 messages deleted for good."]
    assert await env.subjects(ANN, "Trash") == []
    await env.ann.post("/mail/folders/empty", {"f": "INBOX", "confirm": "yes"}, status=400)


async def test_another_mailbox_ids_are_not_found(env: Env) -> None:
    mine = await env.put(ANN, mail("Ann's"))
    await env.put(BOB, mail("Bob's", to=BOB))
    await env.bob.get("/mail/box", f="INBOX")
    # bob has no message with ann's uid + 1 in his inbox: 404, nothing changes anywhere
    await env.bob.post("/mail/actions", {"f": "INBOX", "action": "delete",
                                         "uid": str(mine + 1)}, status=404)
    await env.bob.post("/mail/actions", {"f": "Secret", "action": "read", "uid": "1"},
                       status=404)
    assert await env.subjects(ANN, "INBOX") == ["Ann's"]
    assert await env.subjects(BOB, "INBOX") == ["Bob's"]

    await Quarantine(env.services.db, env.settings).hold(
        sender=SPAMMER, peer="192.0.2.7", data=mail("Held", sender=SPAMMER), score=11.0,
        findings=(Finding("content", 11.0, "spammy"),), holds=[Hold(ANN, "score 11")])
    [held] = (await env.services.quarantine.list(OP, address=ANN)).items
    await env.bob.get(f"/mail/quarantine/{held.id}", status=404)
    for action in ("release", "release-allow", "delete"):
        await env.bob.post(f"/mail/quarantine/{held.id}/{action}", status=404)
    assert (await env.services.quarantine.list(OP, address=ANN)).total == 1

    await env.ann.get("/mail/contacts")
    await env.ann.post("/mail/contacts/new", {"name": "Zed", "emails": "zed@x.example"})
    zed = await _contact_id(env, ANN, "Zed")
    await env.bob.get(f"/mail/contacts/{zed}", status=404)
    await env.bob.post(f"/mail/contacts/{zed}/delete", status=404)
    await env.bob.post(f"/mail/contacts/{zed}", {"name": "Mine now"}, status=404)
    assert await _contact_id(env, ANN, "Zed") == zed

    await env.ann.get("/mail/compose")
    await env.ann.post("/mail/compose", {"submit": "send", "to": BOB, "subject": "Held",
                                         "body": "x"})
    [queue_id] = await _queue_ids(env, ANN)
    await env.bob.get("/mail/outbox")
    await env.bob.post("/mail/outbox/undo", {"queue_id": queue_id}, status=404)
    assert await _queue_ids(env, ANN) == [queue_id]


async def _contact_id(env: Env, mailbox: str, name: str) -> int:
    [found] = [c for c in await Contacts(env.services.db).list(mailbox) if c.name == name]
    return found.id


async def _queue_ids(env: Env, mailbox: str) -> list[str]:
    async with env.services.db.session() as session:
        return list(await session.scalars(
            select(WebmailOutbox.queue_id).where(WebmailOutbox.mailbox == mailbox)))


async def test_posts_without_the_csrf_token_are_refused(env: Env) -> None:
    uid = await env.put(ANN, mail("Keep"))
    await env.ann.get("/mail/box", f="INBOX")
    for path, data in (("/mail/actions", {"f": "INBOX", "action": "delete", "uid": str(uid)}),
                       ("/mail/folders/empty", {"f": "Trash", "confirm": "yes"}),
                       ("/mail/compose", {"submit": "send", "to": BOB, "body": "x"}),
                       ("/mail/contacts/new", {"name": "Eve", "emails": "eve@x.example"}),
                       ("/mail/settings/prefs", {"per_page": "20"})):
        await env.ann.post(path, data, status=403, csrf=False)
    assert await env.subjects(ANN, "INBOX") == ["Keep"]
    assert await _queue_ids(env, ANN) == []
    assert (await env.services.filter.list_senders(
        await env.services.mailbox_self.actor(ANN, "t"), address=ANN)) == []


async def test_compose_errors_keep_the_form_and_its_files(env: Env) -> None:
    await env.ann.get("/mail/compose", mode="new")
    page = await env.ann.post(
        "/mail/compose", {"submit": "send", "to": "", "subject": "Quarterly plan",
                          "body": "Dear Bob,\nsee it."},
        files={"files": ("plan.txt", b"the plan", "text/plain")}, status=400)
    assert "add at least one recipient" in page.text
    assert field(page.text, "subject") == "Quarterly plan"
    assert textarea(page.text, "body") == "Dear Bob,\nsee it."
    assert 'data-test="attachment-item">plan.txt' in page.text  # kept in a draft
    draft = int(field(page.text, "draft_uid"))
    assert await env.subjects(ANN, "Drafts") == ["Quarterly plan"]

    page = await env.ann.post(
        "/mail/compose", {"submit": "send", "to": "not an address, bob@acme.example",
                          "subject": "Quarterly plan", "body": "Dear Bob,\nsee it.",
                          "draft_uid": str(draft)}, status=400)
    assert "not an email address" in page.text
    assert field(page.text, "to") == "not an address, bob@acme.example"
    assert textarea(page.text, "body") == "Dear Bob,\nsee it."
    assert 'data-test="attachment-item">plan.txt' in page.text
    draft = int(field(page.text, "draft_uid"))  # saved again, as typed
    assert await env.subjects(ANN, "Drafts") == ["Quarterly plan"]
    [kept] = await env.store.messages(ANN, "Drafts")
    assert kept.uid == draft
    assert await _queue_ids(env, ANN) == []

    fixed = await env.ann.post("/mail/compose", {
        "submit": "send", "to": BOB, "subject": "Quarterly plan", "body": "Dear Bob",
        "draft_uid": str(draft)})
    assert flashes(fixed.text)[0].startswith("Sent.")
    assert await env.subjects(ANN, "Drafts") == []
    [sent] = await env.store.messages(ANN, "Sent")
    assert b'filename="plan.txt"' in await env.store.fetch(ANN, "Sent", sent.uid)


async def test_undo_in_time_restores_the_draft_and_too_late_says_so(env: Env) -> None:
    await env.ann.get("/mail/compose")
    page = await env.ann.post("/mail/compose", {
        "submit": "send", "to": BOB, "subject": "Oops", "body": "Not yet"})
    assert flashes(page.text)[0].startswith("Sent.")
    assert await env.subjects(ANN, "Sent") == ["Oops"]
    outbox = await env.ann.get("/mail/outbox")
    assert outbox.count('data-test="outbox-row"') == 1
    queue_id = field(outbox, "queue_id")
    undone = await env.ann.post("/mail/outbox/undo", {"queue_id": queue_id})
    assert flashes(undone.text) == ["Sending cancelled: the message is back in Drafts."]
    assert "/mail/compose?mode=draft" in str(undone.url)
    assert field(undone.text, "subject") == "Oops" and field(undone.text, "to") == BOB
    assert await env.subjects(ANN, "Drafts") == ["Oops"]
    [draft] = await env.store.messages(ANN, "Drafts")
    assert DRAFT in draft.flags
    assert await env.subjects(ANN, "Sent") == []
    assert await _queue_ids(env, ANN) == []

    # undo off: a delivery worker takes the mail at once; undo is then too late
    await env.ann.get("/mail/settings")
    await env.ann.post("/mail/settings/prefs", {"per_page": "50", "undo_seconds": "0",
                                                "show_images": "ask", "theme": "auto"})
    await env.ann.get(f"/mail/compose?mode=draft&f=Drafts&uid={draft.uid}")
    sent = await env.ann.post("/mail/compose", {
        "submit": "send", "to": BOB, "subject": "Oops", "body": "Now",
        "draft_uid": str(draft.uid)})
    assert flashes(sent.text)[0].startswith("Sent.")
    [queue_id] = await _queue_ids(env, ANN)
    worker = DeliveryWorker(env.services.db, env.settings, env.services.spool,
                            LocalDelivery(env.services.db, env.store, env.services.spool))
    assert await worker.run_once() == 1
    assert await env.subjects(BOB, "INBOX") == ["Oops"]
    late = await env.ann.post("/mail/outbox/undo", {"queue_id": queue_id})
    assert flashes(late.text) == ["Too late: the message has already been sent."]
    assert await env.subjects(ANN, "Drafts") == []


async def test_quarantine_shows_why_and_releases_or_deletes(env: Env) -> None:
    hold = Quarantine(env.services.db, env.settings)
    for subject in ("Cheap watches", "Lottery win"):
        await hold.hold(sender=SPAMMER, peer="192.0.2.7", data=mail(subject, sender=SPAMMER),
                        score=11.0, findings=(Finding("content", 11.0, "content model"),),
                        holds=[Hold(ANN, "score 11 ≥ 10")])
    listing = await env.ann.get("/mail/quarantine")
    assert listing.count('data-test="quarantine-row"') == 2
    ids = {e.subject: e.id for e in (await env.services.quarantine.list(OP)).items}
    entry = await env.ann.get(f"/mail/quarantine/{ids['Cheap watches']}")
    why = entry.split('data-test="quarantine-why"')[1].split("</section>")[0]
    assert "11.0" in why and "content model" in why
    assert "Hello about Cheap watches." in entry  # the plain-text preview
    await env.bob.get(f"/mail/quarantine/{ids['Cheap watches']}", status=404)

    released = await env.ann.post(f"/mail/quarantine/{ids['Cheap watches']}/release-allow")
    assert flashes(released.text)[0].startswith("Released 'Cheap watches'")
    actor = await env.services.mailbox_self.actor(ANN, "test")
    rules = await env.services.filter.list_senders(actor, address=ANN)
    assert [(r.sender, r.action) for r in rules] == [(SPAMMER, "allow")]
    deleted = await env.ann.post(f"/mail/quarantine/{ids['Lottery win']}/delete")
    assert flashes(deleted.text) == ["Deleted the held message 'Lottery win'."]
    assert (await env.services.quarantine.list(OP, address=ANN)).total == 0
    assert "Nothing held." in await env.ann.get("/mail/quarantine")


async def test_contacts_pages(env: Env) -> None:
    await env.ann.get("/mail/contacts")
    bad = await env.ann.post("/mail/contacts/new", {"name": "Bad", "emails": "nope"},
                             status=400)
    assert field(bad.text, "name") == "Bad"  # the form again, as typed
    await env.ann.post("/mail/contacts/new", {"name": "Dora Dent",
                                              "emails": "dora@x.example\ndd@y.example"})
    team = await env.ann.post("/mail/contacts/groups/new", {"name": "Team"})
    assert flashes(team.text) == ["Group Team created."]
    dora = await _contact_id(env, ANN, "Dora Dent")
    [group] = await _groups(env, ANN)
    await env.ann.post("/mail/contacts/groups/members", {"group": str(group),
                                                         "contact": [str(dora)], "op": "add"})
    page = await env.ann.get("/mail/contacts", group=str(group))
    assert page.count('data-test="contact-row"') == 1 and "Dora Dent" in page
    await env.ann.post(f"/mail/contacts/groups/{group}/rename", {"name": "Crew"})
    suggest = await env.ann.http.get("/mail/contacts/suggest", params={"q": "do"})
    assert suggest.json()[0] == {"name": "Dora Dent", "email": "dora@x.example",
                                 "label": "Dora Dent <dora@x.example>"}
    crew = await env.ann.http.get("/mail/contacts/suggest", params={"q": "cre"})
    assert [s["label"] for s in crew.json()] == ["Dora Dent <dora@x.example>"]
    assert (await env.bob.http.get("/mail/contacts/suggest", params={"q": "do"})).json() == []

    export = await env.ann.http.get("/mail/contacts/export", params={"format": "vcard4"})
    assert export.status_code == 200
    assert export.headers["content-disposition"].startswith("attachment;")
    assert "VERSION:4.0" in export.text and "dora@x.example" in export.text
    csv = await env.ann.http.get("/mail/contacts/export", params={"format": "csv"})
    assert csv.headers["content-disposition"].startswith("attachment;")

    imported = await env.bob.post("/mail/contacts/import", files={
        "file": ("contacts.vcf", export.content, "text/vcard")})
    assert "Imported: 1 added, 0 updated, 0 skipped." in imported.text
    assert await _contact_id(env, BOB, "Dora Dent") != dora
    refused = await env.bob.post("/mail/contacts/import", files={
        "file": ("photo.png", b"\x89PNG\x00\x01binary", "image/png")}, status=400)
    assert 'data-test="contacts-import-error"' in refused.text
    await env.ann.post(f"/mail/contacts/{dora}/delete")
    assert "Dora Dent" not in await env.ann.get("/mail/contacts")


async def _groups(env: Env, mailbox: str) -> list[int]:
    return [g.id for g in await Contacts(env.services.db).groups(mailbox)]


async def test_settings_pages(env: Env) -> None:
    page = await env.ann.get("/mail/settings")
    assert 'data-test="twofactor-enable"' in page and 'src="data:image/svg+xml' in page
    saved = await env.ann.post("/mail/settings/prefs", {
        "per_page": "20", "threads": "1", "compose_html": "1", "show_images": "never",
        "undo_seconds": "5", "theme": "dark"})
    assert flashes(saved.text) == ["Settings saved."]
    prefs = await _prefs(env, ANN)
    assert (prefs.per_page, prefs.threads, prefs.compose_html, prefs.show_images,
            prefs.undo_seconds, prefs.theme, prefs.mark_read_on_open) == (
        20, True, True, "never", 5, "dark", False)
    bad = await env.ann.post("/mail/settings/prefs", {"per_page": "5000"}, status=400)
    assert 'data-test="settings-error"' in bad.text
    compose = await env.ann.get("/mail/compose")
    assert 'data-test="compose-html-editor"' in compose

    added = await env.ann.post("/mail/settings/identities", {"address": ANN, "name": "Ann A."})
    assert added.text.count('data-test="identity-row"') == 1
    other = await env.ann.post("/mail/settings/identities", {"address": BOB, "name": "Not me"},
                               status=400)
    assert "may not send as" in other.text
    [identity] = await _identities(env, ANN)
    await env.bob.post(f"/mail/settings/identities/{identity}/delete", status=404)
    await env.ann.post(f"/mail/settings/identities/{identity}/delete")
    assert await _identities(env, ANN) == []

    secret = re.search(r'data-test="twofactor-secret">([A-Z2-7]+)<', page)
    assert secret
    refused = await env.ann.post("/mail/settings/two-factor", {"action": "on",
                                                                "code": "000000"}, status=400)
    assert 'data-test="settings-error"' in refused.text
    assert f'data-test="twofactor-secret">{secret.group(1)}<' in refused.text  # same key
    on = await env.ann.post("/mail/settings/two-factor", {
        "action": "on", "code": pyotp.TOTP(secret.group(1)).now()})
    assert 'data-test="twofactor-on"' in on.text
    assert await env.services.mailbox_two_factor.enabled(ANN)
    assert not await env.services.mailbox_two_factor.enabled(BOB)

    wrong = await env.ann.post("/mail/settings/password", {
        "current": "wrong", "password": "New-pass-99x", "repeat": "New-pass-99x"},
        status=400)
    assert 'data-test="settings-error"' in wrong.text
    await env.ann.post("/mail/settings/password", {
        "current": PASSWORD, "password": "New-pass-99x", "repeat": "New-pass-99x"})
    await env.ann.get("/mail/settings")  # this session goes on


async def _prefs(env: Env, mailbox: str) -> MailPrefs:
    return await Prefs(env.services.db).get(mailbox)


async def _identities(env: Env, mailbox: str) -> list[int | None]:
    return [i.id for i in await Identities(env.services).list(mailbox)]


async def test_send_later_waits_in_the_outbox_until_cancelled(env: Env) -> None:
    await env.ann.get("/mail/compose")
    missing = await env.ann.post("/mail/compose", {
        "submit": "later", "to": BOB, "subject": "Birthday", "body": "Happy birthday!"},
        status=400)
    assert "choose when to send it" in missing.text
    assert field(missing.text, "subject") == "Birthday"
    when = (datetime.now(UTC) + timedelta(days=2)).replace(second=0, microsecond=0)
    local = when + timedelta(minutes=120)  # the browser is two hours east of UTC
    page = await env.ann.post("/mail/compose", {
        "submit": "later", "to": BOB, "subject": "Birthday", "body": "Happy birthday!",
        "send_at": local.strftime("%Y-%m-%dT%H:%M"), "tz": "120",
        "draft_uid": field(missing.text, "draft_uid")})
    assert str(page.url).endswith("/mail/outbox")
    assert flashes(page.text) == [f"Scheduled: it goes out at {when:%Y-%m-%d %H:%M} UTC. "
                                  "Cancel it in the Outbox before then."]
    assert page.text.count('data-test="outbox-row"') == 1 and "send later" in page.text
    assert await env.subjects(ANN, "Drafts") == []
    cancelled = await env.ann.post("/mail/outbox/undo", {"queue_id": field(page.text,
                                                                            "queue_id")})
    assert flashes(cancelled.text) == ["Sending cancelled: the message is back in Drafts."]
    assert await env.subjects(ANN, "Drafts") == ["Birthday"]
    assert 'data-test="outbox-row"' not in await env.ann.get("/mail/outbox")
