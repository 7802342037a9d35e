"""Bulk and phishing signals in the mail flow, over real sockets (smtplib → our MX with the
bulk and phishing checks and the judge → the spool), both backends: a newsletter is
classified bulk for no points, a lookalike of a brand or of the recipient's own domain with
a deceptive link is tagged as spam naming what was found, and a colleague writing from the
recipient's own domain is not flagged."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from email import message_from_bytes
from email.message import Message

import pytest
from mail_helpers import smtp_send
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from mailward.app import Services
from mailward.config import Settings
from mailward.db import AddressList, QueuedMessage
from mailward.directory import Actor, InvalidInput
from mailward.filter import FilterPipeline
from mailward.filter.bulk import BulkCheck
from mailward.filter.judge import Judge
from mailward.filter.phishing import PhishingCheck
from mailward.inbound.mx import MxIntake
from mailward.smtp.mx import start_mx

OP = Actor.operator()
ANN = "ann@northwind-traders.com"
CYRILLIC_A = "\u0430"


@pytest.fixture
async def mx(settings: Settings, directory: Services) -> AsyncIterator[int]:
    """Our MX port: the bulk and phishing checks, each recipient judged by its policy."""
    await directory.accounts.create(OP, "Northwind")
    await directory.domains.create(OP, "northwind-traders.com", account="Northwind")
    await directory.bulk.add_lines(OP, [ANN], AddressList.FILTER)
    intake = MxIntake(directory.recipients, directory.queue.spool,
                      FilterPipeline([BulkCheck(), PhishingCheck()]),
                      judge=Judge(directory.db, settings))
    sock = socket.create_server(("127.0.0.1", 0))
    server = await start_mx(intake, sock=sock, hostname="mx.mailward.test", tls_context=None,
                            data_size_limit=1_000_000, reverse_dns=None)
    try:
        yield sock.getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def mail(sender: str, body: str, *headers: str, html: bool = True) -> bytes:
    kind = "text/html" if html else "text/plain"
    head = [f"From: {sender}", f"To: {ANN}", "Subject: Hello",
            "Date: Sun, 06 Dec 2026 10:00:00 +0000",
            f"Message-ID: <{abs(hash(body))}@mail.example>",
            f"Content-Type: {kind}; charset=utf-8", *headers]
    return ("\r\n".join(head) + "\r\n\r\n" + body + "\r\n").encode()


async def delivered(directory: Services, port: int, envelope_sender: str,
                    data: bytes) -> Message:
    """Send ``data`` to Ann over SMTP; the copy our MX queued for her."""
    await asyncio.to_thread(smtp_send, port, envelope_sender, [ANN], data)
    async with directory.db.session() as session:
        [queued] = (await session.scalars(
            select(QueuedMessage).options(selectinload(QueuedMessage.recipients)))).all()
        copy = await directory.queue.spool.read(queued)
        await session.delete(queued)
        await session.commit()
    assert [r.recipient for r in queued.recipients] == [ANN]
    return message_from_bytes(copy)


def scored(copy: Message) -> dict[str, float]:
    status = str(copy["X-Spam-Status"])
    listed = status.split(" tests=", 1)[1]
    return {} if listed == "none" else {
        name: float(score) for name, score in (t.rsplit("=", 1) for t in listed.split(","))}


async def test_a_newsletter_is_bulk_for_no_points(mx: int, directory: Services) -> None:
    body = ('<p>Spring is here.</p><a href="https://click.garden-tools.com/ls/click?upn=1">'
            'https://www.garden-tools.com/spring</a>')
    copy = await delivered(directory, mx, "bounce@garden-tools.com", mail(
        "Garden Tools <news@garden-tools.com>", body,
        "List-Unsubscribe: <https://garden-tools.com/unsubscribe/1>",
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click"))
    assert copy["X-Spam-Flag"] == "NO"
    assert scored(copy) == {"bulk": 0.0}


async def test_a_brand_lookalike_with_a_deceptive_link_is_tagged(
        mx: int, directory: Services) -> None:
    body = ('<p>Your account is limited.</p>'
            '<a href="http://evil.example/login">https://www.paypal.com/signin</a>')
    copy = await delivered(directory, mx, "service@paypa1.com",
                           mail("PayPal <service@paypa1.com>", body))
    assert copy["X-Spam-Flag"] == "YES"
    assert scored(copy) == {"phishing-lookalike": 4.0, "phishing-link-impersonation": 4.0}
    assert copy["X-Spam-Score"] == "8"


async def test_a_homograph_of_the_recipients_domain_is_tagged_and_a_colleague_is_not(
        mx: int, directory: Services) -> None:
    fake = f"northwind-tr{CYRILLIC_A}ders.com".encode("idna").decode()
    copy = await delivered(directory, mx, f"it@{fake}", mail(
        f"IT desk <it@{fake}>", "Your mailbox is full: https://example.net/owa", html=False))
    assert copy["X-Spam-Flag"] == "YES"
    assert scored(copy) == {"phishing-homograph": 6.0}
    # the recipient's own domain exactly, with links to it: nothing found
    copy = await delivered(directory, mx, "bob@northwind-traders.com", mail(
        "Bob <bob@northwind-traders.com>",
        '<a href="https://intranet.northwind-traders.com/">https://northwind-traders.com/</a>'))
    assert copy["X-Spam-Flag"] == "NO" and scored(copy) == {}


NEWSLETTER = ('<p>Spring is here.</p><a href="https://click.garden-tools.com/ls/click?upn=1">'
              'https://www.garden-tools.com/spring</a>')


def newsletter(subject: str = "Hello") -> bytes:
    return mail("Garden Tools <news@garden-tools.com>", NEWSLETTER,
                "List-Unsubscribe: <https://garden-tools.com/unsubscribe/1>",
                "List-Unsubscribe-Post: List-Unsubscribe=One-Click")


async def test_bulk_mail_is_marked_and_gets_each_policys_bulk_action(
        mx: int, directory: Services) -> None:
    """By default bulk mail is delivered marked X-Mailward-Bulk: yes; a domain may tag its
    subject, an address may file it as junk from a score on (its own threshold); person to
    person mail is never marked."""
    copy = await delivered(directory, mx, "bounce@garden-tools.com", newsletter())
    assert copy["X-Mailward-Bulk"] == "yes" and copy["Subject"] == "Hello"
    assert copy["X-Spam-Flag"] == "NO"
    await directory.filter.set_policy(OP, {"bulk_action": "tag"},
                                      domain="northwind-traders.com")
    copy = await delivered(directory, mx, "bounce@garden-tools.com", newsletter())
    assert copy["Subject"] == "[Bulk] Hello" and copy["X-Spam-Flag"] == "NO"
    assert copy["X-Mailward-Bulk"] == "yes"
    # Ann: junk, but only from 1 point on: this newsletter scores 0, so it is only tagged
    view = await directory.filter.set_policy(OP, {"bulk_action": "junk", "bulk_score": 1},
                                             address=ANN)
    assert view.effective["bulk_action"] == "junk" and view.effective["bulk_score"] == 1
    copy = await delivered(directory, mx, "bounce@garden-tools.com", newsletter())
    assert copy["Subject"] == "Hello" and copy["X-Spam-Flag"] == "NO"
    await directory.filter.set_policy(OP, {"bulk_score": None}, address=ANN)  # inherit: all
    copy = await delivered(directory, mx, "bounce@garden-tools.com", newsletter())
    assert copy["X-Spam-Flag"] == "YES" and copy["X-Mailward-Bulk"] == "yes"
    # a forwarded-by-hand message from a person: not bulk, whatever the policy
    copy = await delivered(directory, mx, "bob@northwind-traders.com", mail(
        "Bob <bob@northwind-traders.com>", "<p>Lunch?</p>"))
    assert copy["X-Mailward-Bulk"] is None and copy["X-Spam-Flag"] == "NO"


async def test_a_bulk_action_must_be_one_of_the_three(directory: Services) -> None:
    await directory.accounts.create(OP, "Northwind")
    await directory.domains.create(OP, "northwind-traders.com", account="Northwind")
    with pytest.raises(InvalidInput, match="bulk_action: must be one of deliver, tag, junk"):
        await directory.filter.set_policy(OP, {"bulk_action": "drop"},
                                          domain="northwind-traders.com")
