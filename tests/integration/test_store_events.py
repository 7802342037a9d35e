"""Mailbox change events across hosting nodes sharing one PostgreSQL (LISTEN/NOTIFY)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text

from mailward.db import Database
from mailward.store import INBOX, NotifyingStore, PostgresMailboxEvents
from mailward.store.events import asyncpg_dsn
from mailward.store.postgres import PostgresStore

ANN = "ann@example.com"
BOB = "bob@example.com"
LONG = 10.0  # generous: only reached if a notice is lost


@pytest.fixture
async def nodes(pg_database: str) -> AsyncIterator[list[PostgresMailboxEvents]]:
    """Two nodes' event hubs, both listening."""
    hubs = [PostgresMailboxEvents(pg_database) for _ in range(2)]
    try:
        for hub in hubs:
            await hub.start()
            assert hub.backend_pid is not None
        yield hubs
    finally:
        for hub in hubs:
            await hub.close()


async def wait_for_change(hub: PostgresMailboxEvents, mailbox: str, seen: int) -> int:
    version = await hub.wait(mailbox, seen, LONG)
    assert version != seen, f"{mailbox}: no change notice within {LONG} s"
    return version


async def test_a_change_on_one_node_wakes_a_waiter_on_the_other(
    nodes: list[PostgresMailboxEvents],
) -> None:
    one, two = nodes
    seen = two.version(ANN)
    waiter = asyncio.create_task(wait_for_change(two, ANN, seen))
    one.changed(ANN)
    assert await waiter > seen
    assert one.version(ANN) > 0


async def test_only_the_changed_mailbox_moves_on_the_other_node(
    nodes: list[PostgresMailboxEvents],
) -> None:
    one, two = nodes
    seen_bob = two.version(BOB)
    seen_ann = two.version(ANN)
    one.changed(BOB)
    await wait_for_change(two, BOB, seen_bob)
    assert two.version(ANN) == seen_ann


async def test_delivery_through_a_notifying_store_reaches_the_other_node(
    pg_database: str, nodes: list[PostgresMailboxEvents]
) -> None:
    one, two = nodes
    db = Database(pg_database)
    try:
        async with db.engine.begin() as conn:
            await conn.execute(text("TRUNCATE store_mailboxes RESTART IDENTITY CASCADE"))
        store = NotifyingStore(PostgresStore(db), one)
        seen = two.version(ANN)
        stored = await store.deliver(ANN, b"Subject: hi\r\n\r\nhello\r\n")
        await wait_for_change(two, ANN, seen)
        assert [m.uid for m in await PostgresStore(db).messages(ANN, INBOX)] == [stored.uid]
    finally:
        await db.dispose()


async def test_notices_queued_before_listening_are_sent_on_connect(
    pg_database: str, nodes: list[PostgresMailboxEvents]
) -> None:
    _, listener = nodes
    late = PostgresMailboxEvents(pg_database)
    try:
        seen = listener.version(ANN)
        late.changed(ANN)  # not connected yet: queued
        await late.start()
        await wait_for_change(listener, ANN, seen)
    finally:
        await late.close()


async def test_lost_listen_connection_reconnects_and_bumps_every_mailbox(
    pg_database: str, nodes: list[PostgresMailboxEvents]
) -> None:
    one, two = nodes
    pid = two.backend_pid
    seen = two.version(BOB)
    admin = await asyncpg.connect(asyncpg_dsn(pg_database))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    await wait_for_change(two, BOB, seen)  # changes may have been missed: all bumped
    assert two.backend_pid not in (None, pid)
    seen = two.version(ANN)
    one.changed(ANN)  # and the new connection hears the other node again
    await wait_for_change(two, ANN, seen)
