"""Virus scanning over SMTP with a real clamd (a private one on loopback, its signature
database made in the test), both backends: smtplib → our MX (spam filter on, DNS from a
loopback server) → clamd over INSTREAM → refused at DATA (554 naming the signature), held
in the quarantine per the recipient's ``virus_action``, or queued; clamd down or slow →
fail open (queued with the neutral ``virus-scan-failed`` finding) or closed (451)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import smtplib
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from clamd_helpers import (
    EICAR,
    EICAR_SIGNATURE,
    OFFICIAL_EICAR,
    SAMPLE_SIGNATURE,
    Clamd,
    clamd_server,
    official_database,
)
from dns_server import dns_server
from mail_helpers import mail_roles, mail_settings, port_of
from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from mailward.app import Services
from mailward.config import Settings
from mailward.core.errors import Forbidden
from mailward.db import AddressList, QueuedMessage
from mailward.db.models import Address, FilterPolicy, TraceEventRow, utcnow
from mailward.directory import Actor, InvalidInput
from mailward.filter import filter_pipeline
from mailward.filter.auth import Authenticator
from mailward.filter.judge import Judge
from mailward.filter.virus import ClamdClient, ScanStatus, VirusScanner
from mailward.inbound.mx import MxIntake
from mailward.quarantine.digest import DigestItem, build_digest
from mailward.quarantine.links import ReleaseLinks, release_token
from mailward.quarantine.service import Quarantine
from mailward.smtp.mx import start_mx

OP = Actor.operator()
SENDER = "docs@outside.example"
ANN, BEN, OPEN = "ann@acme.example", "ben@acme.example", "open@acme.example"
ZONE = 'outside.example. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"\n'


@pytest.fixture(scope="module")
def clamd() -> Iterator[Clamd]:
    with clamd_server() as server:
        yield server


def mail(subject: str, attachment: bytes | None = None, name: str = "report.bin") -> bytes:
    """A well-formed message to ann, with ``attachment`` (base64) when given."""
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = ANN
    msg["Subject"] = subject
    msg["Date"] = "Mon, 07 Dec 2026 10:00:00 +0000"
    msg["Message-ID"] = f"<{subject.replace(' ', '.')}@outside.example>"
    msg.set_content("Hello,\nthe file you asked for is attached.\nRegards\n")
    if attachment is not None:
        msg.add_attachment(attachment, maintype="application", subtype="octet-stream",
                           filename=name)
    return msg.as_bytes().replace(b"\n", b"\r\n")


def send(port: int, recipients: list[str], data: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(SENDER, recipients, data)


async def refused(port: int, recipients: list[str], data: bytes) -> tuple[int, str]:
    with pytest.raises(smtplib.SMTPDataError) as error:
        await asyncio.to_thread(send, port, recipients, data)
    text = error.value.smtp_error
    return error.value.smtp_code, text.decode() if isinstance(text, bytes) else text


async def served(directory: Services) -> None:
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "acme.example", account="Acme")
    await directory.bulk.add_lines(OP, [ANN, BEN], AddressList.FILTER)
    await directory.bulk.add_lines(OP, [OPEN], AddressList.NO_FILTER)


async def virus_action(directory: Services, action: str | None, *, address: str | None = None,
                       ) -> None:
    """Set the domain's (or ``address``'s) ``virus_action`` in its filter policy row."""
    await directory.filter.set_policy(OP, {"subject_tag": "[SPAM]"}, domain="acme.example",
                                      address=address)  # makes the row
    async with directory.db.session() as session, session.begin():
        address_id = await session.scalar(select(Address.id).where(Address.email == address)) \
            if address else None
        await session.execute(update(FilterPolicy).where(
            FilterPolicy.address_id == address_id if address_id else
            FilterPolicy.address_id.is_(None)).values(virus_action=action))


@contextlib.asynccontextmanager
async def mx(settings: Settings, directory: Services, clamd_socket: str,
             **overrides: Any) -> AsyncIterator[int]:
    """Our MX as ``MxRole`` builds it (spam filter on) with a virus scanner asking
    ``clamd_socket``; its port."""
    with dns_server(ZONE) as nameserver:
        configured = settings.model_copy(update={
            "spam_filter": True, "dns_nameservers": [nameserver], "dns_timeout_seconds": 1,
            "smtp_hostname": "mx.mailward.test", "clamd_socket": clamd_socket,
            **overrides})
        intake = MxIntake(
            directory.recipients, directory.queue.spool, filter_pipeline(configured),
            Authenticator(configured), Judge(directory.db, configured, directory.filter.learning),
            Quarantine(directory.db, configured, trace=directory.trace), trace=directory.trace,
            virus=VirusScanner.of(directory.db, configured))
        sock = socket.create_server(("127.0.0.1", 0))
        server = await start_mx(intake, sock=sock, hostname="mx.mailward.test",
                                tls_context=None, data_size_limit=10_000_000, reverse_dns=None,
                                trace=directory.trace)
        try:
            yield sock.getsockname()[1]
        finally:
            server.close()
            await server.wait_closed()


async def spooled(directory: Services) -> dict[str, bytes]:
    """Recipient → the bytes queued for it."""
    async with directory.db.session() as session:
        messages = await session.scalars(
            select(QueuedMessage).options(selectinload(QueuedMessage.recipients)))
        return {row.recipient: await directory.queue.spool.read(message)
                for message in messages for row in message.recipients}


async def verdicts(directory: Services) -> dict[str, tuple[str, dict[str, Any]]]:
    """Recipient → (outcome, detail) of its trace verdict."""
    await directory.trace.flush()
    async with directory.db.session() as session:
        rows = (await session.scalars(select(TraceEventRow).where(
            TraceEventRow.kind == "verdict").order_by(TraceEventRow.at, TraceEventRow.id))).all()
    return {row.recipient or "": (row.outcome, json.loads(row.detail)) for row in rows}  # last


async def data_reply(directory: Services) -> str:
    await directory.trace.flush()
    async with directory.db.session() as session:
        [detail] = (await session.scalars(select(TraceEventRow.detail).where(
            TraceEventRow.kind == "data"))).all()
    return str(json.loads(detail)["reply"])


@contextlib.contextmanager
def unused_port() -> Iterator[str]:
    """host:port of a bound socket that is not listening: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


