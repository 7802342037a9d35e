"""The SMTP side of the message trace, over real sockets (smtplib → our MX or submission
listener → spool), both backends: an accepted message's group written with its copies,
refusals at RCPT and DATA written by QUIT, relaying without a tenant domain, quarantine
holds, connection caps, submission and webmail sending, and the session and trace ids in
the log lines."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import smtplib
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from mail_helpers import message
from sqlalchemy import select

from mailward.app import Services
from mailward.config import Settings
from mailward.db import AddressList, QueuedMessage
from mailward.db.models import QuarantinedMessage, TraceEventRow
from mailward.directory import Actor
from mailward.filter import FilterInput, FilterPipeline, Finding
from mailward.inbound.mx import MxIntake
from mailward.inbound.submission import SubmissionIntake
from mailward.net.limits import ConnectionLimiter
from mailward.obs.logs import LogfmtFormatter
from mailward.quarantine.service import Quarantine
from mailward.queue.spool import NewRecipient
from mailward.smtp.mx import start_mx
from mailward.smtp.submission import start_submission

OP = Actor.operator()
OUTSIDER = "sender@outside.example"


@dataclass
class Fixed:
    """A filter check finding ``score`` points."""

    score: float
    name: str = "fixed"

    async def __call__(self, message: FilterInput) -> Sequence[Finding]:
        return [Finding(self.name, self.score, "test")]


@dataclass
class Event:
    kind: str
    outcome: str
    row: TraceEventRow

    @property
    def detail(self) -> dict[str, Any]:
        return dict(json.loads(self.row.detail))


async def served(directory: Services) -> None:
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "acme.example", account="Acme")
    await directory.bulk.add_lines(OP, ["open@acme.example"], AddressList.NO_FILTER)
    await directory.bulk.add_lines(OP, ["filtered@acme.example"], AddressList.FILTER)


async def events(directory: Services, *where: Any) -> list[Event]:
    """The trace events matching ``where``, in the order of the story."""
    async with directory.db.session() as session:
        rows = (await session.scalars(select(TraceEventRow).where(*where).order_by(
            TraceEventRow.at, TraceEventRow.id))).all()
    return [Event(row.kind, row.outcome, row) for row in rows]


async def trace_of(directory: Services, trace_id: str) -> list[Event]:
    return await events(directory, TraceEventRow.trace_id == trace_id)


@contextlib.asynccontextmanager
async def listening(directory: Services, check: float | None = None, *,
                    quarantine: Quarantine | None = None,
                    limiter: ConnectionLimiter | None = None) -> AsyncIterator[int]:
    """Our MX (filter: one check scoring ``check``) traced into ``directory.trace``."""
    intake = MxIntake(directory.recipients, directory.queue.spool,
                      FilterPipeline([Fixed(check)] if check is not None else []),
                      quarantine=quarantine, trace=directory.trace)
    sock = socket.create_server(("127.0.0.1", 0))
    server = await start_mx(intake, sock=sock, hostname="mx.mailward.test",
                            tls_context=None, data_size_limit=1_000_000, reverse_dns=None,
                            limiter=limiter, trace=directory.trace)
    try:
        yield sock.getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


class Client:
    """An smtplib session driven from the test's loop (each call in a thread)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.smtp: smtplib.SMTP | None = None

    async def __aenter__(self) -> Client:
        self.smtp = await asyncio.to_thread(smtplib.SMTP, "127.0.0.1", self.port,
                                            timeout=30)
        await self.call("ehlo", "client.example")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.quit()

    async def call(self, name: str, *args: Any) -> Any:
        assert self.smtp is not None
        return await asyncio.to_thread(getattr(self.smtp, name), *args)

    async def quit(self) -> None:
        """QUIT: returns once the 221 came (the trace is then stored)."""
        if self.smtp is not None:
            smtp, self.smtp = self.smtp, None
            await asyncio.to_thread(smtp.quit)


