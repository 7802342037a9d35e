"""Webmail search (``MailSearch``) over the real delivery path and the real mail store:
SQLite + Maildir and PostgreSQL + the PostgreSQL store.

Mail comes in through the queue and ``LocalDelivery`` (indexed at delivery) or straight
through the store as IMAP APPEND/COPY/MOVE would (indexed when a search catches up).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select, text

from mailward.app import Services
from mailward.config import Settings
from mailward.db import AddressList
from mailward.db.models import MailSearchDoc, MailSearchFolder
from mailward.directory import Actor
from mailward.queue.local import LocalDelivery
from mailward.queue.spool import NewRecipient
from mailward.queue.worker import DeliveryWorker
from mailward.store import DELETED, MailboxEvents, MailStore, NotifyingStore, open_store
from mailward.store.search_index import MAX_GROUP, SearchIndex
from mailward.webmail.search import MailSearch

OP = Actor.operator()
ANN = "ann@hosted.example"
BOB = "bob@hosted.example"
SENDER = "zoe@outside.example"

INVOICE = (
    b"From: Zoe Quartermaine <zoe@outside.example>\r\n"
    b"To: Ann <ann@hosted.example>\r\n"
    b"Subject: =?utf-8?q?Quarterly_invoice_4711?=\r\n"
    b"Message-ID: <invoice-4711@outside.example>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Please settle the =C3=9Cberweisung by Friday.\r\n"
)


def mail(subject: str, body: str, *, sender: str = SENDER, to: str = ANN) -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{abs(hash((subject, body, to)))}@outside.example>\r\n\r\n"
            f"{body}\r\n").encode()


@dataclass
class Env:
    services: Services
    store: MailStore
    worker: DeliveryWorker
    search: MailSearch

    async def deliver(self, data: bytes, to: str = ANN) -> int:
        """Deliver ``data`` to ``to`` through the queue; its UID in INBOX."""
        await self.services.spool.enqueue(sender=SENDER, recipients=[NewRecipient(to)],
                                          data=data, origin="mx")
        assert await self.worker.run_once() == 1
        return (await self.store.messages(to, "INBOX"))[-1].uid

    async def indexed(self, mailbox: str) -> int:
        async with self.services.db.session() as session:
            return int(await session.scalar(
                select(func.count()).select_from(MailSearchDoc)
                .where(MailSearchDoc.mailbox == mailbox)) or 0)


@pytest.fixture
async def env(settings: Settings, directory: Services) -> AsyncIterator[Env]:
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "hosted.example", account="Acme", hosting=True)
    await directory.servers.auto_configure_hosting(OP, "hosted.example")
    await directory.bulk.add_lines(OP, [f"{ANN}|Mailbox-pass-77", f"{BOB}|Mailbox-pass-77"],
                                   AddressList.NO_FILTER)
    configured = settings.model_copy(update={
        "store_backend": "postgresql" if settings.db_url.startswith("postgresql") else "maildir"})
    services = Services(directory.db, configured)
    store = open_store(configured, services.db)
    local = LocalDelivery(services.db, store, services.spool)
    yield Env(services, store, DeliveryWorker(services.db, configured, services.spool, local),
              MailSearch(services.db, store))


async def test_delivered_mail_is_indexed_at_delivery_and_found(env: Env) -> None:
    uid = await env.deliver(INVOICE)
    assert await env.indexed(ANN) == 1  # before any search looked at INBOX
    hit = [("INBOX", uid)]
    assert await env.search.search(ANN, "invo") == hit  # a word's start finds it
    assert await env.search.search(ANN, "Quartermaine 4711") == hit
    assert await env.search.search(ANN, "uberweisung") == hit  # accents ignored
    assert await env.search.search(ANN, "ÜBERWEISUNG friday") == hit
    assert await env.search.search(ANN, "from:zoe") == hit
    assert await env.search.search(ANN, "from: quartermaine") == hit
    assert await env.search.search(ANN, "subject:quarterly") == hit
    assert await env.search.search(ANN, "body:friday to:ann") == hit
    assert await env.search.search(ANN, "to:zoe") == []
    assert await env.search.search(ANN, "subject:friday") == []
    assert await env.search.search(ANN, "invoice nowhere") == []  # every word is needed
    assert await env.search.search(ANN, "   ") == []


async def test_newest_first_and_limited(env: Env) -> None:
    uids = [await env.deliver(mail(f"Report {n}", "weekly figures")) for n in range(3)]
    assert await env.search.search(ANN, "weekly") == [("INBOX", u) for u in reversed(uids)]
    assert await env.search.search(ANN, "weekly", limit=2) == [
        ("INBOX", uids[2]), ("INBOX", uids[1])]


async def test_html_text_is_searched_but_not_its_markup(env: Env) -> None:
    html = ("<html><head><style>p.zebracss { color: red }</style></head><body>"
            "<p class='zebracss'>Meeting about the <b>giraffe</b> enclosure</p>"
            "<script>var hippo = 1;</script></body></html>")
    data = (f"From: {SENDER}\r\nTo: {ANN}\r\nSubject: Zoo\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/html; charset=utf-8\r\n\r\n" + html).encode()
    uid = await env.deliver(data)
    assert await env.search.search(ANN, "giraffe enclosure") == [("INBOX", uid)]
    assert await env.search.search(ANN, "zebracss") == []
    assert await env.search.search(ANN, "hippo") == []


async def test_mail_stored_other_ways_is_found_after_catch_up(env: Env) -> None:
    await env.store.create_folder(ANN, "Archive/2024")
    appended = await env.store.deliver(ANN, mail("Appended notes", "pelican"),
                                       folder="Archive/2024")  # as IMAP APPEND does
    assert await env.indexed(ANN) == 0
    assert await env.search.search(ANN, "pelican") == [("Archive/2024", appended.uid)]
    copied = await env.store.copy(ANN, "Archive/2024", [appended.uid], "INBOX")
    found = await env.search.search(ANN, "pelican")
    assert sorted(found) == sorted([("Archive/2024", appended.uid),
                                    ("INBOX", copied[appended.uid])])
    assert await env.search.search(ANN, "pelican", folder="INBOX") == [
        ("INBOX", copied[appended.uid])]
    moved = await env.store.move(ANN, "INBOX", [copied[appended.uid]], "Archive")
    assert sorted(await env.search.search(ANN, "pelican")) == sorted([
        ("Archive", moved[copied[appended.uid]]), ("Archive/2024", appended.uid)])
    assert await env.search.search(ANN, "pelican", folder="INBOX") == []


async def test_expunged_mail_is_no_longer_found(env: Env) -> None:
    uid = await env.deliver(mail("Tax return", "flamingo"))
    keep = await env.deliver(mail("Other", "flamingo too"))
    assert len(await env.search.search(ANN, "flamingo")) == 2
    await env.store.set_flags(ANN, "INBOX", uid, [DELETED])
    assert await env.store.expunge(ANN, "INBOX") == [uid]
    assert await env.search.search(ANN, "flamingo") == [("INBOX", keep)]
    assert await env.search.search(ANN, "tax") == []
    assert await env.indexed(ANN) == 1


async def test_renamed_and_deleted_folders_follow_the_store(env: Env) -> None:
    await env.store.create_folder(ANN, "Projects")
    stored = await env.store.deliver(ANN, mail("Plan", "okapi"), folder="Projects")
    assert await env.search.search(ANN, "okapi") == [("Projects", stored.uid)]
    await env.store.rename_folder(ANN, "Projects", "Done")
    assert await env.search.search(ANN, "okapi") == [("Done", stored.uid)]
    await env.store.delete_folder(ANN, "Done")
    assert await env.search.search(ANN, "okapi") == []
    assert await env.indexed(ANN) == 0


async def test_a_dropped_mailbox_leaves_nothing_behind(env: Env) -> None:
    await env.deliver(mail("Mine", "ibis"))
    await env.deliver(mail("Bob's", "ibis", to=BOB), to=BOB)
    assert await env.search.search(ANN, "ibis") != []
    await env.search.index.drop_mailbox(ANN)
    assert await env.indexed(ANN) == 0
    assert await env.indexed(BOB) == 1


async def test_another_mailboxs_mail_is_never_found(env: Env) -> None:
    bobs = await env.deliver(mail("Salary review", "confidential wombat", to=BOB), to=BOB)
    await env.store.deliver(BOB, mail("Appended", "confidential quokka", to=BOB))
    assert await env.search.search(ANN, "confidential") == []
    assert await env.search.search(ANN, "wombat", folder="INBOX") == []
    assert await env.search.search(ANN, "from:zoe") == []
    found = await env.search.search(BOB, "confidential")
    assert len(found) == 2 and ("INBOX", bobs) in found


async def test_a_delivery_keeps_a_caught_up_folder_in_step(env: Env) -> None:
    await env.deliver(mail("First", "one"))
    await env.search.search(ANN, "one")  # INBOX caught up
    await env.deliver(mail("Second", "two"))
    status = await env.store.folder_status(ANN, "INBOX")
    async with env.services.db.session() as session:
        state = (await session.execute(
            select(MailSearchFolder.uidnext, MailSearchFolder.messages).where(
                MailSearchFolder.mailbox == ANN, MailSearchFolder.folder == "INBOX"))).one()
    assert tuple(state) == (status.uidnext, status.exists)  # no catch-up needed next


async def test_concurrent_deliveries_are_all_indexed(env: Env) -> None:
    index = SearchIndex(env.services.db)  # as LocalDelivery calls it, past one group's size
    stored = []
    for n in range(MAX_GROUP + 20):
        data = mail(f"Batch {n}", f"shared token{n}")
        stored.append((await env.store.deliver(ANN, data), data))
    await asyncio.gather(*(index.add(ANN, landed, data) for landed, data in stored))
    assert await env.indexed(ANN) == MAX_GROUP + 20
    assert len(await env.search.search(ANN, "shared", limit=1000)) == MAX_GROUP + 20


async def test_a_notifying_store_s_changes_are_seen_at_once(env: Env) -> None:
    store = NotifyingStore(env.store, MailboxEvents())  # as the web role builds it
    search = MailSearch(env.services.db, store)
    assert await search.search(ANN, "heron") == []  # caught up, version remembered
    appended = await store.deliver(ANN, mail("Bird", "heron"), folder="INBOX")
    assert await search.search(ANN, "heron") == [("INBOX", appended.uid)]
    await store.set_flags(ANN, "INBOX", appended.uid, [DELETED])
    await store.expunge(ANN, "INBOX")
    assert await search.search(ANN, "heron") == []


HOSTILE = ['"', "'", "\\", ":", "*", "OR", "NEAR(", "NOT", "AND", "-", "^", "(", ")",
           '"invoice', "invoice*", "invoice OR", "NEAR(invoice, 4711)", "from:", "to:",
           "subject:\"", "box:x", "{sender}:x", "sender : zoe", "'; DROP TABLE x; --",
           "in'voice", "a\x00b", "\U0001F600", "&|!", "invoice & 4711 | !zoe",
           "x" * 5000, " ".join(["word"] * 200)]


async def test_hostile_queries_neither_error_nor_leak(env: Env) -> None:
    uid = await env.deliver(INVOICE)
    await env.deliver(mail("Secret", "invoice 4711 for bob", to=BOB), to=BOB)
    for query in HOSTILE:
        assert set(await env.search.search(ANN, query)) <= {("INBOX", uid)}, query
    for query in ('"invoice"', "'invoice'", "invoice*", "(invoice)", "subject:\"invoice\"",
                  "invoice\\", "invoice)"):
        assert await env.search.search(ANN, query) == [("INBOX", uid)], query


async def test_a_failing_index_never_fails_a_delivery(env: Env) -> None:
    db = env.services.db
    async with db.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE mail_search_docs RENAME TO mail_search_off"))
    try:
        uid = await env.deliver(mail("Still delivered", "narwhal"))
    finally:
        async with db.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE mail_search_off RENAME TO mail_search_docs"))
    assert [m.uid for m in await env.store.messages(ANN, "INBOX")] == [uid]
    assert await env.search.search(ANN, "narwhal") == [("INBOX", uid)]  # caught up
