"""Webmail's folders, lists, conversations and actions (mailward.webmail.mailbox) over a
real mail store: the Maildir store with SQLite, the PostgreSQL store with PostgreSQL.

Lists are checked to read no message bytes the way tests/integration/test_store_cache.py
does: every message's bytes are overwritten after delivery, and the rows must still say
what the original messages say.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from mailward.app import Services
from mailward.core.errors import InvalidInput
from mailward.store import (
    INBOX,
    FolderExists,
    MaildirStore,
    MailStore,
    NoSuchFolder,
    PostgresStore,
)
from mailward.store.maildir.summaries import SUMMARIES_FILE
from mailward.webmail.mailbox import FolderInfo, MailboxView

ANN, BOB = "ann@example.com", "bob@example.com"
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@dataclass
class World:
    services: Services
    make: Callable[[], MailStore]  # a fresh store object
    backend: str
    root: Path

    def store(self) -> MailStore:
        return self.make()

    def view(self) -> MailboxView:
        return MailboxView(self.services, self.store())

    async def spoil(self) -> None:
        """Overwrite every message's bytes (same size)."""
        if self.backend == "postgresql":
            async with self.services.db.engine.begin() as conn:
                await conn.execute(text("UPDATE store_messages SET body = "
                                        "convert_to(repeat('X', CAST(size AS int)), 'UTF8')"))
            return
        for path in self.root.rglob("*"):
            if path.is_file() and path.parent.name in ("cur", "new"):
                path.write_bytes(b"X" * path.stat().st_size)

    async def forget(self) -> None:
        """Drop every kept summary (they are then made again from the bytes)."""
        if self.backend == "postgresql":
            async with self.services.db.engine.begin() as conn:
                await conn.execute(text("UPDATE store_messages SET summary = NULL"))
            return
        for path in self.root.rglob(SUMMARIES_FILE):
            path.unlink()


@pytest.fixture
async def world(backend: str, directory: Services, tmp_path: Path) -> AsyncIterator[World]:
    root = tmp_path / "mail"
    if backend == "postgresql":
        yield World(directory, lambda: PostgresStore(directory.db), backend, root)
    else:
        yield World(directory, lambda: MaildirStore(root), backend, root)


def message(n: int, *, subject: str | None = None, sender: str | None = None,
            mid: str | None = None, reply_to: str | None = None, when: datetime | None = None,
            attach: bool = False, pad: int = 0) -> bytes:
    when = when or T0 + timedelta(minutes=n)
    head = (f"From: {sender or f'Sender {n:03d} <s{n:03d}@example.org>'}\r\n"
            f"To: Ann <{ANN}>\r\nSubject: {subject if subject is not None else f'note {n:03d}'}"
            f"\r\nDate: {when.strftime('%a, %d %b %Y %H:%M:%S +0000')}\r\n"
            f"Message-ID: <{mid or f'm{n:03d}@example.org'}>\r\n")
    if reply_to:
        head += f"In-Reply-To: <{reply_to}>\r\n"
    if not attach:
        return (head + "\r\n" + "x" * pad + f"body {n}\r\n").encode()
    return (head + "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
            "--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n"
            "Content-Type: application/pdf; name=a.pdf\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b--\r\n").encode()


async def deliver(store: MailStore, data: bytes, folder: str = INBOX, *,
                  seen: bool = False, flagged: bool = False, minutes: int = 0) -> int:
    flags = frozenset({"\\Seen"} if seen else set()) | ({"\\Flagged"} if flagged else set())
    stored = await store.deliver(ANN, data, folder=folder, flags=flags,
                                 internal_date=T0 + timedelta(minutes=minutes))
    return stored.uid


async def test_folders_are_made_ordered_and_counted(world: World) -> None:
    store = world.store()
    await store.create_folder(ANN, "Projects/2024")
    await store.create_folder(ANN, "Archive")
    await store.create_folder(ANN, "Alpha")
    await deliver(store, message(1))
    await deliver(store, message(2), seen=True)
    await deliver(store, message(3))
    folders = await world.view().folders(ANN)
    assert folders == [
        FolderInfo(INBOX, INBOX, "inbox", 3, 2, 0),
        FolderInfo("Drafts", "Drafts", "drafts", 0, 0, 0),
        FolderInfo("Sent", "Sent", "sent", 0, 0, 0),
        FolderInfo("Archive", "Archive", "archive", 0, 0, 0),
        FolderInfo("Junk", "Junk", "junk", 0, 0, 0),
        FolderInfo("Trash", "Trash", "trash", 0, 0, 0),
        FolderInfo("Alpha", "Alpha", None, 0, 0, 0),
        FolderInfo("Projects", "Projects", None, 0, 0, 0),
        FolderInfo("Projects/2024", "2024", None, 0, 0, 1),
    ]
    assert "Sent" in await store.subscriptions(ANN)  # as IMAP makes them
    view = world.view()
    assert await view.special(ANN, "junk") == "Junk"
    with pytest.raises(InvalidInput):
        await view.special(ANN, "spam")


