"""Sending from webmail over real parts: the submission rules, DKIM, the queue holding mail
for undo send and send later, a delivery worker run for real against a loopback SMTP sink
(the smarthost of mail leaving us) and local mailboxes, and the sender's delivery trace."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage

import pytest
from mail_helpers import Sink, mail_settings, sink_server
from sqlalchemy import func, select

from mailward.app import Services
from mailward.config import Settings
from mailward.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from mailward.db import AddressList, QueuedMessage, QueuedRecipient
from mailward.db.models import utcnow
from mailward.directory import Actor
from mailward.dkim import verify
from mailward.queue.local import LocalDelivery
from mailward.queue.worker import DeliveryWorker
from mailward.store import ANSWERED, DRAFT, SEEN, MailStore, NoSuchFolder, open_store
from mailward.webmail.compose import ComposeForm
from mailward.webmail.outbox import Outbox, Upload

OP = Actor.operator()
ANN = "ann@acme.example"
BOB = "bob@acme.example"


@dataclass
class Env:
    services: Services
    store: MailStore
    outbox: Outbox
    worker: DeliveryWorker
    sink: Sink

    async def queued(self) -> int:
        async with self.services.db.session() as session:
            return int(await session.scalar(select(func.count()).select_from(QueuedMessage))
                       or 0)

    async def folder(self, mailbox: str, folder: str) -> list[tuple[int, EmailMessage,
                                                                    frozenset[str]]]:
        try:
            infos = await self.store.messages(mailbox, folder)
        except NoSuchFolder:
            return []
        return [(i.uid, parse(await self.store.fetch(mailbox, folder, i.uid)), i.flags)
                for i in infos]

    async def sent_uid(self, mailbox: str = ANN) -> int:
        [(uid, _, flags)] = await self.folder(mailbox, "Sent")
        assert SEEN in flags
        return uid


def parse(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)


@pytest.fixture
async def env(settings: Settings, directory: Services) -> AsyncIterator[Env]:
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "acme.example", account="Acme", hosting=True)
    await directory.servers.auto_configure_hosting(OP, "acme.example")
    await directory.bulk.add_lines(OP, [
        f"{ANN}|Mailbox-pass-77", f"{BOB}|Mailbox-pass-77",
        f"sales@acme.example|{ANN}|relay",
    ], AddressList.NO_FILTER)
    async with sink_server() as sink:
        configured = mail_settings(settings, relay_host=sink.address, queue_poll_seconds=600)
        services = Services(directory.db, configured)
        store = open_store(configured, services.db)
        worker = DeliveryWorker(services.db, configured, services.spool,
                                LocalDelivery(services.db, store, services.spool))
        yield Env(services, store, Outbox(services, store), worker, sink)


def form(**fields: object) -> ComposeForm:
    values: dict[str, object] = {"sender": ANN, "to": "carol@remote.example",
                                 "subject": "Plan", "text": "Hello Carol"}
    values.update(fields)
    return ComposeForm(**values)  # type: ignore[arg-type]


async def test_sent_mail_goes_out_signed_without_bcc_and_a_copy_stays_in_sent(env: Env) -> None:
    held = await env.outbox.send(ANN, form(bcc="dave@remote.example", cc=BOB), undo_seconds=0)
    assert held.recipients == ["carol@remote.example", BOB, "dave@remote.example"]
    assert await env.worker.run_once() == 2  # the remote domain, and our own
    [got] = await env.sink.wait_for(1)
    assert sorted(got.recipients) == ["carol@remote.example", "dave@remote.example"]
    assert got.sender == ANN
    assert b"dave@remote.example" not in got.data and "Bcc" not in got.message
    assert got.message["DKIM-Signature"] is not None
    record = (await env.services.dkim.record(OP, "acme.example")).value.encode()

    async def lookup(_name: str) -> bytes:
        return record

    assert await verify(got.data, lookup=lookup)
    assert not await verify(got.data.replace(b"Hello Carol", b"Hello Mallory"), lookup=lookup)
    assert got.message["Message-ID"].endswith(f"@{env.services.settings.hosting_host}>")
    assert b"X-Mailward" not in got.data
    [(_, copy, _)] = await env.folder(ANN, "Sent")
    assert copy["Bcc"] == "dave@remote.example"
    assert copy["Message-ID"] == got.message["Message-ID"]
    [(_, local, _)] = await env.folder(BOB, "INBOX")
    assert local["Message-ID"] == got.message["Message-ID"] and "Bcc" not in local
    assert await env.queued() == 0


async def test_mail_is_held_in_the_queue_until_its_undo_window_ends(env: Env) -> None:
    held = await env.outbox.send(ANN, form(), undo_seconds=30)
    assert held.undo and 25 < (held.release_at - utcnow()).total_seconds() <= 30
    assert await env.queued() == 1  # spooled at once: durable
    assert await env.worker.run_once() == 0
    assert env.sink.received == []
    # an idle worker wakes by itself when the hold ends (no extra wake-up needed)
    assert 20 < await env.worker._idle_seconds() <= 30
    assert [h.queue_id for h in await env.outbox.held(ANN)] == [held.queue_id]
    [status] = await env.outbox.trace(ANN, "Sent", await env.sent_uid()) or []
    assert (status.state, status.words) == ("held", "Waiting to be sent (you can still undo)")


async def test_undo_puts_the_mail_back_in_drafts_and_nothing_is_ever_sent(env: Env) -> None:
    draft = await env.outbox.save_draft(ANN, form(bcc="dave@remote.example"),
                                        [Upload("notes.txt", "text/plain", b"my notes")])
    held = await env.outbox.send(ANN, form(draft_uid=draft, bcc="dave@remote.example"),
                                 undo_seconds=30)
    assert await env.folder(ANN, "Drafts") == []  # sending removed the draft
    uid = await env.outbox.undo(ANN, held.queue_id)
    [(back_uid, back, flags)] = await env.folder(ANN, "Drafts")
    assert back_uid == uid and {DRAFT, SEEN} <= flags
    assert back["Subject"] == "Plan" and back["Bcc"] == "dave@remote.example"
    reopened = await env.outbox.compose(ANN, "draft", "Drafts", uid)
    assert [a.filename for a in reopened.attachments] == ["notes.txt"]
    assert await env.folder(ANN, "Sent") == []
    assert await env.queued() == 0 and await env.outbox.held(ANN) == []
    with pytest.raises(NotFound):
        await env.outbox.undo(ANN, held.queue_id)
    # the queue delivers what comes after it; the undone message never goes out
    await env.outbox.send(ANN, form(subject="Second"), undo_seconds=0)
    assert await env.worker.run_once() == 1
    [got] = await env.sink.wait_for(1)
    assert got.message["Subject"] == "Second"
    assert await env.worker.run_once() == 0 and len(env.sink.received) == 1


async def test_undo_is_refused_once_a_worker_has_claimed_the_mail(env: Env) -> None:
    held = await env.outbox.send(ANN, form(), undo_seconds=0)
    [job] = await env.worker.claim(10)
    with pytest.raises(Conflict, match="too late to undo"):
        await env.outbox.undo(ANN, held.queue_id)
    await env.worker.deliver(job)
    [got] = await env.sink.wait_for(1)
    assert got.message["Subject"] == "Plan"
    [(_, copy, _)] = await env.folder(ANN, "Sent")  # the Sent copy stays
    assert copy["Subject"] == "Plan"


async def test_send_later_is_not_taken_before_its_time(env: Env) -> None:
    when = utcnow() + timedelta(hours=2)
    held = await env.outbox.send(ANN, form(), send_at=when)
    assert not held.undo and held.release_at == when
    assert await env.worker.run_once() == 0 and env.sink.received == []
    assert await env.worker._idle_seconds() == 600  # the poll interval: no spinning on it
    [status] = await env.outbox.trace(ANN, "Sent", await env.sent_uid()) or []
    assert status.state == "held" and status.words.startswith("Scheduled to be sent at ")
    [listed] = await env.outbox.held(ANN)
    assert listed.queue_id == held.queue_id and not listed.undo
    async with env.services.db.session() as session:  # its lifetime runs from then
        received = await session.scalar(select(QueuedMessage.received_at))
        due = await session.scalar(select(QueuedRecipient.next_attempt_at))
    assert received == due == when
    with pytest.raises(InvalidInput, match="60 days"):
        await env.outbox.send(ANN, form(), send_at=utcnow() + timedelta(days=61))


async def test_a_sender_the_mailbox_does_not_own_is_refused_and_nothing_queued(env: Env) -> None:
    with pytest.raises(Forbidden, match=r"you may not send as ceo@other\.example"):
        await env.outbox.send(ANN, form(sender="CEO <ceo@other.example>"), undo_seconds=0)
    with pytest.raises(Forbidden, match=re.escape(f"you may not send as {BOB}")):
        await env.outbox.send(ANN, form(sender=BOB), undo_seconds=0)
    assert await env.queued() == 0 and await env.folder(ANN, "Sent") == []
    # a forwarder (alias) to the mailbox is the mailbox's own
    await env.outbox.send(ANN, form(sender="Sales <sales@acme.example>"), undo_seconds=0)
    assert await env.worker.run_once() == 1
    [got] = await env.sink.wait_for(1)
    assert got.sender == "sales@acme.example" and got.message["From"] == \
        "Sales <sales@acme.example>"


async def test_a_reply_threads_and_marks_the_original_answered(env: Env) -> None:
    original = (b"From: Carol <carol@remote.example>\r\nTo: ann@acme.example\r\n"
                b"Subject: Lunch?\r\nMessage-ID: <lunch-1@remote.example>\r\n"
                b"Date: Sun, 06 Dec 2026 10:00:00 +0000\r\n\r\nNoon at the usual place?\r\n")
    stored = await env.store.deliver(ANN, original)
    reply = await env.outbox.compose(ANN, "reply", "INBOX", stored.uid)
    assert reply.to == "Carol <carol@remote.example>" and reply.subject == "Re: Lunch?"
    reply.text = "Yes!\n" + reply.text
    await env.outbox.send(ANN, reply, undo_seconds=0)
    assert await env.worker.run_once() == 1
    [got] = await env.sink.wait_for(1)
    assert got.message["In-Reply-To"] == "<lunch-1@remote.example>"
    assert got.message["References"] == "<lunch-1@remote.example>"
    body = got.message.get_body(preferencelist=("plain",))
    assert body is not None and "> Noon at the usual place?" in body.get_content()
    [(_, _, flags)] = await env.folder(ANN, "INBOX")
    assert ANSWERED in flags


async def test_undoing_a_reply_unmarks_the_original_and_keeps_the_reply_state(env: Env) -> None:
    original = (b"From: Carol <carol@remote.example>\r\nTo: ann@acme.example\r\n"
                b"Subject: Lunch?\r\nMessage-ID: <lunch-1@remote.example>\r\n\r\nNoon?\r\n")
    stored = await env.store.deliver(ANN, original)
    reply = await env.outbox.compose(ANN, "reply", "INBOX", stored.uid)
    held = await env.outbox.send(ANN, reply, undo_seconds=30)
    [(_, _, flags)] = await env.folder(ANN, "INBOX")
    assert ANSWERED in flags
    uid = await env.outbox.undo(ANN, held.queue_id)
    [(_, _, flags)] = await env.folder(ANN, "INBOX")
    assert ANSWERED not in flags
    again = await env.outbox.compose(ANN, "draft", "Drafts", uid)
    assert (again.mode, again.source) == ("reply", ("INBOX", stored.uid))
    assert again.in_reply_to == "<lunch-1@remote.example>" and again.to == reply.to
    await env.outbox.send(ANN, again, undo_seconds=0)
    [(_, _, flags)] = await env.folder(ANN, "INBOX")
    assert ANSWERED in flags and await env.folder(ANN, "Drafts") == []


async def test_forward_as_attachment_carries_the_original_whole(env: Env) -> None:
    original = (b"From: Carol <carol@remote.example>\r\nTo: ann@acme.example\r\n"
                b"Subject: Contract\r\nMessage-ID: <contract@remote.example>\r\n\r\nSigned.\r\n")
    stored = await env.store.deliver(ANN, original)
    forward = await env.outbox.compose(ANN, "forward-attach", "INBOX", stored.uid)
    assert forward.subject == "Fwd: Contract" and forward.forward == ("INBOX", stored.uid)
    forward.to = "lawyer@remote.example"
    await env.outbox.send(ANN, forward, undo_seconds=0)
    assert await env.worker.run_once() == 1
    [got] = await env.sink.wait_for(1)
    [part] = got.message.iter_attachments()
    assert part.get_content_type() == "message/rfc822"
    assert part.get_content()["Message-ID"] == "<contract@remote.example>"
    [(_, _, flags)] = await env.folder(ANN, "INBOX")
    assert "$Forwarded" in flags


async def test_forward_inline_takes_the_originals_files_along(env: Env) -> None:
    original = EmailMessage()
    original["From"] = "Carol <carol@remote.example>"
    original["To"] = ANN
    original["Subject"] = "Photos"
    original.set_content("Two photos attached.")
    original.add_attachment(b"\x89PNG one", maintype="image", subtype="png", filename="1.png")
    stored = await env.store.deliver(ANN, original.as_bytes().replace(b"\n", b"\r\n"))
    forward = await env.outbox.compose(ANN, "forward", "INBOX", stored.uid)
    assert forward.forward is None and forward.draft_uid is not None
    assert "Two photos attached." in forward.text and "From: Carol" in forward.text
    assert [a.filename for a in forward.attachments] == ["1.png"]
    forward.to = "dave@remote.example"
    await env.outbox.send(ANN, forward, undo_seconds=0)
    assert await env.folder(ANN, "Drafts") == []
    assert await env.worker.run_once() == 1
    [got] = await env.sink.wait_for(1)
    [part] = got.message.iter_attachments()
    assert part.get_filename() == "1.png" and part.get_content() == b"\x89PNG one"
    [(_, _, flags)] = await env.folder(ANN, "INBOX")
    assert "$Forwarded" in flags


async def test_drafts_keep_their_attachments_across_saves(env: Env) -> None:
    first = await env.outbox.save_draft(ANN, form(), [Upload("a.txt", "text/plain", b"one")])
    second = await env.outbox.save_draft(ANN, form(draft_uid=first, text="More"),
                                         [Upload("b.pdf", "application/pdf", b"%PDF two")])
    [(uid, _, flags)] = await env.folder(ANN, "Drafts")  # the first one is gone
    assert uid == second and {DRAFT, SEEN} <= flags
    reopened = await env.outbox.compose(ANN, "draft", "Drafts", second)
    assert [(a.part, a.filename) for a in reopened.attachments] == [("2", "a.txt"),
                                                                   ("3", "b.pdf")]
    assert reopened.text == "More\n" and reopened.draft_uid == second
    third = await env.outbox.save_draft(ANN, reopened, drop=["2"])
    reopened = await env.outbox.compose(ANN, "draft", "Drafts", third)
    assert [a.filename for a in reopened.attachments] == ["b.pdf"]
    await env.outbox.send(ANN, reopened, undo_seconds=0)
    assert await env.folder(ANN, "Drafts") == []
    assert await env.worker.run_once() == 1
    [got] = await env.sink.wait_for(1)
    [part] = got.message.iter_attachments()
    assert part.get_filename() == "b.pdf" and part.get_content() == b"%PDF two"
    assert b"X-Mailward-Draft" not in got.data  # the draft's state stays in Drafts
    with pytest.raises(InvalidInput, match="too large"):
        big = Upload("big.bin", "application/octet-stream",
                     b"x" * (env.services.settings.webmail_max_upload_bytes + 1))
        await env.outbox.save_draft(ANN, form(), [big])


async def test_the_trace_tells_each_recipients_fate_in_plain_words(env: Env) -> None:
    replies = {"later@remote.example": "451 4.7.1 try later",
               "nobody@remote.example": "550 5.1.1 no such user"}
    env.sink.rcpt = lambda address: replies.get(address.strip("<>"))
    await env.outbox.send(ANN, form(to="carol@remote.example, later@remote.example",
                                    cc=f"nobody@remote.example, {BOB}"), undo_seconds=0)
    uid = await env.sent_uid()
    before = {s.recipient: s.state for s in await env.outbox.trace(ANN, "Sent", uid) or []}
    assert set(before.values()) == {"waiting"}
    assert await env.worker.run_once() == 2
    trace = {s.recipient: s for s in await env.outbox.trace(ANN, "Sent", uid) or []}
    carol, later, nobody, bob = (trace[a] for a in (
        "carol@remote.example", "later@remote.example", "nobody@remote.example", BOB))
    assert carol.state == "delivered" and carol.at is not None
    assert carol.words.startswith("Delivered to ")
    assert carol.words.endswith(": 250 2.0.0 accepted by sink")
    assert later.state == "deferred"
    assert later.words.startswith(
        "Not delivered yet: the receiving server said 451 4.7.1 try later; next try at ")
    assert nobody.state == "bounced"
    assert nobody.words == "Bounced: 550 5.1.1 no such user"
    assert bob.state == "delivered" and bob.words == "Delivered to the recipient's mailbox here"
    # the trace is the sender's alone
    assert await env.outbox.trace(ANN, "INBOX", (await env.store.deliver(
        ANN, b"From: x@y.example\r\nSubject: s\r\n\r\nx\r\n")).uid) is None
    [(bob_uid, _, _)] = await env.folder(BOB, "INBOX")
    assert await env.outbox.trace(BOB, "INBOX", bob_uid) is None
    with pytest.raises(NotFound):
        await env.outbox.trace(BOB, "Sent", uid)


async def test_a_mailbox_sees_and_undoes_only_its_own_held_mail(env: Env) -> None:
    held = await env.outbox.send(ANN, form(), undo_seconds=30)
    assert await env.outbox.held(BOB) == []
    with pytest.raises(NotFound):
        await env.outbox.undo(BOB, held.queue_id)
    assert await env.queued() == 1
    # an admin's "retry now" does not cut the sender's undo window short
    await env.services.queue.retry(OP, held.queue_id)
    assert await env.worker.run_once() == 0
    assert await env.outbox.undo(ANN, held.queue_id)
