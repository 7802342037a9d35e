"""Group commit of the queue's hot writes (``mailward.queue.group_commit``): concurrent
messages share one transaction, nobody is answered before their group committed, and a
failed group fails every member with nothing of theirs queued (real database, real spool).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from mail_helpers import refused_queue_rows
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailward.app import Services
from mailward.db import AddressList, QueuedMessage, QueuedRecipient
from mailward.directory import Actor
from mailward.inbound.mx import MxIntake
from mailward.queue.group_commit import GroupCommitter, QueueRows
from mailward.smtp.types import Envelope, RecipientParams

OP = Actor.operator()


def envelope(recipient: str, n: int) -> Envelope:
    return Envelope(sender="someone@outside.example",
                    recipients=(RecipientParams(recipient, (), None),),
                    data=f"Subject: n{n}\r\n\r\nhello\r\n".encode(), peer="192.0.2.9",
                    helo="outside.example", tls=False)


async def counts(directory: Services) -> tuple[int, int]:
    async with directory.db.session() as session:
        return (await session.scalar(select(func.count()).select_from(QueuedMessage)) or 0,
                await session.scalar(select(func.count()).select_from(QueuedRecipient)) or 0)


class Gate:
    """Holds the committer's group in flight (its one member waits) until ``open``."""

    def __init__(self, group: GroupCommitter) -> None:
        self.entered, self.released = asyncio.Event(), asyncio.Event()
        self.task = asyncio.create_task(group.run(self._work))

    async def _work(self, _session: AsyncSession, _rows: QueueRows) -> None:
        self.entered.set()
        await self.released.wait()

    async def open(self) -> None:
        self.released.set()
        await self.task


def count_arrivals(group: GroupCommitter, monkeypatch: pytest.MonkeyPatch, expected: int
                   ) -> asyncio.Event:
    """An event set once ``expected`` callers have handed their work to ``group``."""
    arrived, seen, run = asyncio.Event(), [0], group.run

    def counted(work: Callable[[AsyncSession, QueueRows], Awaitable[Any]]) -> Awaitable[Any]:
        seen[0] += 1
        if seen[0] >= expected:
            arrived.set()
        return run(work)

    monkeypatch.setattr(group, "run", counted)
    return arrived


@pytest.fixture
async def intake(directory: Services) -> MxIntake:
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "acme.example", account="Acme")
    await directory.bulk.add_lines(OP, ["ann@acme.example", "bob@acme.example"],
                                   AddressList.NO_FILTER)
    return MxIntake(directory.recipients, directory.queue.spool)


async def test_concurrent_messages_share_one_transaction_and_wait_for_it(
        directory: Services, intake: MxIntake, monkeypatch: pytest.MonkeyPatch) -> None:
    group = directory.queue.spool.group
    gate = Gate(group)
    await gate.entered.wait()  # a group is committing: newcomers gather for the next one
    arrived = count_arrivals(group, monkeypatch, 5)
    accepts = [asyncio.create_task(intake.accept(envelope("ann@acme.example", n)))
               for n in range(5)]
    await arrived.wait()
    assert not any(a.done() for a in accepts)  # joined, and not answered before the commit
    assert await counts(directory) == (0, 0)
    before = group.groups
    await gate.open()
    replies = await asyncio.gather(*accepts)
    assert all(r.code == 250 for r in replies)
    assert group.groups == before + 1  # all five in one transaction
    assert await counts(directory) == (5, 5)


async def test_a_failed_group_fails_every_member_and_queues_none_of_them(
        directory: Services, intake: MxIntake, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = directory.queue.spool
    async with refused_queue_rows(directory.db, "bob@acme.example"):
        gate = Gate(spool.group)
        await gate.entered.wait()
        arrived = count_arrivals(spool.group, monkeypatch, 2)
        good = asyncio.create_task(intake.accept(envelope("ann@acme.example", 1)))
        bad = asyncio.create_task(intake.accept(envelope("bob@acme.example", 2)))
        await arrived.wait()
        await gate.open()
        results = await asyncio.gather(good, bad, return_exceptions=True)
        # each is refused (the MX answers 451), nothing of either is queued or left behind
        assert all(isinstance(r, Exception) for r in results)
        assert await counts(directory) == (0, 0)
        if not spool.in_database:
            assert not [p for p in spool.root.glob("*/*") if p.is_file()]
        # the innocent member's retry, in a group of its own, goes through
        assert (await intake.accept(envelope("ann@acme.example", 1))).code == 250
    assert await counts(directory) == (1, 1)


async def test_an_idle_committer_commits_at_once(directory: Services,
                                                 intake: MxIntake) -> None:
    """No waiting for company: a lone message is its own group."""
    group = directory.queue.spool.group
    before = group.groups
    for n in range(3):
        assert (await intake.accept(envelope("ann@acme.example", n))).code == 250
    assert group.groups == before + 3
    assert await counts(directory) == (3, 3)