async def queued_count(directory: Services) -> int:
    async with directory.db.session() as session:
        return len((await session.scalars(select(QueuedMessage.id))).all())


async def test_infected_attachment_refused_at_data_clean_mail_passes(
        settings: Settings, directory: Services, clamd: Clamd) -> None:
    """clamd (unix socket) finds the test database's signature in a base64 attachment:
    554 5.7.1 naming it, nothing queued or held, the trace's verdicts say why; the same
    message with another attachment is queued with the spam verdict, no scan finding."""
    await served(directory)
    async with mx(settings, directory, clamd.unix) as port:
        code, text = await refused(port, [ANN, BEN], mail("Invoice", clamd.sample))
        assert (code, text) == (554, f"5.7.1 Message refused: virus found ({SAMPLE_SIGNATURE})")
        assert await spooled(directory) == {}
        assert (await directory.quarantine.list(OP, status=None)).total == 0
        assert await data_reply(directory) == f"554 5.7.1 Message refused: virus found " \
                                               f"({SAMPLE_SIGNATURE})"
        found = await verdicts(directory)
        assert found[ANN] == found[BEN] == ("refused", {
            "filtered": True, "spam": True, "virus": SAMPLE_SIGNATURE, "score": 0.0,
            "action": "reject", "reason": f"virus found ({SAMPLE_SIGNATURE})",
            "findings": [{"check": "virus", "score": 0.0, "reason": SAMPLE_SIGNATURE}]})

        clean = mail("Invoice", clamd.sample[:-1] + b"!")  # one byte off: another file
        await asyncio.to_thread(send, port, [ANN], clean)
    copy = message_from_bytes((await spooled(directory))[ANN], policy=policy.default)
    assert copy["X-Spam-Status"] and "virus" not in copy["X-Spam-Status"], copy["X-Spam-Status"]
    assert copy["Authentication-Results"].startswith("mx.mailward.test; spf=pass")
    [attachment] = list(copy.iter_attachments())
    assert attachment.get_content() == clamd.sample[:-1] + b"!"


async def test_held_per_domain_and_address_setting_over_tcp(
        settings: Settings, directory: Services, clamd: Clamd) -> None:
    """clamd over TCP. The domain says quarantine: held with the signature as the reason
    (and the virus finding), 250 naming the hold. An address saying reject overrides it
    for itself: refused when it is the only recipient; with a recipient whose copy is held,
    held for both (one answer covers every recipient)."""
    await served(directory)
    await virus_action(directory, "quarantine")
    await virus_action(directory, "reject", address=BEN)
    assert await VirusScanner.of(directory.db, settings.model_copy(
        update={"clamd_socket": clamd.tcp})).actions(  # type: ignore[union-attr]
            [ANN, BEN, OPEN, "x@elsewhere.example"]) == {
        ANN: "quarantine", BEN: "reject", OPEN: "quarantine", "x@elsewhere.example": "reject"}
    async with mx(settings, directory, clamd.tcp) as port:
        code, text = await refused(port, [BEN], mail("For Ben", clamd.sample))
        assert code == 554 and SAMPLE_SIGNATURE in text
        await asyncio.to_thread(send, port, [ANN, BEN], mail("For both", clamd.sample))
    assert await spooled(directory) == {}
    held = (await directory.quarantine.list(OP)).items
    assert sorted(h.recipient for h in held) == [ANN, BEN]
    assert {(h.subject, h.reason, h.score) for h in held} == {
        ("For both", f"virus found ({SAMPLE_SIGNATURE})", 0.0)}
    detail = await directory.quarantine.show(OP, held[0].id)
    assert detail.findings == [{"check": "virus", "score": 0.0, "reason": SAMPLE_SIGNATURE}]
    found = await verdicts(directory)
    assert found[ANN][0] == "quarantined" and found[ANN][1]["virus"] == SAMPLE_SIGNATURE
    assert found[BEN][0] == "quarantined" and "quarantine_id" in found[BEN][1]