async def test_an_accepted_message_is_traced_with_its_copies(directory: Services) -> None:
    """The group is in the database when the 250 comes (written with the copies): the
    connection, MAIL, each RCPT, the DATA answer and a verdict per recipient, in order,
    under the trace id that is the first queue id, one session id."""
    await served(directory)
    data = message(OUTSIDER, "open@acme.example", "Quarterly report")
    async with listening(directory, 0.5) as port, Client(port) as client:
        await client.call("mail", OUTSIDER, ["SIZE=500"])
        await client.call("rcpt", "open@acme.example")
        await client.call("rcpt", "Filtered@acme.example")
        code, reply = await client.call("data", data)
        assert code == 250
        first, second = reply.decode().split(" as ")[1].split()
        story = await trace_of(directory, first)  # before QUIT: already committed
    assert [(e.kind, e.outcome) for e in story] == [
        ("connect", "info"), ("mail", "accepted"), ("rcpt", "accepted"),
        ("rcpt", "accepted"), ("data", "accepted"), ("verdict", "accepted"),
        ("verdict", "accepted")]
    connect, mail, open_rcpt, filtered_rcpt, answer, open_verdict, filtered_verdict = story
    assert {e.row.session_id for e in story} != {None} and len(
        {e.row.session_id for e in story}) == 1
    assert connect.row.peer == "127.0.0.1"
    assert connect.detail == {"helo": "client.example", "tls": False}
    assert (mail.row.sender, mail.detail) == (OUTSIDER, {"reply": "250 2.1.0 OK",
                                                         "size": 500})
    assert mail.row.domain is None  # about the whole message
    assert (open_rcpt.row.recipient, open_rcpt.row.domain, open_rcpt.row.mailbox) == (
        "open@acme.example", "acme.example", "open@acme.example")
    # addresses are kept in lower case (searched in any case through the indexes)
    assert (filtered_rcpt.row.recipient, filtered_rcpt.row.mailbox) == (
        "filtered@acme.example", "filtered@acme.example")
    assert filtered_rcpt.detail == {"reply": "250 2.1.5 Recipient OK"}
    assert answer.row.subject == "Quarterly report"
    assert answer.row.message_id and answer.row.message_id.endswith("@client.example>")
    assert answer.detail["queue_ids"] == [first, second]
    assert answer.detail["reply"] == f"250 2.0.0 Ok: queued as {first} {second}"
    assert answer.detail["size"] > len(data)  # with our Received: header
    assert (open_verdict.row.recipient, open_verdict.row.queue_id,
            open_verdict.detail) == ("open@acme.example", first, {"filtered": False})
    assert (filtered_verdict.row.recipient, filtered_verdict.row.queue_id,
            filtered_verdict.row.domain) == ("filtered@acme.example", second, "acme.example")
    assert filtered_verdict.detail == {
        "filtered": True, "spam": False, "score": 0.5, "action": "accept",
        "reason": "score 0.5", "findings": [{"check": "fixed", "score": 0.5,
                                             "reason": "test"}]}
    async with directory.db.session() as session:
        stored = {row.queue_id: row.trace_id for row in await session.execute(
            select(QueuedMessage.queue_id, QueuedMessage.trace_id))}
    assert stored == {first: first, second: first}


async def test_a_refused_recipient_is_traced_for_its_domain_by_quit(
        directory: Services) -> None:
    """RCPT refusals of a transaction that never reaches DATA are stored before the 221:
    the unlisted address with our domain and the reason, the foreign one (relaying)
    without a tenant domain. A MAIL without any recipient leaves no trace."""
    await served(directory)
    async with listening(directory) as port:
        async with Client(port) as client:
            await client.call("mail", "nobody-sent@outside.example")
            await client.call("rset")
            await client.call("mail", OUTSIDER)
            code, _ = await client.call("rcpt", "nobody@acme.example")
            assert code == 550
            code, _ = await client.call("rcpt", "someone@elsewhere.example")
            assert code == 550
        # QUIT answered: stored
        [unlisted] = await events(directory,
                                  TraceEventRow.recipient == "nobody@acme.example")
        [relay] = await events(directory,
                               TraceEventRow.recipient == "someone@elsewhere.example")
        assert await events(directory,
                            TraceEventRow.sender == "nobody-sent@outside.example") == []
    assert (unlisted.kind, unlisted.outcome, unlisted.row.domain, unlisted.row.sender) == (
        "rcpt", "refused", "acme.example", OUTSIDER)
    assert unlisted.detail == {"reply": "550 5.1.1 No such user here", "reason": "unlisted"}
    assert (relay.kind, relay.outcome, relay.row.domain, relay.row.mailbox) == (
        "rcpt", "refused", None, None)
    assert relay.detail["reason"] == "not-ours"
    assert relay.detail["reply"].startswith("550 5.7.1 Relaying denied")
    story = await trace_of(directory, unlisted.row.trace_id)
    assert [e.kind for e in story] == ["connect", "mail", "rcpt", "rcpt"]
    assert relay.row.trace_id == unlisted.row.trace_id


