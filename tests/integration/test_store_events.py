"""Mailbox change events across hosting nodes sharing one PostgreSQL (LISTEN/NOTIFY), and
across the worker processes of one node (unix datagram sockets)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text

from mailward.db import Database
from mailward.store import INBOX, MailboxEvents, NotifyingStore, PostgresMailboxEvents
from mailward.store.events import NodeMailboxEvents, asyncpg_dsn
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


async def wait_for_change(hub: MailboxEvents, mailbox: str, seen: int) -> int:
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


# -- the worker processes of one node (Maildir store): unix datagram sockets -----------------


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[list[NodeMailboxEvents]]:
    """Workers 0 and 1 of a three-worker node (worker 2 is down), both listening."""
    hubs = [NodeMailboxEvents(tmp_path, index, 3) for index in range(2)]
    try:
        for hub in hubs:
            await hub.start()
        yield hubs
    finally:
        for hub in hubs:
            await hub.close()


async def test_a_change_in_one_worker_wakes_a_waiter_in_another(
    workers: list[NodeMailboxEvents],
) -> None:
    one, two = workers
    seen_ann, seen_bob = two.version(ANN), two.version(BOB)
    waiter = asyncio.create_task(wait_for_change(two, ANN, seen_ann))
    one.changed(ANN)  # worker 2 is down: skipped
    assert await waiter > seen_ann
    assert two.version(BOB) == seen_bob
    seen = one.version(BOB)
    two.changed(BOB)  # and the other way round
    await wait_for_change(one, BOB, seen)


async def test_the_workers_of_another_node_are_not_told(
    workers: list[NodeMailboxEvents], tmp_path: Path
) -> None:
    one, two = workers
    other = NodeMailboxEvents(tmp_path / "other", 1, 2)  # another data dir: another node
    await other.start()
    try:
        seen_other, seen_two = other.version(ANN), two.version(ANN)
        one.changed(ANN)
        await wait_for_change(two, ANN, seen_two)  # sent: to this node's workers only
        assert other.version(ANN) == seen_other
    finally:
        await other.close()


async def test_a_worker_whose_queue_was_full_hears_that_every_mailbox_changed(
    tmp_path: Path,
) -> None:
    sender = NodeMailboxEvents(tmp_path, 0, 2)
    await sender.start()
    peer = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # worker 1, not reading yet
    peer.bind(NodeMailboxEvents.address(tmp_path, 1))
    peer.setblocking(False)
    try:
        sent = 0
        while not sender._overflowed:  # fill worker 1's queue
            sender.changed(f"user{sent}@example.com" + "x" * 2000)
            sent += 1
            await asyncio.sleep(0)  # the batch is sent from the loop
        received: list[bytes] = []
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(LONG):
            while b"*" not in received:  # read what queued, then the catch-all notice
                received.extend((await loop.sock_recv(peer, 65536)).split(b"\n"))
        assert not sender._overflowed
    finally:
        peer.close()
        await sender.close()