async def test_a_200_message_list_reads_no_message_bytes(world: World) -> None:
    store = world.store()
    originals = {}
    for n in range(1, 201):
        data = message(n, attach=n % 10 == 0, pad=n // 2)
        uid = await deliver(store, data, seen=n % 3 == 0, flagged=n == 7, minutes=n)
        originals[uid] = (n, len(data))
    # one with encoded words and no name
    fancy = (b"From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <Juergen@Example.ORG>\r\n"
             b"To: bob@example.net, =?utf-8?b?w4Rubg==?= <ann@example.com>\r\n"
             b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= aus Bern\r\n"
             b"Date: Mon, 2 Mar 2026 10:00:00 +0100\r\n\r\nhi\r\n")
    fancy_uid = await deliver(store, fancy, minutes=500)
    await world.spoil()
    assert (await world.store().fetch(ANN, INBOX, fancy_uid)).startswith(b"XXXX")

    view = world.view()
    page = await view.list(ANN, INBOX, page=1, per_page=50)
    assert (page.total, page.pages, len(page.rows)) == (201, 5, 50)
    first = page.rows[0]
    assert first.uid == fancy_uid and first.subject == "Grüße aus Bern"
    assert (first.sender, first.sender_address) == ("Jürgen Müller", "juergen@example.org")
    assert first.to == "bob@example.net, Änn"
    assert first.date == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert [r.uid for r in page.rows[1:4]] == [200, 199, 198]  # newest arrival first
    row = page.rows[1]
    n, size = originals[row.uid]
    assert (row.subject, row.sender, row.sender_address) == (
        f"note {n:03d}", f"Sender {n:03d}", f"s{n:03d}@example.org")
    assert row.size == size and row.has_attachments and not row.seen  # n = 200
    assert row.to == "Ann" and row.date == T0 + timedelta(minutes=n)

    by_subject = await view.list(ANN, INBOX, sort="subject", reverse=False, per_page=100,
                                 page=2)
    assert [r.subject for r in by_subject.rows[:2]] == ["note 100", "note 101"]
    assert by_subject.rows[-1].subject == "note 199"
    last = await view.list(ANN, INBOX, sort="subject", reverse=False, per_page=100, page=3)
    assert [r.subject for r in last.rows] == ["note 200"]  # "Grüße" sorts first
    flagged = await view.list(ANN, INBOX, only="flagged")
    assert [(r.subject, r.flagged) for r in flagged.rows] == [("note 007", True)]
    unread = await view.list(ANN, INBOX, only="unread", per_page=500)
    assert unread.total == 201 - 66 and not any(r.seen for r in unread.rows)
    by_size = await view.list(ANN, INBOX, sort="size", per_page=3)
    assert [originals[r.uid][0] for r in by_size.rows] == [200, 190, 180]  # attachments
    by_sender = await view.list(ANN, INBOX, sort="from", reverse=False, per_page=2)
    assert [r.sender for r in by_sender.rows] == ["Jürgen Müller", "Sender 001"]


async def test_heads_are_kept_and_only_new_messages_are_asked_for(world: World) -> None:
    store = world.store()
    for n in range(1, 6):
        await deliver(store, message(n), minutes=n)
    view = world.view()
    before = await view.list(ANN, INBOX, sort="subject")
    await world.forget()
    await world.spoil()  # from now on a summary made again would say nothing
    again = await view.list(ANN, INBOX, sort="subject")
    assert [r.subject for r in again.rows] == [r.subject for r in before.rows] == [
        f"note {n:03d}" for n in range(5, 0, -1)]
    assert [r.subject for r in (await world.view().list(ANN, INBOX)).rows] == [""] * 5
    await deliver(store, message(6), minutes=6)  # a new UID is read (kept at delivery)
    assert (await view.list(ANN, INBOX)).rows[0].subject == "note 006"


async def test_a_page_by_date_reads_only_its_own_summaries(world: World) -> None:
    store = world.store()
    for n in range(1, 121):
        await deliver(store, message(n), minutes=n)
    await world.forget()  # each summary read from now on is made from the bytes and kept
    first = await world.view().list(ANN, INBOX, per_page=50)
    assert [r.subject for r in first.rows[:2]] == ["note 120", "note 119"]
    await world.spoil()
    # page 2 was never summarised: made now from the spoiled bytes, it says nothing
    second = await world.view().list(ANN, INBOX, per_page=50, page=2)
    assert [r.subject for r in second.rows] == [""] * 50
    again = await world.view().list(ANN, INBOX, per_page=50)  # page 1's were kept
    assert [r.subject for r in again.rows] == [f"note {n:03d}" for n in range(120, 70, -1)]


async def test_threads_join_across_folders_and_conversations_skip_trash(world: World) -> None:
    store, view = world.store(), world.view()
    await view.folders(ANN)
    first = await deliver(store, message(1, subject="Budget 2026", mid="b1@x"), minutes=1)
    mine = await deliver(store, message(2, subject="Re: Budget 2026", sender=ANN, mid="b2@x",
                                        reply_to="b1@x"), "Sent", seen=True, minutes=2)
    answer = await deliver(store, message(3, subject="Re: Budget 2026", mid="b3@x",
                                          reply_to="b2@x"), seen=True, minutes=3)
    trashed = await deliver(store, message(4, subject="Re: Budget 2026", mid="b4@x",
                                           reply_to="b3@x"), "Trash", minutes=4)
    other = await deliver(store, message(5, subject="Lunch", mid="l1@x"), minutes=5)
    listed = await view.list(ANN, INBOX, threads=True)
    assert [(r.uid, r.thread_size, r.seen) for r in listed.rows] == [
        (other, 1, False), (answer, 3, False)]  # newest message's data; unread if any is
    assert listed.total == 2 and listed.rows[1].subject == "Re: Budget 2026"
    assert [r.uid for r in (await view.list(ANN, INBOX, threads=True, only="unread")).rows] \
        == [other, answer]
    flat = await view.list(ANN, INBOX)
    assert [r.uid for r in flat.rows] == [other, answer, first]

    talk = await view.conversation(ANN, INBOX, first)
    assert [(r.folder, r.uid) for r in talk] == [(INBOX, first), ("Sent", mine), (INBOX, answer)]
    assert [(r.folder, r.uid) for r in await view.conversation(ANN, INBOX, other)] == [
        (INBOX, other)]
    in_trash = await view.conversation(ANN, "Trash", trashed)  # its own folder is searched
    assert [(r.folder, r.uid) for r in in_trash] == [
        (INBOX, first), ("Sent", mine), (INBOX, answer), ("Trash", trashed)]
    with pytest.raises(InvalidInput):
        await view.conversation(ANN, INBOX, 999)
    with pytest.raises(NoSuchFolder):
        await view.conversation(ANN, "Nope", 1)

    hits = [("Sent", mine), (INBOX, 999), ("Gone", 1), (INBOX, first)]
    assert [(r.folder, r.uid) for r in await view.rows(ANN, hits)] == [
        ("Sent", mine), (INBOX, first)]
    assert await view.rows(BOB, hits) == []  # bob's mailbox holds none of ann's


async def test_threads_follow_references_when_in_reply_to_is_missing(world: World) -> None:
    """A client that writes only References (its parent lost, its subject changed) still
    joins the conversation: the store keeps References in the message's summary."""
    store, view = world.store(), world.view()
    await view.folders(ANN)
    first = await deliver(store, message(1, subject="Kick-off", mid="k1@x"), minutes=1)
    late = message(2, subject="Totally different words", mid="k3@x")
    late = late.replace(b"\r\n\r\n", b"\r\nReferences: <k1@x>\r\n <k2@x>\r\n\r\n", 1)
    second = await deliver(store, late, minutes=2)
    talk = await view.conversation(ANN, INBOX, first)
    assert [r.uid for r in talk] == [first, second]
    assert [r.uid for r in (await view.list(ANN, INBOX, threads=True)).rows] == [second]


async def test_flags_moves_deletes_and_emptying(world: World) -> None:
    store, view = world.store(), world.view()
    await view.folders(ANN)
    uids = [await deliver(store, message(n), minutes=n) for n in range(1, 5)]
    await view.set_flag(ANN, INBOX, uids[:2], "\\Seen", True)
    await view.set_flag(ANN, INBOX, [uids[1]], "\\Flagged", True)
    infos = {i.uid: i.flags for i in await store.messages(ANN, INBOX)}
    assert infos[uids[0]] == {"\\Seen"} and infos[uids[1]] == {"\\Seen", "\\Flagged"}
    await view.set_flag(ANN, INBOX, [uids[1]], "\\Seen", False)
    assert {i.uid: i.flags for i in await store.messages(ANN, INBOX)}[uids[1]] == {"\\Flagged"}

    await store.create_folder(ANN, "Work")
    moved = await view.move(ANN, INBOX, [uids[0]], "Work")
    assert list(moved) == [uids[0]] and len(await store.messages(ANN, "Work")) == 1
    with pytest.raises(NoSuchFolder):
        await view.move(ANN, INBOX, [uids[1]], "Missing")
    await view.delete(ANN, INBOX, uids[1:3])
    assert [i.uid for i in await store.messages(ANN, INBOX)] == [uids[3]]
    trash = await store.messages(ANN, "Trash")
    assert len(trash) == 2
    await view.delete(ANN, "Trash", [trash[0].uid])  # in Trash: gone for good
    assert [i.uid for i in await store.messages(ANN, "Trash")] == [trash[1].uid]

    await deliver(store, message(9), "Junk")
    with pytest.raises(InvalidInput, match="only Trash and Junk"):
        await view.empty(ANN, INBOX)
    assert await view.empty(ANN, "Junk") == 1 and await view.empty(ANN, "Trash") == 1
    assert await store.messages(ANN, "Trash") == []

    # ann's actions never reach bob's mailbox
    bob_uid = (await store.deliver(BOB, message(1))).uid
    await view.delete(ANN, INBOX, [bob_uid, 999])
    assert [i.uid for i in await store.messages(BOB, INBOX)] == [bob_uid]


async def test_folder_management_refuses_inbox_and_specials(world: World) -> None:
    store, view = world.store(), world.view()
    await view.folders(ANN)
    await view.create_folder(ANN, " Clients/Acme/ ")
    assert "Clients/Acme" in [f.name for f in await view.folders(ANN)]
    assert "Clients/Acme" in await store.subscriptions(ANN)
    with pytest.raises(FolderExists):
        await view.create_folder(ANN, "Clients/Acme")
    for bad in ("", "/", "a//b"):
        with pytest.raises(InvalidInput):
            await view.create_folder(ANN, bad)
    await view.rename_folder(ANN, "Clients", "Customers")
    names = [f.name for f in await view.folders(ANN)]
    assert "Customers/Acme" in names and "Clients" not in names
    for special in (INBOX, "inbox", "Trash", "Sent", "Drafts", "Junk"):
        with pytest.raises(InvalidInput, match="special folder"):
            await view.rename_folder(ANN, special, "Other")
        with pytest.raises(InvalidInput, match="special folder"):
            await view.delete_folder(ANN, special)
    with pytest.raises(InvalidInput, match="special folder"):
        await view.rename_folder(ANN, "Customers", "Trash")
    await view.delete_folder(ANN, "Customers/Acme")
    assert await view.special(ANN, "archive") == "Archive"  # made on demand, the user's
    await view.delete_folder(ANN, "Archive")
    assert "Customers/Acme" not in [f.name for f in await view.folders(ANN)]
    with pytest.raises(NoSuchFolder):
        await view.delete_folder(BOB, "Customers")  # bob has no such folder


async def test_version_changes_with_mail_and_flags(world: World) -> None:
    store, view = world.store(), world.view()
    await view.folders(ANN)
    uid = await deliver(store, message(1))
    seen = {await view.version(ANN)}
    assert await view.version(ANN) in seen  # stable while nothing changes
    steps = [
        lambda: view.set_flag(ANN, INBOX, [uid], "\\Seen", True),
        lambda: view.set_flag(ANN, INBOX, [uid], "\\Flagged", True),
        lambda: view.set_flag(ANN, INBOX, [uid], "$Work", True),
        lambda: deliver(store, message(2)),
        lambda: view.move(ANN, INBOX, [uid], "Drafts"),
        lambda: view.create_folder(ANN, "New"),
    ]
    for step in steps:
        await step()
        now = await view.version(ANN)
        assert now not in seen
        seen.add(now)
    await store.deliver(BOB, message(3))
    assert await view.version(ANN) in seen  # bob's mail is not ann's change
