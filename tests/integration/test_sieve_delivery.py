"""Sieve at local delivery on both stores (SQLite + Maildir, PostgreSQL + its store): the
active script files by subject into a folder with a flag, discards, redirects, and its
vacation answers once per sender (never a list message), through the real queue."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from mailward.app import Services
from mailward.config import Settings
from mailward.core.errors import Conflict, InvalidInput, NotFound
from mailward.db import AddressList
from mailward.db.models import QueuedMessage
from mailward.directory import Actor
from mailward.queue.local import LocalDelivery
from mailward.queue.spool import NewRecipient
from mailward.queue.worker import DeliveryWorker
from mailward.sieve.scripts import SieveScripts
from mailward.store import FLAGGED, MailStore, open_store

OP = Actor.operator()
ANN = "ann@hosted.example"
BOB = "bob@hosted.example"
SENDER = "zoe@outside.example"

SCRIPT = """require ["fileinto", "imap4flags", "vacation", "mailbox", "variables", "copy"];
if header :matches "subject" "Invoice *" {
    fileinto :create :flags "\\\\Flagged" "Bills/${1}";
    stop;
}
if header :contains "subject" "spam" { discard; stop; }
if address :is "from" "boss@outside.example" { redirect :copy "bob@hosted.example"; }
vacation :days 3 :subject "Away" "I am away until Monday.";
"""


def mail(subject: str, *, sender: str = SENDER, extra: str = "") -> bytes:
    return (f"From: {sender}\r\nTo: Ann <{ANN}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{abs(hash((subject, sender, extra)))}@outside.example>\r\n"
            f"{extra}\r\nHello\r\n").encode()


@dataclass
class Env:
    services: Services
    store: MailStore
    worker: DeliveryWorker
    scripts: SieveScripts

    async def deliver(self, data: bytes, *, sender: str = SENDER) -> int:
        """Deliver through the queue; the vacation replies it queued (a reply is relayed,
        and gone, with the next run)."""
        await self.services.spool.enqueue(sender=sender, recipients=[NewRecipient(ANN)],
                                          data=data, origin="mx")
        assert await self.worker.run_once() >= 1  # with the replies queued before
        return len(await self.queued("vacation"))

    async def queued(self, origin: str) -> list[QueuedMessage]:
        async with self.services.db.session() as session:
            return list((await session.scalars(select(QueuedMessage).where(
                QueuedMessage.origin == origin))).all())


@pytest.fixture
async def env(settings: Settings, directory: Services) -> AsyncIterator[Env]:
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "hosted.example", account="Acme", hosting=True)
    await directory.servers.auto_configure_hosting(OP, "hosted.example")
    await directory.bulk.add_lines(OP, [f"{ANN}|Mailbox-pass-77", f"{BOB}|Mailbox-pass-77"],
                                   AddressList.NO_FILTER)
    configured = settings.model_copy(update={
        "store_backend": "postgresql" if settings.db_url.startswith("postgresql") else "maildir"})
    services = Services(directory.db, configured)
    store = open_store(configured, services.db)
    local = LocalDelivery(services.db, store, services.spool)
    scripts = SieveScripts(services.db)
    await scripts.put(ANN, "rules", SCRIPT)
    await scripts.set_active(ANN, "rules")
    yield Env(services, store, DeliveryWorker(services.db, configured, services.spool, local),
              scripts)


async def test_script_files_flags_discards_and_answers_once(env: Env) -> None:
    assert await env.deliver(mail("Invoice March")) == 0  # stop came before vacation
    [filed] = await env.store.messages(ANN, "Bills/March")
    assert FLAGGED in filed.flags
    assert await env.store.messages(ANN, "INBOX") == []  # filed, not kept

    await env.deliver(mail("spam offer"))
    assert await env.store.messages(ANN, "INBOX") == []  # discarded

    assert await env.deliver(mail("Lunch?")) == 1
    assert len(await env.store.messages(ANN, "INBOX")) == 1  # implicit keep
    [reply] = await env.queued("vacation")
    assert reply.sender == ""  # RFC 5230: the null envelope sender
    # the same sender within :days: no second reply; list and automatic mail: none
    assert await env.deliver(mail("Lunch again?")) == 0
    assert await env.deliver(mail("News", sender="news@lists.example",
                                  extra="List-Id: <news.lists.example>\r\n"),
                             sender="news@lists.example") == 0
    assert await env.deliver(mail("Re: x", sender="robot@outside.example",
                                  extra="Auto-Submitted: auto-replied\r\n"),
                             sender="robot@outside.example") == 0
    assert len(await env.store.messages(ANN, "INBOX")) == 4


async def test_redirect_copy_reaches_the_other_mailbox(env: Env) -> None:
    await env.deliver(mail("Report", sender="boss@outside.example"),
                      sender="boss@outside.example")
    assert len(await env.store.messages(ANN, "INBOX")) == 1  # :copy keeps it
    assert len(await env.queued("redirect")) == 1
    assert await env.worker.run_once() >= 1  # the redirected copy, delivered locally
    assert len(await env.store.messages(BOB, "INBOX")) == 1


async def test_storage_refuses_bad_scripts_and_guards_the_active_one(env: Env) -> None:
    with pytest.raises(InvalidInput, match="line 2"):
        await env.scripts.put(ANN, "bad", 'require "fileinto";\nfileinto "x" "y";\n')
    with pytest.raises(InvalidInput, match="unsupported extension 'reject'"):
        await env.scripts.check('require "reject";\nreject "no";')
    with pytest.raises(Conflict):
        await env.scripts.delete(ANN, "rules")
    await env.scripts.put(ANN, "other", "keep;")
    await env.scripts.rename(ANN, "other", "second")
    infos = await env.scripts.list(ANN)
    assert [(i.name, i.active) for i in infos] == [("rules", True), ("second", False)]
    await env.scripts.set_active(ANN, "second")
    assert await env.scripts.active(ANN) == "keep;"
    await env.scripts.delete(ANN, "rules")
    with pytest.raises(NotFound):
        await env.scripts.get(ANN, "rules")
    await env.scripts.set_active(ANN, None)
    assert await env.scripts.active(ANN) is None
