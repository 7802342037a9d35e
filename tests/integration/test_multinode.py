"""Several nodes on one PostgreSQL: workers never share a claimed row, a worker on one
node wakes (LISTEN/NOTIFY) for mail another node accepted, without waiting to poll, and a
login lock earned on one node's POP3 holds on the other's (and is lifted on both)."""

from __future__ import annotations

import asyncio
import poplib
from collections.abc import AsyncIterator

import pytest
from hosting_helpers import client_tls, ports
from mail_helpers import eventually, mail_roles, mail_settings, sink_server
from sqlalchemy import text

from mailward.app import Services
from mailward.config import Settings
from mailward.db import AddressList, Database
from mailward.directory import Actor
from mailward.queue.local import LocalDelivery
from mailward.queue.spool import NewRecipient, Spool
from mailward.queue.worker import DeliveryWorker
from mailward.store import open_store

OP = Actor.operator()
pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def node(db: Database, settings: Settings, name: str) -> DeliveryWorker:
    configured = settings.model_copy(update={"smtp_hostname": name})
    spool = Spool(db, configured.data_dir)
    local = LocalDelivery(db, open_store(configured, db), spool)
    return DeliveryWorker(db, configured, spool, local)


@pytest.fixture
async def nodes(settings: Settings, directory: Services
                ) -> AsyncIterator[tuple[DeliveryWorker, DeliveryWorker]]:
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "acme.example", account="Acme")
    await directory.bulk.add_lines(OP, ["ann@acme.example"], AddressList.FILTER)
    other = Database(settings.db_url)  # the second node's own connections
    try:
        yield node(directory.db, settings, "mx1.example.net"), node(other, settings,
                                                                     "mx2.example.net")
    finally:
        await other.dispose()


async def test_concurrent_claims_never_overlap(nodes: tuple[DeliveryWorker, DeliveryWorker]
                                               ) -> None:
    first, second = nodes
    for number in range(40):
        await first.spool.enqueue(sender="a@outside.example",
                                  recipients=[NewRecipient("ann@acme.example")],
                                  data=f"Subject: {number}\r\n\r\nx\r\n".encode(), origin="mx")
    claims = await asyncio.gather(*(w.claim(25) for w in (first, second, first, second)))
    claimed = [job.message_id for jobs in claims for job in jobs]
    assert len(claimed) == len(set(claimed)) == 40


async def test_a_worker_wakes_for_mail_accepted_on_another_node(
    settings: Settings, nodes: tuple[DeliveryWorker, DeliveryWorker], directory: Services
) -> None:
    accepting, _ = nodes
    async with sink_server() as customer:
        await directory.servers.add(OP, "acme.example", customer.address, preference=10)
        # The delivering node polls only every 10 minutes: only NOTIFY can wake it in time.
        slow = mail_settings(settings, queue_poll_seconds=600, smtp_hostname="mx2.example.net")
        other = Database(settings.db_url)
        worker = node(other, slow, "mx2.example.net")
        task = asyncio.create_task(worker.run())
        try:
            await eventually(lambda: _listening(directory.db))
            await accepting.spool.enqueue(sender="a@outside.example",
                                          recipients=[NewRecipient("ann@acme.example")],
                                          data=b"Subject: woken\r\n\r\nx\r\n", origin="mx")
            [got] = await customer.wait_for(1)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await other.dispose()
    assert got.message["Subject"] == "woken"


async def _listening(db: Database) -> bool:
    async with db.session() as session:
        found = await session.scalar(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND query LIKE 'LISTEN%mailward_queue%'"))  # not another test run's listener
    return bool(found)


async def test_a_login_lock_holds_on_every_node(settings: Settings, directory: Services
                                                ) -> None:
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "acme.example", account="Acme", hosting=True)
    await directory.bulk.add_lines(OP, ["bob@acme.example|Mailbox-pass-77"],
                                   AddressList.NO_FILTER)
    configured = mail_settings(settings)
    tries = configured.auth_failures_per_window

    def logins(port: int, passwords: list[str]) -> list[str]:
        with_tls = poplib.POP3("127.0.0.1", port, timeout=30)
        with_tls.stls(context=client_tls())
        answers = []
        for password in passwords:
            with_tls.user("bob@acme.example")
            try:
                answers.append(with_tls.pass_(password).decode())
                break
            except poplib.error_proto as exc:
                answers.append(exc.args[0].decode())
        with_tls.quit()
        return answers

    async with mail_roles(configured, frozenset({"pop3"})) as first, \
            mail_roles(configured, frozenset({"pop3"})) as second:
        one, two = ports(first["pop3"])[0], ports(second["pop3"])[0]
        guesses = await asyncio.to_thread(logins, one, ["guess"] * tries)
        assert all(a.startswith("-ERR [AUTH]") for a in guesses)
        [refused] = await asyncio.to_thread(logins, two, ["Mailbox-pass-77"])
        assert refused.startswith("-ERR [SYS/TEMP] Too many failed logins")
        other = Database(settings.db_url)  # the admin's unlock, through a third node
        try:
            view = await Services(other, configured).mail_login.unlock(
                OP, directory.addresses, "bob@acme.example")
        finally:
            await other.dispose()
        assert view.locked_seconds == 0
        [welcome] = await asyncio.to_thread(logins, one, ["Mailbox-pass-77"])
        assert welcome.startswith("+OK")
