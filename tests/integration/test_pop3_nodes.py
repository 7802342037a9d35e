"""Two hosting nodes on one PostgreSQL: the POP3 maildrop lock holds across them."""

from __future__ import annotations

import asyncio
import contextlib
import poplib
import socket
from collections.abc import AsyncIterator

import pytest

from mailward.config import Settings
from mailward.db import Database
from mailward.pop3 import start_pop3
from mailward.pop3.shared_locks import PostgresMaildropLocks
from mailward.store import PostgresStore

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
ANN = "ann@acme.example"


class Logins:
    async def authenticate(self, login: str, password: str, peer: str) -> str | None:
        return login if password == "secret" else None


@contextlib.asynccontextmanager
async def node(url: str) -> AsyncIterator[int]:
    """One node: its own connections, store and lock registry; yields its POP3 port."""
    db = Database(url)
    sock = socket.create_server(("127.0.0.1", 0))
    locks = PostgresMaildropLocks(url)
    server = await start_pop3(authenticator=Logins(), store=PostgresStore(db), sock=sock,
                              hostname="node.example", tls_context=None, implicit_tls=False,
                              allow_plaintext_auth=True, locks=locks)
    try:
        yield sock.getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()
        await locks.aclose()
        await db.dispose()


def login(port: int) -> poplib.POP3:
    client = poplib.POP3("127.0.0.1", port, timeout=30)
    client.user(ANN)
    client.pass_("secret")
    return client


async def test_a_mailbox_open_on_one_node_is_in_use_on_the_other(settings: Settings) -> None:
    db = Database(settings.db_url)
    await PostgresStore(db).deliver(ANN, b"Subject: x\r\n\r\nhi\r\n")
    await db.dispose()
    async with node(settings.db_url) as first, node(settings.db_url) as second:
        holder = await asyncio.to_thread(login, first)
        with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
            await asyncio.to_thread(login, second)
        await asyncio.to_thread(holder.quit)
        other = await asyncio.to_thread(login, second)
        assert (await asyncio.to_thread(other.stat))[0] == 1
        await asyncio.to_thread(other.quit)


async def test_a_released_lock_session_is_kept_and_reused(settings: Settings) -> None:
    """A lock's database session, once its lock is released, serves the next lock (one
    round trip per POP3 login, not a new connection), and it really holds nothing: the
    other node takes the mailbox at once."""
    first, second = (PostgresMaildropLocks(settings.db_url) for _ in range(2))
    try:
        assert await first.acquire(ANN)
        [session] = first._sessions.values()
        assert not await second.acquire(ANN)
        await first.release(ANN)
        assert first._idle == [session]
        assert await second.acquire(ANN)  # the released lock is free for another node
        assert not await first.acquire(ANN)  # the kept session tried and found it taken
        await second.release(ANN)
        assert await first.acquire("bob@acme.example")
        assert first._sessions["bob@acme.example"] is session  # no new connection
        await first.release("bob@acme.example")
    finally:
        await first.aclose()
        await second.aclose()
    assert first._idle == [] and session.is_closed()