async def test_do_not_filter_recipients_get_it_filter_ones_held(
        settings: Settings, directory: Services, clamd: Clamd) -> None:
    """An infected message for a Filter recipient (reject) and a Do Not Filter one: the
    Do Not Filter recipient gets it as it came (no filtering), the Filter one's copy is
    held, never delivered. Mail only for Do Not Filter recipients is not scanned at all."""
    await served(directory)
    infected = mail("Mixed", clamd.sample)
    async with mx(settings, directory, clamd.unix) as port:
        await asyncio.to_thread(send, port, [ANN, OPEN], infected)
    copies = await spooled(directory)
    assert list(copies) == [OPEN]
    assert copies[OPEN].endswith(infected) and b"X-Spam-" not in copies[OPEN]
    [held] = (await directory.quarantine.list(OP)).items
    assert (held.recipient, held.reason) == (ANN, f"virus found ({SAMPLE_SIGNATURE})")
    found = await verdicts(directory)
    assert found[OPEN] == ("accepted", {"filtered": False})
    assert found[ANN][0] == "quarantined" and found[ANN][1]["action"] == "quarantine"

    # clamd down: a message for Do Not Filter recipients only is never sent to it
    with unused_port() as down:
        async with mx(settings, directory, down, clamd_fail_open=False) as port:
            await asyncio.to_thread(send, port, [OPEN], mail("Only open", clamd.sample))
    assert await queued_count(directory) == 2


async def test_clamd_down_fails_open_with_a_neutral_finding(
        settings: Settings, directory: Services, caplog: pytest.LogCaptureFixture) -> None:
    """clamd refusing connections, ``clamd_fail_open`` (the default): the message is
    queued with the 0-point ``virus-scan-failed`` finding in X-Spam-Status and the trace,
    and the failure is logged."""
    await served(directory)
    caplog.set_level(logging.WARNING, logger="mailward")
    with unused_port() as down:
        async with mx(settings, directory, down) as port:
            await asyncio.to_thread(send, port, [ANN], mail("Unscanned"))
    copy = message_from_bytes((await spooled(directory))[ANN], policy=policy.default)
    assert "virus-scan-failed=0" in copy["X-Spam-Status"]
    found = await verdicts(directory)
    [failed] = [f for f in found[ANN][1]["findings"] if f["check"] == "virus-scan-failed"]
    assert failed["score"] == 0 and failed["reason"].startswith(f"clamd at {down} unreachable")
    assert found[ANN][0] == "accepted"
    assert any("virus scan failed (delivering)" in r.getMessage() for r in caplog.records)


async def test_clamd_slow_fails_closed_with_451(settings: Settings,
                                                directory: Services) -> None:
    """A clamd that accepts but never answers, ``clamd_fail_open`` off: past
    ``clamd_timeout_seconds`` DATA gets 451 4.7.1; nothing is queued or held."""
    await served(directory)
    with socket.create_server(("127.0.0.1", 0)) as hung:  # listens; never answers
        address = f"127.0.0.1:{hung.getsockname()[1]}"
        async with mx(settings, directory, address, clamd_fail_open=False,
                      clamd_timeout_seconds=0.3) as port:
            code, text = await refused(port, [ANN], mail("Later"))
    assert (code, text) == (451, "4.7.1 Message not scanned for viruses, try again later")
    assert await spooled(directory) == {}
    assert (await directory.quarantine.list(OP, status=None)).total == 0
    assert await data_reply(directory) == \
        "451 4.7.1 Message not scanned for viruses, try again later"


