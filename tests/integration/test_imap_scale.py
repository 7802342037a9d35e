"""IMAP at scale (issue 18): an idling session costs no store call while nothing changes,
and SELECT costs a fixed number of statements whatever the folder's size."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from store_helpers import (
    ANN,
    Auth,
    Client,
    empty_store_db,
    imap,
    pg_or_maildir_fixture,  # noqa: F401 - the fixture pg_or_maildir
    statements,
)

from mailward.imap.session import ImapServices
from mailward.store import INBOX, MaildirStore, MailStore, MessageInfo, NotifyingStore
from mailward.store.events import MailboxEvents
from mailward.store.postgres import PostgresStore


def _message(n: int) -> bytes:
    return (f"From: s{n}@example.org\r\nTo: {ANN}\r\nSubject: m {n}\r\n"
            f"Message-ID: <m{n}@t>\r\n\r\nbody {n}\r\n").encode()


@pytest.fixture
async def store(pg_or_maildir: str | None, tmp_path: Path) -> AsyncIterator[MailStore]:
    if pg_or_maildir is None:
        yield MaildirStore(tmp_path / "mail")
        return
    db = await empty_store_db(pg_or_maildir)
    try:
        yield PostgresStore(db)
    finally:
        await db.dispose()


class CountingStore:
    """Passes every call to ``inner``, counting the folder listings."""

    def __init__(self, inner: MailStore) -> None:
        self.inner = inner
        self.listings = 0

    async def messages(self, mailbox: str, folder: str) -> list[MessageInfo]:
        self.listings += 1
        return await self.inner.messages(mailbox, folder)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class CountingEvents(MailboxEvents):
    """Counts the waits (one per IDLE wake-up period) and lets a test await the n-th."""

    def __init__(self) -> None:
        super().__init__()
        self.waits = 0
        self._reached: dict[int, asyncio.Event] = {}

    async def wait(self, mailbox: str, seen_version: int, timeout: float) -> int:  # noqa: ASYNC109
        self.waits += 1
        for n, reached in self._reached.items():
            if self.waits >= n:
                reached.set()
        return await super().wait(mailbox, seen_version, timeout)

    async def reach(self, n: int) -> None:
        """Return once ``wait`` was called ``n`` times in all."""
        reached = self._reached.setdefault(n, asyncio.Event())
        if self.waits >= n:
            reached.set()
        await asyncio.wait_for(reached.wait(), 30)


def _services(store: MailStore, *, resync: float) -> tuple[ImapServices, CountingStore,
                                                             CountingEvents]:
    events = CountingEvents()
    counting = CountingStore(store)
    services = ImapServices(authenticator=Auth(), store=NotifyingStore(counting, events),
                            events=events, allow_plaintext_auth=True,
                            idle_poll=0.001, idle_resync=resync)
    return services, counting, events


async def test_an_idle_session_lists_its_folder_only_after_a_change(store: MailStore) -> None:
    for n in range(3):
        await store.deliver(ANN, _message(n))
    services, counting, events = _services(store, resync=3600)
    async with imap(services, Client) as client:
        listed = counting.listings
        client.writer.write(b"i IDLE\r\n")
        assert (await client.line()).startswith(b"+ ")
        await events.reach(events.waits + 20)  # many wake-up periods with no change
        assert counting.listings == listed
        await services.store.deliver(ANN, _message(9))  # announced to the waiters
        assert await client.line() == b"* 4 EXISTS\r\n"
        assert await client.line() == b"* 4 RECENT\r\n"  # all new to this session
        assert counting.listings == listed + 1
        await events.reach(events.waits + 20)
        assert counting.listings == listed + 1
        client.writer.write(b"DONE\r\n")
        assert (await client.line()).startswith(b"i OK")


async def test_an_idle_session_still_lists_now_and_then_as_a_safety_net(
        store: MailStore) -> None:
    await store.deliver(ANN, _message(1))
    services, counting, events = _services(store, resync=0)
    async with imap(services, Client) as client:
        listed = counting.listings
        client.writer.write(b"i IDLE\r\n")
        assert (await client.line()).startswith(b"+ ")
        start = events.waits
        await events.reach(start + 4)
        # every wake-up is a safety re-listing: one between consecutive waits
        assert counting.listings >= listed + 3
        # a change behind the server's back (no notice) is found by the safety net
        await store.deliver(ANN, _message(2))
        assert await client.line() == b"* 2 EXISTS\r\n"
        client.writer.write(b"DONE\r\n")
        while not (await client.line()).startswith(b"i OK"):
            pass


async def test_select_costs_the_same_statements_whatever_the_folder_size(
        pg_database: str) -> None:
    db = await empty_store_db(pg_database)
    try:
        store = PostgresStore(db)
        await store.deliver(ANN, _message(0))
        counts = []
        for more in (0, 60):
            for n in range(more):
                await store.deliver(ANN, _message(n), flags=frozenset({"\\Seen"}) if n % 2
                                    else frozenset({"$Label"}))
            services = ImapServices(authenticator=Auth(), store=store,
                                    allow_plaintext_auth=True)
            async with imap(services, Client) as client:
                with statements(db) as seen:
                    lines = await client.command("SELECT INBOX")
                counts.append(len(seen))
                assert b"* %d EXISTS\r\n" % (1 + more) in lines
                fetched = await client.command("FETCH 1:* (FLAGS)")
                assert len(fetched) == 1 + more
        assert counts[0] == counts[1] <= 2, counts
        assert b"$Label" in b"".join(lines)
        infos = await store.messages(ANN, INBOX)
        assert [i.flags for i in infos[1:3]] == [frozenset({"$Label"}), frozenset({"\\Seen"})]
        assert infos[1].flags is infos[3].flags  # one shared set per distinct flags text
    finally:
        await db.dispose()
