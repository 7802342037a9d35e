"""The queue's and the quarantine's side of a message trace, both backends.

A delivery worker with a trace recorder runs one pass at a time against real SMTP sinks
on loopback (as in test_delivery.py); ``trace_events`` is read directly after each pass:
relay attempts (a deferral, then the delivery), local delivery and auto-cc copies, bounces
and their DSNs, expiry, admin deletes, undo send, and quarantine release and discard.
Every event of a message, and of the copies made from it, carries its trace id.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from mail_helpers import Sink, mail_settings, message, sink_server
from sqlalchemy import select, update

from mailward.app import Services
from mailward.config import Settings
from mailward.db import AddressList, QueuedMessage, QueuedRecipient
from mailward.db.models import QuarantinedMessage, QuarantineEntry, TraceEventRow, utcnow
from mailward.directory import Actor
from mailward.obs import logs
from mailward.quarantine.service import Hold, Quarantine, QuarantineService
from mailward.queue.admin import QueueService
from mailward.queue.local import LocalDelivery
from mailward.queue.spool import NewRecipient, Spool
from mailward.queue.worker import DeliveryWorker
from mailward.store import open_store
from mailward.trace.ids import new_id
from mailward.trace.recorder import Trace

OP = Actor.operator()
SENDER = "origin@outside.example"
ANN = "ann@filtered.example"  # relayed to the customer's server
CC = "cc@hosted.example"  # a hosted mailbox with an auto-cc to boss@elsewhere.example


@dataclass
class Env:
    directory: Services
    settings: Settings
    trace: Trace
    spool: Spool
    worker: DeliveryWorker
    queue_admin: QueueService
    relay: Sink  # smarthost: mail leaving us (DSNs to outside senders, forwards)
    customer: Sink  # filtered.example's server

    async def queue(self, to: str, *, trace_id: str | None = None, **extra: Any) -> str:
        return await self.spool.enqueue(
            sender=SENDER, recipients=[NewRecipient(to)], data=message(SENDER, to, "Trace"),
            origin="mx", trace_id=trace_id, **extra)

    async def events(self, trace_id: str) -> list[TraceEventRow]:
        async with self.directory.db.session() as session:
            return list(await session.scalars(
                select(TraceEventRow).where(TraceEventRow.trace_id == trace_id)
                .order_by(TraceEventRow.id)))

    async def trace_of(self, queue_id: str) -> str | None:
        async with self.directory.db.session() as session:
            return await session.scalar(select(QueuedMessage.trace_id)
                                        .where(QueuedMessage.queue_id == queue_id))

    async def make_due(self) -> None:
        async with self.directory.db.session() as session, session.begin():
            await session.execute(update(QueuedRecipient).values(next_attempt_at=utcnow()))


def story(events: list[TraceEventRow]) -> list[tuple[str, str]]:
    return [(e.kind, e.outcome) for e in events]


def detail(event: TraceEventRow) -> dict[str, Any]:
    found = json.loads(event.detail)
    assert isinstance(found, dict)
    return found


@pytest.fixture
async def env(settings: Settings, directory: Services) -> AsyncIterator[Env]:
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "filtered.example", account="Acme")
    await directory.domains.create(OP, "hosted.example", account="Acme", hosting=True)
    await directory.servers.auto_configure_hosting(OP, "hosted.example")
    await directory.bulk.add_lines(OP, [ANN], AddressList.FILTER)
    await directory.bulk.add_lines(OP, [f"{CC}|Secret-pass-9"], AddressList.NO_FILTER)
    await directory.addresses.set_autocc(OP, CC, "boss@elsewhere.example")
    async with sink_server() as relay, sink_server() as customer:
        configured = mail_settings(settings, relay_host=relay.address)
        services = Services(directory.db, configured)
        await services.servers.add(OP, "filtered.example", customer.address, preference=10)
        trace = Trace(services.db, configured)
        spool = Spool(services.db, configured.data_dir, trace=trace)
        local = LocalDelivery(services.db, open_store(configured, services.db), spool)
        worker = DeliveryWorker(services.db, configured, spool, local, trace=trace)
        yield Env(services, configured, trace, spool, worker,
                  QueueService(services.db, spool, trace=trace), relay, customer)


@pytest.fixture
def bound() -> Iterator[list[tuple[str, str | None, str | None]]]:
    """(message, trace, queue) of each line the delivery worker logs."""
    seen: list[tuple[str, str | None, str | None]] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.getMessage(), logs.TRACE.get(), logs.QUEUE.get()))

    logger = logging.getLogger("mailward.queue.worker")
    handler, level = Catch(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield seen
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def test_a_deferral_then_a_delivery_then_the_dequeue(
        env: Env, bound: list[tuple[str, str | None, str | None]]) -> None:
    answers = iter(["451 4.7.1 greylisted, try again later"])
    env.customer.rcpt = lambda _a: next(answers, None)
    trace_id = new_id()
    assert await env.queue(ANN, trace_id=trace_id) == trace_id  # the first copy's id
    assert await env.trace_of(trace_id) == trace_id
    await env.worker.run_once()
    assert story(await env.events(trace_id)) == [("attempt", "deferred")]
    await env.make_due()
    await env.worker.run_once()
    [received] = await env.customer.wait_for(1)
    assert received.recipients == [ANN]

    deferred, delivered, dequeued = events = await env.events(trace_id)
    assert story(events) == [("attempt", "deferred"), ("attempt", "delivered"),
                             ("dequeue", "removed")]
    for event in (deferred, delivered):
        assert (event.recipient, event.sender, event.queue_id) == (ANN, SENDER, trace_id)
        assert (event.domain, event.mailbox) == ("filtered.example", ANN)  # ours
        assert detail(event)["server"] == detail(event)["ip"] == "127.0.0.1"
        assert isinstance(detail(event)["duration_ms"], int)
    assert [detail(e)["attempt"] for e in (deferred, delivered)] == [1, 2]
    assert detail(deferred)["reply"].startswith("451 4.7.1 greylisted")
    assert "latency_ms" not in detail(deferred)
    assert detail(delivered)["reply"] == "250 2.0.0 accepted by sink"
    assert detail(delivered)["latency_ms"] >= 0
    assert dequeued.queue_id == trace_id and dequeued.domain is None  # the whole message
    assert detail(dequeued) == {"reason": "done"}
    # the worker's log lines carry the message's trace and queue id
    lines = [(trace, queue) for text, trace, queue in bound if ANN in text]
    assert len(lines) == 2 and set(lines) == {(trace_id, trace_id)}


async def test_local_delivery_and_an_auto_cc_copy_share_the_trace(env: Env) -> None:
    trace_id = new_id()
    await env.queue(CC, trace_id=trace_id)
    await env.worker.run_once()
    mailbox, forward, _dequeued = events = await env.events(trace_id)
    assert story(events) == [("mailbox", "delivered"), ("forward", "forwarded"),
                             ("dequeue", "removed")]
    assert (mailbox.mailbox, mailbox.domain, mailbox.queue_id) == (CC, "hosted.example",
                                                                   trace_id)
    assert detail(mailbox)["folder"] == "INBOX" and detail(mailbox)["latency_ms"] >= 0
    copy = detail(forward)["copy_queue_id"]
    assert copy != trace_id
    assert detail(forward) == {"copy_queue_id": copy, "to": ["boss@elsewhere.example"],
                               "copy": "autocc"}
    assert await env.trace_of(copy) == trace_id  # the copy continues the trace

    await env.worker.run_once()  # the copy goes out through the smarthost
    [out] = await env.relay.wait_for(1)
    assert out.recipients == ["boss@elsewhere.example"]
    events = await env.events(trace_id)
    assert story(events) == [("mailbox", "delivered"), ("forward", "forwarded"),
                             ("dequeue", "removed"), ("attempt", "delivered"),
                             ("dequeue", "removed")]
    attempt = events[3]
    assert (attempt.queue_id, attempt.recipient) == (copy, "boss@elsewhere.example")
    # not ours: the event belongs to the sender's domain
    assert (attempt.domain, attempt.mailbox) == ("outside.example", SENDER)
    assert [e.queue_id for e in events if e.kind == "dequeue"] == [trace_id, copy]


async def test_a_full_mailbox_is_a_local_attempt_deferred(env: Env) -> None:
    await env.directory.addresses.set_quota(OP, CC, 10)
    trace_id = await env.queue(CC)  # no trace given: the queue id is the trace
    assert await env.trace_of(trace_id) == trace_id
    await env.worker.run_once()
    [attempt] = await env.events(trace_id)
    assert story([attempt]) == [("attempt", "deferred")]
    assert detail(attempt)["server"] == "local"
    assert detail(attempt)["reply"] == f"mailbox {CC} is full (over quota)"


async def test_a_bounce_names_its_dsn_and_the_dsn_is_traced_too(env: Env) -> None:
    env.customer.rcpt = lambda _a: "550 5.1.1 no such mailbox at the customer"
    trace_id = new_id()
    await env.queue(ANN, trace_id=trace_id)
    await env.worker.run_once()
    bounced, bounce, dequeued = await env.events(trace_id)
    assert story([bounced, bounce, dequeued]) == [
        ("attempt", "bounced"), ("bounce", "info"), ("dequeue", "removed")]
    assert detail(bounced)["reply"].startswith("550 5.1.1 no such mailbox")
    dsn = detail(bounce)["dsn_queue_id"]
    assert detail(bounce) == {"dsn_queue_id": dsn, "action": "failed"}
    assert bounce.recipient == ANN and bounce.domain == "filtered.example"
    assert await env.trace_of(dsn) == trace_id

    await env.worker.run_once()  # the DSN to the outside sender
    [report] = await env.relay.wait_for(1)
    assert report.recipients == [SENDER] and report.sender == ""
    delivered, gone = (await env.events(trace_id))[3:]
    assert story([delivered, gone]) == [("attempt", "delivered"), ("dequeue", "removed")]
    assert (delivered.queue_id, delivered.recipient, gone.queue_id) == (dsn, SENDER, dsn)
    assert (delivered.domain, delivered.mailbox) == (None, None)  # <> to elsewhere


async def test_the_end_of_the_queue_lifetime_expires_and_bounces(env: Env) -> None:
    env.customer.rcpt = lambda _a: "451 4.4.1 still down"
    trace_id = await env.queue(ANN)
    async with env.directory.db.session() as session, session.begin():
        await session.execute(update(QueuedMessage).values(
            received_at=utcnow() - timedelta(seconds=env.settings.queue_lifetime_seconds)))
    await env.worker.run_once()
    events = await env.events(trace_id)
    assert story(events) == [("attempt", "deferred"), ("expire", "bounced"),
                             ("bounce", "info"), ("dequeue", "removed")]
    assert "451 4.4.1 still down" in detail(events[1])["last_error"]
    assert detail(events[3]) == {"reason": "expired"}


async def test_an_admin_delete_and_an_undone_send_leave_the_queue(env: Env) -> None:
    trace_id = new_id()
    await env.queue(ANN, trace_id=trace_id)
    admin = Actor.operator("olga")
    await env.queue_admin.delete(admin, trace_id)
    [deleted] = await env.events(trace_id)  # one event, not one more for the message row
    assert story([deleted]) == [("dequeue", "removed")]
    assert detail(deleted) == {"reason": "deleted", "by": "olga"}
    assert (deleted.recipient, deleted.domain, deleted.queue_id) == (
        ANN, "filtered.example", trace_id)

    held = await env.queue(ANN, not_before=utcnow() + timedelta(hours=1))  # undo window
    assert await env.spool.cancel_unclaimed(held, by=ANN)
    [cancelled] = await env.events(held)
    assert detail(cancelled) == {"reason": "cancelled", "by": ANN}
    assert cancelled.queue_id == held and cancelled.domain is None


async def test_a_quarantine_release_continues_the_trace_and_discards_are_traced(
        env: Env) -> None:
    quarantine = Quarantine(env.directory.db, env.settings, trace=env.trace)
    service = QuarantineService(env.directory.db, env.settings, env.spool,
                                env.directory.filter, trace=env.trace)
    trace_id = new_id()
    data = message(SENDER, ANN, "Held")
    held_id = await quarantine.hold(sender=SENDER, peer="127.0.0.1", data=data, score=9.0,
                                    findings=(), holds=[Hold(ANN, "score 9")],
                                    trace_id=trace_id)
    other = await quarantine.hold(sender=SENDER, peer=None, data=data, score=9.0,
                                  findings=(), holds=[Hold(ANN, "score 9")],
                                  trace_id=trace_id)
    async with env.directory.db.session() as session:
        assert await session.scalar(select(QuarantinedMessage.trace_id).where(
            QuarantinedMessage.id == held_id)) == trace_id
        entries = {m: e for e, m in await session.execute(
            select(QuarantineEntry.id, QuarantineEntry.message_id))}

    released = await service.release(Actor.operator("olga"), entries[held_id], learn=False)
    [release] = await env.events(trace_id)
    assert story([release]) == [("release", "released")]
    assert detail(release) == {"quarantine_id": entries[held_id], "by": "olga"}
    assert (release.queue_id, release.recipient, release.domain) == (
        released.queue_id, ANN, "filtered.example")
    assert await env.trace_of(released.queue_id) == trace_id
    await env.worker.run_once()
    [received] = await env.customer.wait_for(1)
    assert received.recipients == [ANN]
    delivered = (await env.events(trace_id))[1]
    assert story([delivered]) == [("attempt", "delivered")]
    assert delivered.queue_id == released.queue_id

    await service.delete(OP, entries[other])
    discard = (await env.events(trace_id))[-1]
    assert story([discard]) == [("discard", "discarded")]
    assert detail(discard) == {"quarantine_id": entries[other], "reason": "deleted",
                               "by": "operator"}

    await quarantine.hold(sender=SENDER, peer=None, data=data, score=9.0,
                                     findings=(), holds=[Hold(ANN, "score 9")],
                                     trace_id=trace_id)
    assert await quarantine.purge(utcnow() + timedelta(days=365)) >= 1
    expired = (await env.events(trace_id))[-1]
    assert story([expired]) == [("discard", "discarded")]
    assert detail(expired)["reason"] == "expired" and expired.recipient == ANN
    assert detail(expired)["quarantine_id"] != entries[other]
