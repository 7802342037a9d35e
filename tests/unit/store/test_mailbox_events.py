"""Mailbox change events: the in-process hub and NotifyingStore on every backend."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from mailward.config import load_settings
from mailward.db import Database
from mailward.store import (
    DELETED,
    INBOX,
    MailboxEvents,
    MaildirStore,
    MailStore,
    NoSuchFolder,
    NoSuchMessage,
    NotifyingStore,
    PostgresMailboxEvents,
    QuotaExceeded,
    open_events,
    open_store,
)

StoreFactory = Callable[[], MailStore]
ANN = "ann@example.com"
BOB = "bob@example.com"
LONG = 10.0  # generous: only reached if a wake-up is lost


def message(n: int) -> bytes:
    return f"Subject: m{n}\r\n\r\nbody {n}\r\n".encode()


async def parked(events: MailboxEvents, mailbox: str) -> asyncio.Task[int]:
    """A waiter on ``mailbox``'s current version, already waiting."""
    task = asyncio.create_task(events.wait(mailbox, events.version(mailbox), LONG))
    await asyncio.sleep(0)  # let it run up to its wait
    assert not task.done()
    return task


# -- the in-process hub ---------------------------------------------------------------


async def test_changed_increases_the_version_of_that_mailbox_only() -> None:
    events = MailboxEvents()
    ann, bob = events.version(ANN), events.version(BOB)
    events.changed(ANN)
    assert events.version(ANN) > ann
    assert events.version(BOB) == bob
    before = events.version(ANN)
    events.changed(ANN)
    assert events.version(ANN) > before


async def test_wait_returns_at_once_if_the_version_already_differs() -> None:
    events = MailboxEvents()
    seen = events.version(ANN)
    events.changed(ANN)  # between reading the version and waiting
    assert await events.wait(ANN, seen, LONG) == events.version(ANN) != seen


async def test_wait_wakes_on_a_change() -> None:
    events = MailboxEvents()
    seen = events.version(ANN)
    waiter = await parked(events, ANN)
    events.changed(ANN)
    assert await asyncio.wait_for(waiter, LONG) == events.version(ANN) != seen


async def test_wait_ignores_other_mailboxes() -> None:
    events = MailboxEvents()
    waiter = await parked(events, ANN)
    events.changed(BOB)
    await asyncio.sleep(0)
    assert not waiter.done()
    events.changed(ANN)
    assert await asyncio.wait_for(waiter, LONG) == events.version(ANN)


async def test_every_waiter_of_a_mailbox_wakes() -> None:
    events = MailboxEvents()
    waiters = [await parked(events, ANN) for _ in range(5)]
    events.changed(ANN)
    assert set(await asyncio.wait_for(asyncio.gather(*waiters), LONG)) == {events.version(ANN)}


async def test_wait_times_out_with_the_unchanged_version() -> None:
    events = MailboxEvents()
    seen = events.version(ANN)
    assert await events.wait(ANN, seen, 0.01) == seen
    assert await events.wait(ANN, seen, 0) == seen


async def test_cancelled_waiter_is_forgotten() -> None:
    events = MailboxEvents()
    waiter = await parked(events, ANN)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    events.changed(ANN)  # no error from the cancelled waiter
    assert await events.wait(ANN, 0, LONG) == events.version(ANN)


async def test_versions_never_decrease_when_mailboxes_are_forgotten() -> None:
    events = MailboxEvents(remembered=2)
    seen: dict[str, int] = {}
    for n in range(20):
        mailbox = f"user{n % 5}@example.com"
        for name, version in seen.items():
            assert events.version(name) >= version
        before = events.version(mailbox)
        events.changed(mailbox)
        assert events.version(mailbox) > before
        seen[mailbox] = events.version(mailbox)


async def test_bump_all_wakes_every_waiter() -> None:
    events = MailboxEvents()
    events.changed(ANN)
    seen = {ANN: events.version(ANN), BOB: events.version(BOB)}
    waiters = [await parked(events, ANN), await parked(events, BOB)]
    events._bump_all()
    await asyncio.wait_for(asyncio.gather(*waiters), LONG)
    assert all(events.version(name) > version for name, version in seen.items())


async def test_open_events_follows_the_store_backend(tmp_path: Path) -> None:
    maildir = load_settings(data_dir=tmp_path)
    assert type(open_events(maildir)) is MailboxEvents
    shared = load_settings(
        data_dir=tmp_path,
        database_url="postgresql+asyncpg://mailward@127.0.0.1:5432/mailward",
        store_backend="postgresql",
    )
    assert isinstance(open_events(shared), PostgresMailboxEvents)