async def test_eicar_is_caught(settings: Settings, directory: Services, clamd: Clamd) -> None:
    """The EICAR test file, attached: with Debian's official database when installed
    (its own signature name), else with the test database's body signature for it."""
    await served(directory)
    with contextlib.ExitStack() as stack:
        if official_database():
            server, expected = stack.enter_context(clamd_server(official=True)), OFFICIAL_EICAR
        else:
            server, expected = clamd, EICAR_SIGNATURE
        async with mx(settings, directory, server.unix) as port:
            code, text = await refused(port, [ANN], mail("Test", EICAR, "eicar.com"))
    assert (code, text) == (554, f"5.7.1 Message refused: virus found ({expected})")


async def test_client_answers_skips_and_errors(clamd: Clamd, settings: Settings,
                                               directory: Services) -> None:
    """The client over both transports; a message larger than ``clamd_max_bytes`` is not
    sent (``virus-scan-skipped``); clamd's own error (its stream limit) is a failed scan."""
    for address in (clamd.unix, clamd.tcp, f"unix:{clamd.unix}"):
        client = ClamdClient(address, 10)
        assert await client.ping()
        assert await client.instream(EICAR) == f"stream: {EICAR_SIGNATURE} FOUND"
        assert await client.instream(b"hello") == "stream: OK"
    base = settings.model_copy(update={"clamd_socket": clamd.unix,
                                                 "clamd_max_bytes": 1024})
    scanner = VirusScanner(directory.db, base)
    skipped = await scanner.scan(EICAR + b" " * 2000)
    assert skipped.status is ScanStatus.SKIPPED
    assert skipped.finding() is not None and skipped.finding().check == "virus-scan-skipped"  # type: ignore[union-attr]
    assert (await scanner.scan(EICAR)).signature == EICAR_SIGNATURE
    with clamd_server(stream_max="2K") as small:
        limited = VirusScanner(directory.db, base.model_copy(update={
            "clamd_socket": small.tcp, "clamd_max_bytes": 1_000_000}))
        failed = await limited.scan(b"x" * 200_000)
    assert failed.status is ScanStatus.FAILED and failed.finding() is not None
    with pytest.raises(ValueError, match="neither a socket path nor host:port"):
        ClamdClient("clamd", 1)


async def test_mx_role_scans_with_the_settings_virus_action(
        settings: Settings, directory: Services, clamd: Clamd) -> None:
    """``mailward serve``'s mx role scans when ``clamd_socket`` is set, and the service's
    ``virus_action`` (validated; ``reject`` in effect by default) decides."""
    await served(directory)
    with pytest.raises(InvalidInput, match="virus_action"):
        await directory.filter.set_policy(OP, {"virus_action": "deliver"},
                                          domain="acme.example")
    view = await directory.filter.get_policy(OP, domain="acme.example")
    assert view.virus_action is None and view.effective["virus_action"] == "reject"
    with dns_server(ZONE) as nameserver:
        configured = mail_settings(settings, spam_filter=True, dns_nameservers=[nameserver],
                                   dns_timeout_seconds=1, clamd_socket=clamd.unix)
        async with mail_roles(configured, frozenset({"mx"})) as urls:
            port = port_of(urls["mx"])
            code, text = await refused(port, [ANN], mail("Refused", clamd.sample))
            assert code == 554 and SAMPLE_SIGNATURE in text
            view = await directory.filter.set_policy(OP, {"virus_action": "quarantine"},
                                                     address=ANN)
            assert view.effective["virus_action"] == "quarantine"
            await asyncio.to_thread(send, port, [ANN], mail("Held", clamd.sample))
    [held] = (await directory.quarantine.list(OP)).items
    assert (held.subject, held.reason) == ("Held", f"virus found ({SAMPLE_SIGNATURE})")


async def test_a_virus_hold_is_released_by_an_administrator_only(
        settings: Settings, directory: Services, clamd: Clamd) -> None:
    """The recipient cannot release a copy held for a virus (a digest link, webmail); an
    administrator can, and the release teaches the domain nothing."""
    await served(directory)
    await virus_action(directory, "quarantine")
    async with mx(settings, directory, clamd.unix) as port:
        await asyncio.to_thread(send, port, [ANN], mail("Infected", clamd.sample))
    [held] = (await directory.quarantine.list(OP)).items
    links = ReleaseLinks(directory.quarantine, settings)
    token = release_token(links.secret, held.id, utcnow() + timedelta(days=1))
    with pytest.raises(Forbidden, match="only an administrator"):
        await links.release(token, "192.0.2.7")
    acme = await directory.accounts.get(OP, "Acme")
    released = await directory.quarantine.release(Actor.for_account(acme.id, name="admin"),
                                                  held.id)
    assert released.learnt is False and released.queue_id
    digest = build_digest(sender="postmaster@mx.mailward.test", recipient=ANN,
                          items=[DigestItem(held, "")], omitted=0, now=utcnow(),
                          node="mx.mailward.test", retention_days=30)
    assert b"only your administrator can release it" in digest