async def test_spam_refused_at_data_is_traced_with_score_and_findings(
        directory: Services) -> None:
    await served(directory)
    data = message(OUTSIDER, "filtered@acme.example", "Cheap pills")
    async with listening(directory, 50) as port, Client(port) as client:
        await client.call("mail", OUTSIDER)
        await client.call("rcpt", "filtered@acme.example")
        code, _ = await client.call("data", data)
        assert code == 550
        await client.quit()
        [verdict] = await events(directory, TraceEventRow.kind == "verdict")
    assert (verdict.outcome, verdict.row.recipient, verdict.row.domain) == (
        "refused", "filtered@acme.example", "acme.example")
    assert verdict.detail["spam"] is True and verdict.detail["score"] == 50
    assert verdict.detail["action"] == "reject"
    assert verdict.detail["findings"] == [{"check": "fixed", "score": 50, "reason": "test"}]
    story = await trace_of(directory, verdict.row.trace_id)
    assert [(e.kind, e.outcome) for e in story] == [
        ("connect", "info"), ("mail", "accepted"), ("rcpt", "accepted"),
        ("data", "refused"), ("verdict", "refused")]
    assert story[3].detail["reply"] == "550 5.7.1 Message refused as spam"
    assert story[3].row.subject == "Cheap pills"
    async with directory.db.session() as session:
        assert (await session.scalars(select(QueuedMessage))).all() == []


def held_id(reply_word: str) -> int:
    return int(reply_word.removeprefix("quarantine#"))


async def test_held_mail_is_traced_with_the_hold(settings: Settings,
                                                 directory: Services) -> None:
    """Held for one recipient and queued for the other: one group, the held one's verdict
    naming the quarantine entry; held for its only recipient: written with the hold (its
    trace id stored on the held message)."""
    await served(directory)
    quarantine = Quarantine(directory.db, settings)
    async with listening(directory, 12, quarantine=quarantine) as port, \
            Client(port) as client:
        await client.call("mail", OUTSIDER)
        await client.call("rcpt", "filtered@acme.example")
        await client.call("rcpt", "open@acme.example")
        code, reply = await client.call(
            "data", message(OUTSIDER, "open@acme.example", "Both"))
        assert code == 250
        held, queued = reply.decode().split(" as ")[1].split()
        both = await trace_of(directory, queued)
        await client.call("mail", OUTSIDER)
        await client.call("rcpt", "filtered@acme.example")
        code, reply = await client.call(
            "data", message(OUTSIDER, "filtered@acme.example", "Held only"))
        assert code == 250
        assert reply.decode() == f"2.0.0 Ok: queued as quarantine#{held_id(held) + 1}"
        [only] = await events(directory, TraceEventRow.subject == "Held only")
    assert [(e.kind, e.outcome, e.row.recipient) for e in both[-2:]] == [
        ("verdict", "accepted", "open@acme.example"),  # Do Not Filter recipients first
        ("verdict", "quarantined", "filtered@acme.example")]
    assert both[-1].detail["quarantine_id"] == held_id(held)
    assert both[-1].detail["score"] == 12 and both[-1].row.queue_id is None
    assert both[-2].row.queue_id == queued
    story = await trace_of(directory, only.row.trace_id)
    assert [(e.kind, e.outcome) for e in story] == [
        ("connect", "info"), ("mail", "accepted"), ("rcpt", "accepted"),
        ("data", "accepted"), ("verdict", "quarantined")]
    assert story[3].detail["reply"] == f"250 2.0.0 Ok: queued as quarantine#{held_id(held) + 1}"
    async with directory.db.session() as session:
        traces = (await session.scalars(select(QuarantinedMessage.trace_id).order_by(
            QuarantinedMessage.id))).all()
    assert traces == [queued, only.row.trace_id]


async def test_a_connection_over_the_cap_is_traced(directory: Services) -> None:
    async with listening(directory, limiter=ConnectionLimiter(total=0, per_ip=1)) as port:
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            await asyncio.to_thread(smtplib.SMTP, "127.0.0.1", port, timeout=30)
        assert refused.value.smtp_code == 421
        await directory.trace.flush()
        [connect] = await events(directory, TraceEventRow.kind == "connect")
    assert (connect.outcome, connect.row.peer) == ("refused", "127.0.0.1")
    assert connect.detail == {"reply": "421 4.7.0 mx.mailward.test too many connections, "
                                       "try again later",
                              "reason": "too many connections, try again later"}


