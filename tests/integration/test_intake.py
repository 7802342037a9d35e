"""MX intake: the filter verdict applies to Filter-list recipients only, and nothing is
acknowledged before the spool has it (real database, real spool)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from mailward.app import Services
from mailward.db import AddressList, QueuedMessage
from mailward.directory import Actor
from mailward.filter import FilterInput, FilterPipeline, Finding
from mailward.inbound.mx import MxIntake
from mailward.smtp.types import Envelope, RecipientParams

OP = Actor.operator()


@dataclass
class Fixed:
    score: float
    name: str = "fixed"

    async def __call__(self, message: FilterInput) -> Sequence[Finding]:
        self.seen = message.recipients
        return [Finding(self.name, self.score, "test")]


def envelope(*recipients: str) -> Envelope:
    return Envelope(
        sender="spammer@outside.example",
        recipients=tuple(RecipientParams(r, ("FAILURE",), f"rfc822;{r}") for r in recipients),
        data=b"Subject: offer\r\n\r\nbuy now\r\n", peer="192.0.2.9", helo="outside.example",
        tls=False,
    )


async def spooled(directory: Services) -> dict[str, bytes]:
    """Recipient → the bytes spooled for it."""
    async with directory.db.session() as session:
        messages = await session.scalars(
            select(QueuedMessage).options(selectinload(QueuedMessage.recipients)))
        result = {}
        for message in messages:
            data = await directory.queue.spool.read(message)
            for row in message.recipients:
                result[row.recipient] = data
        return result


async def setup(directory: Services) -> None:
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "acme.example", account="Acme")
    await directory.bulk.add_lines(OP, ["filtered@acme.example"], AddressList.FILTER)
    await directory.bulk.add_lines(OP, ["open@acme.example"], AddressList.NO_FILTER)


async def test_clean_mail_carries_the_verdict_for_filter_recipients_only(
        directory: Services) -> None:
    """Filter recipients' copy says "not spam" with the score and findings (clients' rules
    and customers' own servers act on it; a sender's own X-Spam-* fields are dropped);
    Do Not Filter recipients get the message as it came."""
    await setup(directory)
    check = Fixed(0.5)
    intake = MxIntake(directory.recipients, directory.queue.spool, FilterPipeline([check]))
    came = b"X-Spam-Flag: YES\r\nSubject: offer\r\n\r\nbuy now\r\n"
    reply = await intake.accept(replace(envelope("Filtered@acme.example", "open@acme.example"),
                                        data=came))
    assert reply.code == 250 and reply.text.startswith("Ok: queued as ")
    assert check.seen == ("filtered@acme.example",)  # only Filter-list recipients
    copies = await spooled(directory)
    assert copies["open@acme.example"] == came
    assert copies["filtered@acme.example"] == (
        b"X-Spam-Flag: NO\r\nX-Spam-Score: 0.5\r\nX-Spam-Status: No, score=0.5 "
        b"tests=fixed=0.5\r\nSubject: offer\r\n\r\nbuy now\r\n")
    entries = (await directory.queue.list(OP)).items
    assert {entry.queue_id for entry in entries} == set(reply.text.split(" as ")[1].split())


async def test_spam_is_tagged_for_filter_recipients_only(directory: Services) -> None:
    await setup(directory)
    intake = MxIntake(directory.recipients, directory.queue.spool, FilterPipeline([Fixed(6)]))
    reply = await intake.accept(envelope("filtered@acme.example", "open@acme.example"))
    assert reply.code == 250
    copies = await spooled(directory)
    assert copies["filtered@acme.example"].startswith(b"X-Spam-Flag: YES\r\n")
    assert b"X-Spam" not in copies["open@acme.example"]


async def test_spam_for_filter_recipients_only_is_refused(directory: Services) -> None:
    await setup(directory)
    intake = MxIntake(directory.recipients, directory.queue.spool, FilterPipeline([Fixed(50)]))
    reply = await intake.accept(envelope("filtered@acme.example"))
    assert (reply.code, reply.status) == (550, "5.7.1")
    assert await spooled(directory) == {}
    # With a Do Not Filter recipient in the same transaction the message cannot be
    # refused for them: they get it untouched, the filtered recipient a tagged copy.
    reply = await intake.accept(envelope("filtered@acme.example", "open@acme.example"))
    assert reply.code == 250
    assert b"X-Spam" not in (await spooled(directory))["open@acme.example"]
