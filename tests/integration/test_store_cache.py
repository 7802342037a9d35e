"""The store keeps each message's ENVELOPE/BODYSTRUCTURE from delivery on (as Dovecot's
index cache), and the PostgreSQL store answers a protocol command in one statement.

A cold listing (fresh store objects, fresh IMAP parsed cache) is checked to read no message
bytes by overwriting every message's bytes after delivery: the answers must still be what
parsing the original bytes gives.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from store_helpers import (
    ANN,
    PASSWORD,
    Auth,
    Client,
    empty_store_db,
    pg_or_maildir_fixture,  # noqa: F401 - the fixture pg_or_maildir
    statements,
)
from store_helpers import imap as store_imap

from mailward.db import Database
from mailward.imap.session import ImapServices
from mailward.pop3.maildrop import MaildropLocks
from mailward.pop3.session import Pop3Session
from mailward.store import INBOX, MaildirStore, MailStore, Summary
from mailward.store.maildir.summaries import SUMMARIES_FILE
from mailward.store.mime import Message
from mailward.store.postgres import PostgresStore

LITERAL = re.compile(rb"\{(\d+)\}\r\n$")


def _message(n: int) -> bytes:
    if n % 2:
        return (f"From: Sender {n} <s{n}@example.org>\r\nTo: {ANN}\r\n"
                f"Subject: plain {n}\r\nMessage-ID: <m{n}@t>\r\n\r\nbody {n}\r\n").encode()
    return (f"From: s{n}@example.org\r\nTo: {ANN}\r\nSubject: =?utf-8?q?multi_{n}?=\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
            f"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\npart {n}\r\n"
            "--b\r\nContent-Type: application/octet-stream; name=a.bin\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b--\r\n").encode()


MESSAGES = [_message(n) for n in range(1, 13)]


def _parsed(data: bytes) -> Summary:
    msg = Message(data)
    return Summary(msg.envelope(), msg.bodystructure(), msg.bodystructure(extensible=False))


@dataclass
class Backend:
    """Makes fresh store objects on one backend and spoils stored message bytes."""

    name: str
    make: Callable[[], MailStore]
    spoil: Callable[[], Any]  # overwrite every message's bytes (same size)
    forget: Callable[[], Any]  # drop every kept summary, as before this feature
    db: Database | None = None


@pytest.fixture
async def backend(pg_or_maildir: str | None, tmp_path: Path) -> AsyncIterator[Backend]:
    if pg_or_maildir is None:
        root = tmp_path / "mail"
        maildir = root / "example.com" / "ann" / "Maildir"

        def spoil() -> None:
            for sub in ("cur", "new"):
                for path in (maildir / sub).iterdir():
                    path.write_bytes(b"X" * path.stat().st_size)

        def forget() -> None:
            (maildir / SUMMARIES_FILE).unlink()

        yield Backend("maildir", lambda: MaildirStore(root), spoil, forget)
        return
    db = await empty_store_db(pg_or_maildir)

    async def spoil_pg() -> None:
        async with db.engine.begin() as conn:
            await conn.execute(text("UPDATE store_messages SET body = "
                                    "convert_to(repeat('X', CAST(size AS int)), 'UTF8')"))

    async def forget_pg() -> None:
        async with db.engine.begin() as conn:
            await conn.execute(text("UPDATE store_messages SET summary = NULL"))

    try:
        yield Backend("postgresql", lambda: PostgresStore(db), spoil_pg, forget_pg, db)
    finally:
        await db.dispose()


async def _run(step: Any) -> None:
    result = step()
    if asyncio.iscoroutine(result):
        await result


# -- a small IMAP client ------------------------------------------------------------------


class LiteralClient(Client):
    """Inlines literals into the response lines (no time limit)."""

    async def response(self) -> bytes:
        response = await self.reader.readline()
        while (m := LITERAL.search(response)) is not None:
            response += await self.reader.readexactly(int(m.group(1)))
            response += await self.reader.readline()
        return response


def imap(store: MailStore) -> AbstractAsyncContextManager[LiteralClient]:
    """A listener with a fresh parsed cache over ``store``, and a logged-in client."""
    services = ImapServices(authenticator=Auth(), store=store, allow_plaintext_auth=True)
    return store_imap(services, LiteralClient)


def _item(response: bytes, name: bytes) -> bytes:
    """The value of a FETCH item in a response built as ``NAME <value>`` items."""
    start = response.index(name + b" ") + len(name) + 1
    depth, i = 0, start
    while True:
        ch = response[i:i + 1]
        if ch == b'"':
            i += 1
            while response[i:i + 1] != b'"':
                i += 2 if response[i:i + 1] == b"\\" else 1
        elif (m := re.match(rb"\{(\d+)\}\r\n", response[i:])) is not None:
            i += m.end() + int(m.group(1)) - 1
        elif ch == b"(":
            depth += 1
        elif ch == b")":
            depth -= 1
            if depth == 0:
                return response[start:i + 1]
        i += 1


# -- tests ----------------------------------------------------------------------------


async def test_a_cold_listing_reads_no_message_bytes(backend: Backend) -> None:
    delivering = backend.make()
    for data in MESSAGES:
        await delivering.deliver(ANN, data)
    await _run(backend.spoil)
    async with imap(backend.make()) as client:
        lines = await client.command(
            "FETCH 1:* (FLAGS RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE BODY)")
    assert len(lines) == len(MESSAGES)
    for line, data in zip(lines, MESSAGES, strict=True):
        want = _parsed(data)
        assert _item(line, b"ENVELOPE") == want.envelope
        assert _item(line, b"BODYSTRUCTURE") == want.bodystructure
        assert _item(line, b"BODY") == want.body
        assert b"RFC822.SIZE %d " % len(data) in line


async def test_summaries_equal_what_the_parser_makes_and_follow_copies(backend: Backend) -> None:
    store = backend.make()
    for data in MESSAGES:
        await store.deliver(ANN, data)
    await store.create_folder(ANN, "Archive")
    await store.copy(ANN, INBOX, [1, 2], "Archive")
    await store.move(ANN, INBOX, [3], "Archive")
    await _run(backend.spoil)
    fresh = backend.make()
    assert isinstance(fresh, MaildirStore | PostgresStore)
    kept = await fresh.summaries(ANN, INBOX, range(1, 20))
    assert sorted(kept) == [n for n in range(1, len(MESSAGES) + 1) if n != 3]
    for uid, summary in kept.items():
        assert summary == _parsed(MESSAGES[uid - 1])
    archived = await fresh.summaries(ANN, "Archive", [1, 2, 3])
    assert archived == {i + 1: _parsed(MESSAGES[i]) for i in range(3)}


async def test_messages_kept_without_a_summary_get_one_on_first_listing(backend: Backend) -> None:
    store = backend.make()
    for data in MESSAGES:
        await store.deliver(ANN, data)
    await _run(backend.forget)  # as delivered before summaries were kept
    async with imap(backend.make()) as client:
        first = await client.command("UID FETCH 1:* (ENVELOPE BODYSTRUCTURE)")
    await _run(backend.spoil)  # from now on only the kept summaries can answer
    async with imap(backend.make()) as client:
        again = await client.command("UID FETCH 1:* (ENVELOPE BODYSTRUCTURE)")
    assert first == again
    for line, data in zip(again, MESSAGES, strict=True):
        assert _item(line, b"ENVELOPE") == _parsed(data).envelope


async def test_the_summary_log_survives_expunges_and_a_torn_tail(tmp_path: Path) -> None:
    root = tmp_path / "mail"
    store = MaildirStore(root)
    for data in MESSAGES * 12:
        await store.deliver(ANN, data)
    await store.set_flags_many(ANN, INBOX, {uid: frozenset({"\\Deleted"})
                                            for uid in range(1, 100)})
    assert len(await store.expunge(ANN, INBOX)) == 99
    log = root / "example.com" / "ann" / "Maildir" / SUMMARIES_FILE
    compacted = log.stat().st_size
    assert compacted < 60 * 1024  # the 99 dead records are gone
    with log.open("ab") as handle:
        handle.write(b"1234.M1P1Q1Rdead.host,S=5 900 0000")  # a writer died mid-record
    await store.deliver(ANN, MESSAGES[0])
    fresh = MaildirStore(root)
    kept = await fresh.summaries(ANN, INBOX, range(100, 200))
    assert len(kept) == len(MESSAGES) * 12 - 99 + 1
    assert all(s == _parsed(MESSAGES[(uid - 1) % len(MESSAGES)]) for uid, s in kept.items())


# -- PostgreSQL: statements per command ---------------------------------------------


@pytest.fixture
async def pg(pg_database: str) -> AsyncIterator[Backend]:
    db = await empty_store_db(pg_database)
    try:
        yield Backend("postgresql", lambda: PostgresStore(db), lambda: None, lambda: None, db)
    finally:
        await db.dispose()


async def test_imap_commands_cost_one_statement_each(pg: Backend) -> None:
    assert pg.db is not None
    store = pg.make()
    for data in MESSAGES:
        await store.deliver(ANN, data)
    async with imap(pg.make()) as client:
        for line, expected in (
            ("UID FETCH 1:10 (BODY.PEEK[])", 1),
            ("FETCH 1:* (FLAGS ENVELOPE)", 1),
            ("FETCH 1:* (FLAGS ENVELOPE)", 0),  # the parsed cache answers
            ("STORE 1:* +FLAGS.SILENT (\\Flagged)", 1),
            ("STORE 1:* -FLAGS (\\Flagged)", 1),
            ("FETCH 1:3 (BODY[])", 2),  # the bytes, then \\Seen set on all three at once
            ("STORE 1:5 +FLAGS.SILENT (\\Deleted)", 1),
            ("EXPUNGE", 2),  # lock the mailbox, delete and count
        ):
            with statements(pg.db) as seen:
                await client.command(line)
            assert len(seen) == expected, (line, seen)
    infos = await store.messages(ANN, INBOX)
    assert [i.uid for i in infos] == list(range(6, 13))
    assert all(i.flags == frozenset() for i in infos)


async def test_pop3_listing_costs_no_statement(pg: Backend) -> None:
    assert pg.db is not None
    store = pg.make()
    for data in MESSAGES:
        await store.deliver(ANN, data)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await Pop3Session(reader, writer, authenticator=Auth(), store=pg.make(),
                          locks=MaildropLocks(), hostname="pop.test", tls_context=None,
                          tls_active=False, allow_plaintext_auth=True, timeout=30).run()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])

    async def say(line: bytes, multi: bool = False) -> bytes:
        writer.write(line + b"\r\n")
        answer = await reader.readline()
        assert answer.startswith(b"+OK"), answer
        while multi and not answer.endswith(b"\r\n.\r\n"):
            answer += await reader.readline()
        return answer

    try:
        await reader.readline()
        await say(b"USER " + ANN.encode())
        with statements(pg.db) as seen:
            await say(b"PASS " + PASSWORD.encode())
        assert len(seen) <= 2, seen  # the INBOX's status and its listing
        for line, multi in ((b"STAT", False), (b"LIST", True), (b"UIDL", True)):
            with statements(pg.db) as seen:
                answer = await say(line, multi)
            assert seen == [], line
            assert answer.count(b"\r\n") >= (len(MESSAGES) + 2 if multi else 1)
        with statements(pg.db) as seen:
            answer = await say(b"RETR 2", True)
        assert len(seen) == 1 and answer.endswith(b"\r\n.\r\n")
        await say(b"QUIT")
    finally:
        writer.close()
        server.close()
        await server.wait_closed()