async def test_log_lines_carry_the_session_and_trace_ids(
        directory: Services, caplog: pytest.LogCaptureFixture) -> None:
    await served(directory)
    caplog.handler.setFormatter(LogfmtFormatter())  # formats as each line is logged
    caplog.set_level(logging.INFO, logger="mailward")
    async with listening(directory) as port, Client(port) as client:
        await client.call("mail", OUTSIDER)
        await client.call("rcpt", "open@acme.example")
        _, reply = await client.call(
            "data", message(OUTSIDER, "open@acme.example", "Logged"))
        trace_id = reply.decode().split(" as ")[1]
        [connect] = await events(directory, TraceEventRow.kind == "connect")
    session_id = connect.row.session_id
    lines = caplog.text.splitlines()
    [sender] = [ln for ln in lines if "logger=mailward.smtp.mx" in ln and "sender" in ln]
    [answered] = [ln for ln in lines if "logger=mailward.smtp.mx" in ln and "queued" in ln]
    for line in (sender, answered):
        assert f"session={session_id}" in line and f"trace={trace_id}" in line
    traced = [ln for ln in lines if "logger=mailward.trace" in ln]
    assert len(traced) == 5 and all(f"trace={trace_id}" in ln for ln in traced)


@dataclass
class LoggedIn:
    mailbox: str | None
    retry_after: int = 0


class AnyPassword:
    """Every login succeeds as the address given (the submission listener's side only)."""

    async def authenticate(self, login: str, password: str, peer: str,
                           protocol: str = "submission") -> LoggedIn:
        return LoggedIn(login.lower())


async def test_submission_is_traced_for_the_senders_domain(directory: Services) -> None:
    intake = SubmissionIntake(directory.mail_login, directory.queue.spool,
                              trace=directory.trace)
    sock = socket.create_server(("127.0.0.1", 0))
    server = await start_submission(
        intake, authenticator=AnyPassword(), sock=sock, hostname="mx.mailward.test",
        tls_context=None, allow_plaintext_auth=True, data_size_limit=1_000_000,
        trace=directory.trace)
    try:
        async with Client(sock.getsockname()[1]) as client:
            await client.call("login", "ann@acme.example", "secret")
            await client.call("mail", "ann@acme.example")
            await client.call("rcpt", "friend@far.example")
            code, reply = await client.call(
                "data", message("ann@acme.example", "friend@far.example", "Sent"))
            assert code == 250
            queue_id = reply.decode().split(" as ")[1]
            story = await trace_of(directory, queue_id)
            await client.call("mail", "ann@acme.example")
            await client.call("rcpt", "friend@far.example")
            code, _ = await client.call(
                "data", message("bob@acme.example", "friend@far.example", "Spoof"))
            assert code == 553
        [spoof] = await events(directory, TraceEventRow.subject == "Spoof")
    finally:
        server.close()
        await server.wait_closed()
    assert [(e.kind, e.outcome) for e in story] == [
        ("submit", "info"), ("mail", "accepted"), ("rcpt", "accepted"),
        ("data", "accepted"), ("verdict", "accepted")]
    assert {(e.row.domain, e.row.mailbox) for e in story} == {
        ("acme.example", "ann@acme.example")}
    assert story[0].detail == {"helo": "client.example", "tls": False,
                               "login": "ann@acme.example"}
    assert (story[-1].row.recipient, story[-1].row.queue_id) == ("friend@far.example",
                                                                 queue_id)
    refused = await trace_of(directory, spoof.row.trace_id)
    assert [(e.kind, e.outcome) for e in refused][-2:] == [("data", "refused"),
                                                           ("verdict", "refused")]
    assert refused[-1].detail["reason"].startswith("From: header address not owned")


async def test_webmail_sending_is_traced(directory: Services) -> None:
    """``SubmissionIntake.submit`` without a listener: the trace is the queue id's."""
    intake = SubmissionIntake(directory.mail_login, directory.queue.spool,
                              trace=directory.trace)
    reply = await intake.submit(
        "ann@acme.example", "ann@acme.example", [NewRecipient("friend@far.example")],
        message("ann@acme.example", "friend@far.example", "From webmail"),
        origin="webmail", queue_id="0000000000AFEEDFACE00")
    assert reply.ok
    story = await trace_of(directory, "0000000000AFEEDFACE00")
    assert [(e.kind, e.outcome) for e in story] == [
        ("submit", "info"), ("rcpt", "accepted"), ("data", "accepted"),
        ("verdict", "accepted")]
    assert story[0].detail == {"login": "ann@acme.example", "origin": "webmail"}
    assert story[-1].row.queue_id == "0000000000AFEEDFACE00"
    refused = await intake.submit(
        "ann@acme.example", "ann@acme.example", [NewRecipient("friend@far.example")],
        message("bob@acme.example", "friend@far.example", "Not mine"), origin="webmail")
    assert refused.code == 553
    await directory.trace.flush()
    [verdict] = await events(directory, TraceEventRow.kind == "verdict",
                             TraceEventRow.outcome == "refused")
    assert (verdict.row.domain, verdict.row.mailbox) == ("acme.example", "ann@acme.example")
