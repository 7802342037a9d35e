"""Delivery workers against real SMTP sinks and the real database, one pass at a time.

``DeliveryWorker.run_once`` delivers what is due in the test's own task, so each test
can look at the queue between passes: retries, backoff, expiry, DSNs and loops.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from mail_helpers import Sink, mail_settings, message, refused_queue_rows, sink_server
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

from mailward.app import Services
from mailward.config import Settings
from mailward.db import AddressList, QueuedMessage, QueuedRecipient, QueueStatus
from mailward.db.models import utcnow
from mailward.directory import Actor
from mailward.queue.local import LocalDelivery
from mailward.queue.spool import NewRecipient
from mailward.queue.worker import HELD_ELSEWHERE_SECONDS, DeliveryWorker
from mailward.store import open_store

OP = Actor.operator()
SENDER = "origin@outside.example"


@dataclass
class Env:
    directory: Services
    worker: DeliveryWorker
    relay: Sink  # smarthost for mail leaving us: DSNs to outside senders, forwards
    customer: Sink  # filtered.example's server (preference 10)

    async def queue(self, body: bytes = b"", *, to: list[str], sender: str = SENDER,
                    **extra: object) -> str:
        data = body or message(sender, to[0], "Test")
        return await self.directory.queue.spool.enqueue(
            sender=sender, recipients=[NewRecipient(a, **extra) for a in to],  # type: ignore[arg-type]
            data=data, origin="mx")

    async def rows(self) -> list[QueuedRecipient]:
        async with self.directory.db.session() as session:
            return list(await session.scalars(select(QueuedRecipient)
                                              .order_by(QueuedRecipient.id)))

    async def make_due(self) -> None:
        async with self.directory.db.session() as session, session.begin():
            await session.execute(update(QueuedRecipient).values(next_attempt_at=utcnow()))

    async def age(self, seconds: float) -> None:
        """Pretend every queued message arrived ``seconds`` ago."""
        async with self.directory.db.session() as session, session.begin():
            await session.execute(update(QueuedMessage).values(
                received_at=utcnow() - timedelta(seconds=seconds)))


@pytest.fixture
async def env(settings: Settings, directory: Services) -> AsyncIterator[Env]:
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "filtered.example", account="Acme")
    await directory.domains.create(OP, "hosted.example", account="Acme", hosting=True)
    await directory.servers.auto_configure_hosting(OP, "hosted.example")
    for line, list_ in (("ann@filtered.example", AddressList.FILTER),
                        ("carol@hosted.example|Secret-pass-9", AddressList.NO_FILTER)):
        await directory.bulk.add_lines(OP, [line], list_)
    async with sink_server() as relay, sink_server() as customer:
        configured = mail_settings(settings, relay_host=relay.address)
        directory = Services(directory.db, configured)
        await directory.servers.add(OP, "filtered.example", customer.address, preference=10)
        spool = directory.queue.spool
        local = LocalDelivery(directory.db, open_store(configured, directory.db), spool)
        yield Env(directory, DeliveryWorker(directory.db, configured, spool, local),
                  relay, customer)


def parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def delivery_status(report: email.message.EmailMessage) -> list[email.message.Message]:
    """The per-message block and per-recipient blocks of a DSN."""
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    [part] = [p for p in report.walk() if p.get_content_type() == "message/delivery-status"]
    return list(part.get_payload())  # type: ignore[arg-type]


async def test_a_refusal_bounces_to_the_sender_with_an_rfc3464_report(env: Env) -> None:
    env.customer.rcpt = lambda _a: "550 5.1.1 no such mailbox at the customer"
    original = message(SENDER, "ann@filtered.example", "Will bounce")
    await env.queue(original, to=["ann@filtered.example"],
                    orcpt="rfc822;Ann@Filtered.example")
    assert await env.worker.run_once() == 1
    assert await env.rows() != []  # the DSN itself, waiting for its pass
    await env.worker.run_once()
    [dsn] = await env.relay.wait_for(1)
    assert dsn.sender == "" and dsn.recipients == [SENDER]
    report = parse(dsn.data)
    assert report["Auto-Submitted"] == "auto-replied"
    _, per_recipient = delivery_status(report)
    assert per_recipient["Action"] == "failed"
    assert per_recipient["Status"] == "5.1.1"
    assert per_recipient["Final-Recipient"].endswith("ann@filtered.example")
    assert per_recipient["Original-Recipient"] == "rfc822;Ann@Filtered.example"
    assert "no such mailbox at the customer" in per_recipient["Diagnostic-Code"]
    assert per_recipient["Remote-MTA"].endswith("127.0.0.1")
    [attached] = [p for p in report.walk() if p.get_content_type() == "message/rfc822"]
    assert attached.get_payload()[0]["Subject"] == "Will bounce"
    assert await env.rows() == []


async def test_a_bounce_commits_with_the_failure_it_reports(env: Env) -> None:
    """The failed recipient leaves the queue in the same transaction that queues its
    bounce: when the bounce cannot be queued, the failure stays queued (and is reported
    on a later pass) instead of vanishing without a report."""
    env.customer.rcpt = lambda _a: "550 5.1.1 no such mailbox at the customer"
    await env.queue(to=["ann@filtered.example"])
    async with refused_queue_rows(env.directory.db, SENDER):
        with pytest.raises(DBAPIError):  # in the server, logged; the lease then runs out
            await env.worker.run_once()
        assert [r.recipient for r in await env.rows()] == ["ann@filtered.example"]
    await env.make_due()
    await env.worker.release_own_leases()
    await env.worker.run_once()  # the failure again, and now its bounce
    assert [r.recipient for r in await env.rows()] == [SENDER]
    await env.worker.run_once()
    [dsn] = await env.relay.wait_for(1)
    assert dsn.recipients == [SENDER] and await env.rows() == []


async def test_no_bounce_is_ever_sent_to_the_null_sender(env: Env) -> None:
    env.customer.rcpt = lambda _a: "550 5.1.1 gone"
    await env.queue(to=["ann@filtered.example"], sender="")
    assert await env.worker.run_once() == 1
    assert await env.rows() == []  # bounced, and no DSN was queued
    assert await env.worker.run_once() == 0
    assert env.relay.received == []


async def test_a_temporary_failure_is_retried_with_backoff_then_delivered(env: Env) -> None:
    answers = iter(["451 4.3.0 try later", None])
    env.customer.rcpt = lambda _a: next(answers)
    await env.queue(to=["ann@filtered.example"])
    await env.worker.run_once()
    [row] = await env.rows()
    assert row.status == "deferred" and row.attempts == 1
    assert "451 4.3.0 try later" in row.last_error
    assert row.next_attempt_at > utcnow()  # backoff: not due again yet
    assert await env.worker.run_once() == 0
    await env.make_due()
    await env.worker.run_once()
    [got] = await env.customer.wait_for(1)
    assert got.recipients == ["ann@filtered.example"]
    assert await env.rows() == []


async def test_4xx_moves_on_to_the_next_server_by_preference(env: Env) -> None:
    env.customer.data = lambda _e: "451 4.3.2 busy"
    async with sink_server() as backup, sink_server() as first_choice:
        first_choice.rcpt = lambda _a: "421 4.3.2 shutting down"
        await env.directory.servers.add(OP, "filtered.example", backup.address, preference=20)
        await env.directory.servers.add(OP, "filtered.example", first_choice.address,
                                        preference=5)
        await env.queue(to=["ann@filtered.example"])
        await env.worker.run_once()
        [got] = await backup.wait_for(1)
    assert got.recipients == ["ann@filtered.example"]
    assert first_choice.connections == 1 and env.customer.connections == 1
    assert await env.rows() == []


async def test_an_unreachable_server_is_skipped_and_the_error_kept(env: Env) -> None:
    async with sink_server() as gone:
        dead = gone.address
    await env.directory.servers.delete(OP, "filtered.example", env.customer.address)
    await env.directory.servers.add(OP, "filtered.example", dead, preference=1)
    await env.queue(to=["ann@filtered.example"])
    await env.worker.run_once()
    [row] = await env.rows()
    assert row.status == "deferred"
    assert row.last_error.startswith("4.4.1 cannot connect to " + dead)


async def test_mail_that_outlives_the_queue_lifetime_bounces(env: Env) -> None:
    env.customer.rcpt = lambda _a: "450 4.2.0 mailbox busy"
    await env.queue(to=["ann@filtered.example"])
    await env.age(env.worker.settings.queue_lifetime_seconds + 60)
    await env.worker.run_once()
    await env.worker.run_once()
    [dsn] = await env.relay.wait_for(1)
    _, per_recipient = delivery_status(parse(dsn.data))
    assert per_recipient["Action"] == "failed"
    assert per_recipient["Status"] == "4.4.7"
    assert "450 4.2.0 mailbox busy" in per_recipient["Diagnostic-Code"]
    assert await env.rows() == []


async def test_a_delay_warning_is_sent_once_and_the_mail_kept(env: Env) -> None:
    env.customer.rcpt = lambda _a: "451 4.4.1 later"
    await env.queue(to=["ann@filtered.example"])
    await env.age(env.worker.settings.delay_warning_seconds + 60)
    await env.worker.run_once()  # deferred + delay DSN queued
    await env.worker.run_once()  # the DSN goes out
    [dsn] = await env.relay.wait_for(1)
    _, per_recipient = delivery_status(parse(dsn.data))
    assert per_recipient["Action"] == "delayed"
    assert per_recipient["Will-Retry-Until"]
    [row] = [r for r in await env.rows()]
    assert row.delay_warned and row.attempts == 1
    await env.make_due()
    await env.worker.run_once()
    assert len(env.relay.received) == 1  # no second warning
    assert (await env.rows())[0].attempts == 2


async def test_notify_never_suppresses_the_bounce(env: Env) -> None:
    env.customer.rcpt = lambda _a: "550 5.1.1 gone"
    await env.queue(to=["ann@filtered.example"], notify=("NEVER",))
    await env.worker.run_once()
    assert await env.rows() == []
    assert await env.worker.run_once() == 0


async def test_a_forwarding_loop_is_bounced_not_delivered(env: Env) -> None:
    for address, target in (("loop1@hosted.example", "loop2@hosted.example"),
                            ("loop2@hosted.example", "loop1@hosted.example")):
        await env.directory.bulk.add_lines(OP, [f"{address}|{target}|relay"],
                                           AddressList.NO_FILTER)
    await env.queue(to=["loop1@hosted.example"])
    for _ in range(5):
        await env.worker.run_once()
    [dsn] = await env.relay.wait_for(1)
    _, per_recipient = delivery_status(parse(dsn.data))
    assert per_recipient["Status"] == "5.4.6"
    assert "loop" in per_recipient["Diagnostic-Code"]
    assert await env.rows() == []


async def test_a_forwarder_requeues_to_its_destinations(env: Env) -> None:
    await env.directory.bulk.add_lines(
        OP, ["fwd@hosted.example|ext@elsewhere.example,carol@hosted.example|relay"],
        AddressList.NO_FILTER)
    await env.queue(to=["fwd@hosted.example"])
    await env.worker.run_once()  # expands the forwarder into a new queued message
    rows = await env.rows()
    assert sorted(r.recipient for r in rows) == ["carol@hosted.example", "ext@elsewhere.example"]
    await env.worker.run_once()
    [out] = await env.relay.wait_for(1)
    assert out.recipients == ["ext@elsewhere.example"] and out.sender == SENDER
    assert parse(out.data)["Delivered-To"] == "fwd@hosted.example"
    store = env.worker.local.store
    [info] = await store.messages("carol@hosted.example", "INBOX")
    data = await store.fetch("carol@hosted.example", "INBOX", info.uid)
    assert data.startswith(
        b"Delivered-To: carol@hosted.example\r\nDelivered-To: fwd@hosted.example")


async def test_auto_cc_keeps_a_copy_and_forwards_one(env: Env) -> None:
    await env.directory.bulk.add_lines(OP, ["cc@hosted.example|Secret-pass-9"],
                                       AddressList.NO_FILTER)
    await env.directory.addresses.set_autocc(OP, "cc@hosted.example", "boss@elsewhere.example")
    await env.queue(to=["cc@hosted.example"])
    await env.worker.run_once()
    await env.worker.run_once()
    [out] = await env.relay.wait_for(1)
    assert out.recipients == ["boss@elsewhere.example"]
    assert len(await env.worker.local.store.messages("cc@hosted.example", "INBOX")) == 1


async def test_a_full_mailbox_defers_and_never_drops(env: Env) -> None:
    await env.directory.addresses.set_quota(OP, "carol@hosted.example", 10)
    await env.queue(to=["carol@hosted.example"])
    await env.worker.run_once()
    [row] = await env.rows()
    assert row.status == "deferred" and row.last_error.startswith("4.2.2 ")
    await env.directory.addresses.set_quota(OP, "carol@hosted.example", None)
    await env.make_due()
    await env.worker.run_once()
    assert await env.rows() == []
    assert len(await env.worker.local.store.messages("carol@hosted.example", "INBOX")) == 1


async def test_a_pending_address_keeps_its_mail_until_it_is_set_up(env: Env) -> None:
    await env.directory.bulk.add_lines(OP, ["new@hosted.example"], AddressList.NO_FILTER)
    await env.queue(to=["new@hosted.example"])
    await env.worker.run_once()
    [row] = await env.rows()
    assert row.status == "deferred" and "pending setup" in row.last_error
    await env.directory.addresses.setup_mailbox(OP, "new@hosted.example", "Fresh-pass-77",
                                                "Fresh-pass-77")
    await env.make_due()
    await env.worker.run_once()
    assert await env.rows() == []
    assert len(await env.worker.local.store.messages("new@hosted.example", "INBOX")) == 1


async def test_a_domain_without_mail_servers_holds_its_mail(env: Env) -> None:
    await env.directory.servers.delete(OP, "filtered.example", env.customer.address)
    await env.queue(to=["ann@filtered.example"])
    await env.worker.run_once()
    [entry] = (await env.directory.queue.list(OP, status="held")).items
    assert entry.recipient == "ann@filtered.example"
    assert "no mail server settings" in (entry.last_error or "")
    # Adding a server releases held mail at once (no waiting out the backoff).
    await env.directory.servers.add(OP, "filtered.example", env.customer.address, preference=10)
    await env.worker.run_once()
    [got] = await env.customer.wait_for(1)
    assert got.recipients == ["ann@filtered.example"]


async def test_a_bounce_to_a_hosted_sender_lands_in_their_mailbox(env: Env) -> None:
    env.customer.rcpt = lambda _a: "550 5.7.1 refused"
    await env.queue(to=["ann@filtered.example"], sender="carol@hosted.example")
    await env.worker.run_once()
    await env.worker.run_once()
    store = env.worker.local.store
    [info] = await store.messages("carol@hosted.example", "INBOX")
    report = parse(await store.fetch("carol@hosted.example", "INBOX", info.uid))
    _, per_recipient = delivery_status(report)
    assert per_recipient["Status"] == "5.7.1"


async def test_spool_file_is_removed_once_every_recipient_is_done(env: Env) -> None:
    queue_id = await env.queue(to=["ann@filtered.example"])
    spool = env.directory.queue.spool
    if not spool.in_database:
        assert spool.path_of(queue_id).exists()
    await env.worker.run_once()
    await env.customer.wait_for(1)
    assert not spool.path_of(queue_id).exists()
    async with env.directory.db.session() as session:
        assert await session.scalar(select(QueuedMessage.id)) is None


async def test_an_idle_worker_wakes_when_a_retry_falls_due(env: Env) -> None:
    """Retries do not wait for the (here: ten-minute) poll interval."""
    answers = iter(["451 4.3.0 try later", None])
    env.customer.rcpt = lambda _a: next(answers)
    lazy = env.worker.settings.model_copy(update={"queue_poll_seconds": 600,
                                                  "retry_first_seconds": 1})
    worker = DeliveryWorker(env.directory.db, lazy, env.worker.spool, env.worker.local)
    await env.queue(to=["ann@filtered.example"])
    task = asyncio.create_task(worker.run())
    try:
        [got] = await env.customer.wait_for(1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert got.recipients == ["ann@filtered.example"]


async def test_an_idle_worker_waits_for_the_next_retry_or_lease_end(env: Env) -> None:
    """Idle, the worker sleeps until the earliest retry or lease end (capped by the poll
    interval); a row due already is being claimed elsewhere: look again shortly, no spin."""
    lazy = env.worker.settings.model_copy(update={"queue_poll_seconds": 600})
    worker = DeliveryWorker(env.directory.db, lazy, env.worker.spool, env.worker.local)
    assert await worker._idle_seconds() == 600  # an empty queue: the poll interval
    await env.queue(to=["ann@filtered.example"])
    assert await worker._idle_seconds() == HELD_ELSEWHERE_SECONDS
    [job] = await worker.claim(10)
    async with env.directory.db.session() as session, session.begin():
        await session.execute(update(QueuedRecipient).values(lease_until=utcnow()
                                                             + timedelta(seconds=40)))
    assert 30 < await worker._idle_seconds() <= 40  # a crashed node's lease runs out
    async with env.directory.db.session() as session, session.begin():
        await session.execute(update(QueuedRecipient).values(
            status=QueueStatus.DEFERRED, lease_until=None,
            next_attempt_at=utcnow() + timedelta(seconds=20)))
    assert 10 < await worker._idle_seconds() <= 20  # the retry time
    assert job.recipient_ids


async def test_mail_deleted_by_an_admin_mid_delivery_sends_no_bounce(env: Env) -> None:
    env.customer.rcpt = lambda _a: "550 5.1.1 gone"
    queue_id = await env.queue(to=["ann@filtered.example"])
    [job] = await env.worker.claim(10)  # a worker has it in hand ...
    await env.directory.queue.delete(OP, queue_id)  # ... when the operator deletes it
    await env.worker.deliver(job)
    assert await env.rows() == []
    assert await env.worker.run_once() == 0  # no DSN was queued


async def test_a_restarted_worker_frees_only_its_own_leases(env: Env) -> None:
    """Leases are per worker process: worker 1 restarting frees what worker 1 held, not
    what its live sibling holds; worker 0 also frees the leases of workers the node no
    longer runs (and of the node name alone, as written before leases were per worker)."""
    base = env.worker.settings.model_copy(update={"workers": 2})
    node = base.node_name
    for owner in (f"{node}/0", f"{node}/1", f"{node}/5", node, "other-node/0"):
        await env.queue(to=["ann@filtered.example"], sender=f"{owner.replace('/', '.')}@x.example")
    async with env.directory.db.session() as session, session.begin():
        ids = list(await session.scalars(select(QueuedRecipient.id)
                                         .order_by(QueuedRecipient.id)))
        for rid, owner in zip(ids, (f"{node}/0", f"{node}/1", f"{node}/5", node,
                                    "other-node/0"), strict=True):
            await session.execute(update(QueuedRecipient).where(QueuedRecipient.id == rid)
                                  .values(status=QueueStatus.ACTIVE, lease_owner=owner,
                                          lease_until=utcnow() + timedelta(hours=1)))

    def worker(index: int) -> DeliveryWorker:
        settings = base.model_copy(update={"worker_index": index})
        return DeliveryWorker(env.directory.db, settings, env.worker.spool, env.worker.local)

    async def held() -> list[str | None]:
        return [r.lease_owner for r in await env.rows()]

    assert await worker(1).release_own_leases() == 1
    assert await held() == [f"{node}/0", None, f"{node}/5", node, "other-node/0"]
    assert await worker(0).release_own_leases() == 3
    assert await held() == [None, None, None, None, "other-node/0"]