async def test_open_store_wraps_only_when_given_events(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    db = Database(settings.db_url)
    try:
        assert isinstance(open_store(settings, db), MaildirStore)
        events = MailboxEvents()
        wrapped = open_store(settings, db, events)
        assert isinstance(wrapped, NotifyingStore)
        assert isinstance(wrapped.inner, MaildirStore)
        assert wrapped.events is events
    finally:
        await db.dispose()


# -- NotifyingStore on every backend -------------------------------------------------


@pytest.fixture
def events() -> MailboxEvents:
    return MailboxEvents()


@pytest.fixture
def notifying(make_store: StoreFactory, events: MailboxEvents) -> NotifyingStore:
    return NotifyingStore(make_store(), events)


class Bumps:
    """Counts how far a mailbox's version moved since the last look."""

    def __init__(self, events: MailboxEvents, mailbox: str = ANN) -> None:
        self.events, self.mailbox = events, mailbox
        self.last = events.version(mailbox)

    def moved(self) -> bool:
        current = self.events.version(self.mailbox)
        moved, self.last = current != self.last, current
        return moved


async def test_notifying_store_satisfies_the_protocol(notifying: NotifyingStore) -> None:
    assert isinstance(notifying, MailStore)


async def test_delivery_wakes_a_waiter(notifying: NotifyingStore, events: MailboxEvents) -> None:
    seen = events.version(ANN)
    waiter = await parked(events, ANN)
    stored = await notifying.deliver(ANN, message(1))
    assert await asyncio.wait_for(waiter, LONG) != seen
    assert await notifying.fetch(ANN, INBOX, stored.uid) == message(1)


async def test_every_change_bumps_and_reads_do_not(
    notifying: NotifyingStore, events: MailboxEvents
) -> None:
    bumps = Bumps(events)
    await notifying.deliver(ANN, message(1))
    await notifying.deliver(ANN, message(2))
    assert bumps.moved()
    await notifying.create_folder(ANN, "A")
    assert bumps.moved()
    await notifying.rename_folder(ANN, "A", "B")
    assert bumps.moved()
    assert await notifying.copy(ANN, INBOX, [1], "B") == {1: 1}
    assert bumps.moved()
    assert await notifying.move(ANN, INBOX, [2], "B") == {2: 2}
    assert bumps.moved()
    await notifying.set_flags(ANN, "B", 1, {DELETED})
    assert bumps.moved()
    assert await notifying.expunge(ANN, "B") == [1]
    assert bumps.moved()
    await notifying.create_folder(ANN, "C")
    await notifying.delete_folder(ANN, "C")
    assert bumps.moved()

    await notifying.usage(ANN)
    await notifying.folders(ANN)
    await notifying.folder_status(ANN, "B")
    await notifying.messages(ANN, "B")
    await notifying.fetch(ANN, "B", 2)
    await notifying.subscribe(ANN, "B")
    assert await notifying.subscriptions(ANN) == ["B"]
    await notifying.unsubscribe(ANN, "B")
    assert not bumps.moved()

    other = Bumps(events, BOB)
    await notifying.delete_mailbox(ANN)
    assert bumps.moved()
    assert not other.moved()


async def test_failed_or_empty_changes_do_not_bump(
    notifying: NotifyingStore, events: MailboxEvents
) -> None:
    await notifying.deliver(ANN, message(1))
    bumps = Bumps(events)
    with pytest.raises(NoSuchFolder):
        await notifying.deliver(ANN, message(2), folder="Missing")
    with pytest.raises(QuotaExceeded):
        await notifying.deliver(ANN, message(2), quota_bytes=1)
    with pytest.raises(NoSuchMessage):
        await notifying.set_flags(ANN, INBOX, 99, {DELETED})
    with pytest.raises(NoSuchFolder):
        await notifying.copy(ANN, INBOX, [1], "Missing")
    assert await notifying.expunge(ANN, INBOX) == []
    assert await notifying.copy(ANN, INBOX, [42], INBOX) == {}
    assert await notifying.move(ANN, INBOX, [], INBOX) == {}
    assert not bumps.moved()
    assert [info.uid for info in await notifying.messages(ANN, INBOX)] == [1]
