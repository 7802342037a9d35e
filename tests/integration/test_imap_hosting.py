"""The ``imap`` role in a running hosting tier: directory logins over TLS, mail submitted
over SMTP waking IDLE, quota from the directory, the login lock shared with POP3."""

from __future__ import annotations

import asyncio
import imaplib
import poplib
import re
import threading

from hosting_helpers import OP, PASSWORD, Hosting, client_tls
from mail_helpers import message
from sqlalchemy import select

from mailward.db import Domain
from mailward.db.models import FilterDomainModel
from mailward.store import open_store


def _imap(hosting: Hosting, user: str = "bob@acme.example") -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", hosting.imap, timeout=30)
    client.starttls(ssl_context=client_tls())
    client.login(user, PASSWORD)
    return client


def _idle_until_exists(hosting: Hosting, idling: threading.Event) -> bytes:
    """SELECT INBOX, IDLE, and return the first untagged line that arrives (blocking)."""
    client = _imap(hosting)
    client.select("INBOX")
    client.send(b"i1 IDLE\r\n")
    assert client.readline() == b"+ idling\r\n"
    idling.set()
    line = client.readline()
    client.send(b"DONE\r\n")
    rest = [client.readline()]
    while not rest[-1].startswith(b"i1 "):
        rest.append(client.readline())
    assert rest == [b"* 1 RECENT\r\n", b"i1 OK Idle completed\r\n"]
    client.logout()
    return line


async def test_submitted_mail_wakes_idle_and_is_fetched(hosting: Hosting) -> None:
    idling = threading.Event()
    watcher = asyncio.create_task(asyncio.to_thread(_idle_until_exists, hosting, idling))
    assert await asyncio.to_thread(idling.wait, 30)

    def submit() -> None:
        with hosting.smtp() as smtp:
            smtp.login("ann@acme.example", PASSWORD)
            smtp.sendmail("ann@acme.example", ["bob@acme.example"], message(
                "ann@acme.example", "bob@acme.example", "for IMAP", "Body.\r\n"))

    await asyncio.to_thread(submit)
    assert await asyncio.wait_for(watcher, 60) == b"* 1 EXISTS\r\n"

    def fetch() -> list:
        client = _imap(hosting)
        client.select("INBOX")
        typ, data = client.fetch("1", "(ENVELOPE BODY[TEXT])")
        client.logout()
        assert typ == "OK"
        return data

    data = await asyncio.to_thread(fetch)
    assert b'"for IMAP"' in data[0][0] and data[0][1] == b"Body.\r\n"


async def test_implicit_tls_port_and_special_folders(hosting: Hosting) -> None:
    def session() -> list:
        client = imaplib.IMAP4_SSL("127.0.0.1", hosting.imaps, ssl_context=client_tls(),
                                   timeout=30)
        client.login("ann@acme.example", PASSWORD)
        typ, listing = client.list()
        assert typ == "OK"
        typ, data = client.append("Sent", "(\\Seen)", None,
                                  message("ann@acme.example", "x@else.example", "copy"))
        assert typ == "OK" and data[0].startswith(b"[APPENDUID ")
        client.logout()
        return listing

    listing = await asyncio.to_thread(session)
    assert b'(\\HasNoChildren \\Sent) "/" "Sent"' in listing
    store_sent = await _messages(hosting, "ann@acme.example", "Sent")
    assert len(store_sent) == 1


async def _messages(hosting: Hosting, mailbox: str, folder: str) -> list:
    return await open_store(hosting.settings, hosting.directory.db).messages(mailbox, folder)


async def test_plaintext_login_is_refused_before_starttls(hosting: Hosting) -> None:
    assert not hosting.settings.allow_plaintext_auth

    def attempt() -> tuple[list, str]:
        client = imaplib.IMAP4("127.0.0.1", hosting.imap, timeout=30)
        caps = list(client.capabilities)
        try:
            client.login("ann@acme.example", PASSWORD)
        except imaplib.IMAP4.error as exc:
            return caps, str(exc)
        finally:
            client.shutdown()
        return caps, "logged in"

    caps, outcome = await asyncio.to_thread(attempt)
    assert "LOGINDISABLED" in caps and "STARTTLS" in caps
    assert "PRIVACYREQUIRED" in outcome


async def test_quota_reflects_the_directory(hosting: Hosting) -> None:
    await hosting.directory.addresses.set_quota(OP, "bob@acme.example", 2 * 1024 * 1024)

    def quota() -> list:
        client = _imap(hosting)
        typ, data = client.getquotaroot("INBOX")
        client.logout()
        assert typ == "OK"
        return data

    data = await asyncio.to_thread(quota)
    assert data[0] == [b'"INBOX" ""']
    assert re.fullmatch(rb'"" \(STORAGE \d+ 2048\)', data[1][0])


async def test_failed_imap_logins_lock_pop3_too(hosting: Hosting) -> None:
    limit = hosting.settings.auth_failures_per_window

    def guess() -> list[str]:
        answers = []
        for _ in range(limit + 1):
            client = imaplib.IMAP4("127.0.0.1", hosting.imap, timeout=30)
            client.starttls(ssl_context=client_tls())
            try:
                client.login("ann@acme.example", "guess")
            except imaplib.IMAP4.error as exc:
                answers.append(str(exc))
            client.shutdown()
        return answers

    answers = await asyncio.to_thread(guess)
    assert "AUTHENTICATIONFAILED" in answers[0] and "UNAVAILABLE" in answers[-1]

    def pop3() -> str:
        client = poplib.POP3("127.0.0.1", hosting.pop3, timeout=30)
        client.stls(context=client_tls())
        client.user("ann@acme.example")
        try:
            client.pass_(PASSWORD)
        except poplib.error_proto as exc:
            return str(exc)
        finally:
            client.close()
        return "logged in"

    assert "[SYS/TEMP]" in await asyncio.to_thread(pop3)


async def test_moving_mail_into_junk_teaches_the_domains_filter(hosting: Hosting) -> None:
    idling = threading.Event()
    watcher = asyncio.create_task(asyncio.to_thread(_idle_until_exists, hosting, idling))
    assert await asyncio.to_thread(idling.wait, 30)

    def submit() -> None:
        with hosting.smtp() as smtp:
            smtp.login("ann@acme.example", PASSWORD)
            smtp.sendmail("ann@acme.example", ["bob@acme.example"], message(
                "ann@acme.example", "bob@acme.example", "cheap watches", "Buy now.\r\n"))

    await asyncio.to_thread(submit)
    assert await asyncio.wait_for(watcher, 60) == b"* 1 EXISTS\r\n"  # delivered

    def move_to_junk() -> None:
        client = _imap(hosting)
        client.select("INBOX")
        typ, _ = client.uid("MOVE", "1:*", "Junk")
        assert typ == "OK"
        assert client.noop()[0] == "OK"  # the report is done before the next command
        client.logout()

    await asyncio.to_thread(move_to_junk)
    async with hosting.directory.db.session() as session:
        learnt = (await session.execute(
            select(Domain.name, FilterDomainModel.spam_count, FilterDomainModel.ham_count)
            .join(Domain, Domain.id == FilterDomainModel.domain_id))).all()
    assert [tuple(row) for row in learnt] == [("acme.example", 1, 0)]
