"""``mailward serve --workers 2``: real worker processes on shared listening sockets.

Which worker takes a connection is the kernel's choice; a test decides it by stopping the
other worker (SIGSTOP) while it connects, and checks which process holds the connection
in ``/proc``. Mailbox changes made in one worker reach IMAP IDLE in the other and POP3
maildrop locks exclude each other across workers, on both stores.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import AsyncIterator

import pytest
from mail_helpers import Sink
from worker_helpers import Node, filtered_customer, holder, running, stopped

from mailward.app import Services
from mailward.config import Settings
from mailward.db import AddressList
from mailward.directory import Actor
from mailward.imap.session import IDLE_POLL
from mailward.server.mail_roles import connection_caps
from mailward.store import open_store

OP = Actor.operator()
PASSWORD = "Mailbox-pass-77"
ANN = "ann@hosted.example"
NOTICE_WAIT = 10.0  # well below IDLE_POLL: only a cross-process notice arrives this soon
pytestmark = pytest.mark.slow
assert NOTICE_WAIT < IDLE_POLL / 2


@pytest.fixture
def env(mailward_env: dict[str, str], settings: Settings) -> dict[str, str]:
    ports = ("mx", "imap", "imaps", "pop3", "pop3s")
    values = {**os.environ, **mailward_env, "MAILWARD_BIND": "127.0.0.1",
              "MAILWARD_ALLOW_PLAINTEXT_AUTH": "true", "MAILWARD_QUEUE_POLL_SECONDS": "0.2",
              "MAILWARD_RETRY_FIRST_SECONDS": "1", "MAILWARD_SMTP_TIMEOUT_SECONDS": "10",
              **{f"MAILWARD_PORT_{name.upper()}": "0" for name in ports}}
    if settings.db_url.startswith("postgresql"):  # the PostgreSQL mail store too
        values["MAILWARD_STORE_BACKEND"] = "postgresql"
    return values


@pytest.fixture
async def hosted(directory: Services) -> None:
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "hosted.example", account="Acme", hosting=True)
    await directory.servers.auto_configure_hosting(OP, "hosted.example")
    await directory.bulk.add_lines(OP, [f"{ANN}|{PASSWORD}"], AddressList.NO_FILTER)


@pytest.fixture
async def customer(directory: Services) -> AsyncIterator[Sink]:
    async with filtered_customer(directory) as sink:
        yield sink


class Client:
    """A line-based client (SMTP, IMAP, POP3) on 127.0.0.1; knows its worker."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 port: int) -> None:
        self.reader, self.writer, self.port = reader, writer, port

    @classmethod
    async def connect(cls, port: int) -> tuple[Client, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer, port)
        return client, await client.line()  # the greeting: the server has accepted it

    def worker(self, pids: set[int]) -> int | None:
        return holder(self.port, self.writer.get_extra_info("sockname")[1], pids)

    async def line(self) -> bytes:
        async with asyncio.timeout(30):
            line = await self.reader.readline()
        assert line, "connection closed"
        return line

    async def send(self, text: str) -> None:
        self.writer.write(text.encode() + b"\r\n")
        await self.writer.drain()

    async def smtp(self, text: str) -> int:
        await self.send(text)
        while (line := await self.line())[3:4] == b"-":
            pass
        return int(line[:3])

    async def imap(self, tag: str, text: str) -> bytes:
        await self.send(f"{tag} {text}")
        while not (line := await self.line()).startswith(tag.encode() + b" "):
            pass
        assert line.startswith(f"{tag} OK".encode()), line
        return line

    async def until(self, pattern: bytes, seconds: float = 30) -> bytes:
        async with asyncio.timeout(seconds):
            while pattern not in (line := await self.reader.readline()):
                assert line, "connection closed"
        return line

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def connect_to(node: Node, port: int, worker: int) -> tuple[Client, bytes]:
    """A connection served by ``worker`` (the other workers are stopped meanwhile)."""
    others = [pid for pid in node.pids if pid != worker]
    async with stopped(*others):
        client, greeting = await Client.connect(port)
        assert client.worker(set(node.pids)) == worker
    return client, greeting


async def test_every_worker_serves_and_a_killed_one_is_restarted(
    env: dict[str, str],
) -> None:
    async with running(env, "mx") as node:
        first, second = node.pids
        assert node.children() == {first, second}
        port = node.ports["mx"][0]
        for pid in node.pids:
            client, greeting = await connect_to(node, port, pid)
            assert greeting.startswith(b"220 ")
            assert await client.smtp("QUIT") == 221
            await client.close()
        mark = len(node.lines)
        os.kill(second, signal.SIGKILL)
        restarted = await node.restarted(1, second, mark)
        node.pids = [first, restarted]
        assert node.children() == {first, restarted}
        client, greeting = await connect_to(node, port, restarted)
        assert greeting.startswith(b"220 ")
        await client.close()
        assert await node.stop() == 0
        assert node.children() == set()


async def test_sigterm_lets_every_worker_finish_its_sessions(
    env: dict[str, str], customer: Sink, directory: Services
) -> None:
    customer.rcpt = lambda _a: "451 4.3.2 not now"  # the messages stay queued
    async with running(env, "mx,delivery") as node:
        port = node.ports["mx"][0]
        sessions = []
        for pid in node.pids:
            client, _ = await connect_to(node, port, pid)
            assert await client.smtp("EHLO client.example") == 250
            assert await client.smtp("MAIL FROM:<a@outside.example>") == 250
            sessions.append(client)
        mark = len(node.lines)
        assert node.proc is not None
        node.proc.terminate()
        await node.wait_line(re.compile("stopping: draining 2 workers"), start=mark)
        for number, client in enumerate(sessions):
            assert await client.smtp("RCPT TO:<ann@filtered.example>") == 250
            assert await client.smtp("DATA") == 354
            assert await client.smtp(f"Subject: drained {number}\r\n\r\nbody\r\n.") == 250
            assert await client.smtp("QUIT") == 221
            await client.close()
        assert await node.stop() == 0
    queued = (await directory.queue.list(OP)).items
    assert len(queued) == 2


async def test_idle_in_one_worker_hears_a_delivery_made_by_the_other(
    env: dict[str, str], hosted: None,
) -> None:
    async with running(env, "mx,delivery,imap") as node:
        first, second = node.pids
        imap, mx = node.ports["imap"][0], node.ports["mx"][0]
        idler, _ = await connect_to(node, imap, first)
        await idler.imap("a", f"LOGIN {ANN} {PASSWORD}")
        await idler.imap("b", "SELECT INBOX")
        await idler.send("c IDLE")
        await idler.until(b"+ ")
        async with stopped(first):  # everything below happens in the second worker only
            witness, _ = await Client.connect(imap)
            assert witness.worker(set(node.pids)) == second
            await witness.imap("a", f"LOGIN {ANN} {PASSWORD}")
            await witness.imap("b", "SELECT INBOX")
            await witness.send("c IDLE")
            await witness.until(b"+ ")
            sender, _ = await Client.connect(mx)
            assert sender.worker(set(node.pids)) == second
            assert await sender.smtp("EHLO client.example") == 250
            assert await sender.smtp("MAIL FROM:<a@outside.example>") == 250
            assert await sender.smtp(f"RCPT TO:<{ANN}>") == 250
            assert await sender.smtp("DATA") == 354
            assert await sender.smtp("Subject: across\r\n\r\nbody\r\n.") == 250
            await sender.close()
            await witness.until(b"* 1 EXISTS")  # delivered, by the second worker
        await idler.until(b"* 1 EXISTS", NOTICE_WAIT)  # heard from the other process
        for client in (idler, witness):
            await client.send("DONE")
            await client.until(b"c OK")
            await client.close()


async def test_a_pop3_maildrop_locked_in_one_worker_is_in_use_in_the_other(
    env: dict[str, str], hosted: None, settings: Settings, directory: Services
) -> None:
    configured = settings.model_copy(
        update={"store_backend": env.get("MAILWARD_STORE_BACKEND", "maildir")})
    await open_store(configured, directory.db).deliver(ANN, b"Subject: x\r\n\r\nhi\r\n")
    async with running(env, "pop3") as node:
        first, second = node.pids
        port = node.ports["pop3"][0]

        async def login(worker: int) -> tuple[Client, bytes]:
            client, _ = await connect_to(node, port, worker)
            await client.send(f"USER {ANN}")
            assert (await client.line()).startswith(b"+OK")
            await client.send(f"PASS {PASSWORD}")
            return client, await client.line()

        holding, reply = await login(first)
        assert reply.startswith(b"+OK"), reply
        refused, reply = await login(second)
        assert reply.startswith(b"-ERR [IN-USE]"), reply
        await refused.close()
        await holding.send("QUIT")
        assert (await holding.line()).startswith(b"+OK")
        await holding.close()
        again, reply = await login(second)
        assert reply.startswith(b"+OK"), reply
        await again.send("STAT")
        assert (await again.line()).startswith(b"+OK 1 ")
        mark = len(node.lines)
        os.kill(second, signal.SIGKILL)  # the kernel (or PostgreSQL) drops its lock
        node.pids = [first, await node.restarted(1, second, mark)]
        after, reply = await login(first)
        assert reply.startswith(b"+OK"), reply
        await after.close()
        await again.close()


def test_the_node_total_of_connections_is_shared_out_among_the_workers(
    settings: Settings,
) -> None:
    three = settings.model_copy(update={"workers": 3, "max_connections_mx": 1000,
                                        "max_connections_per_ip_mx": 20})
    assert connection_caps(three, "mx") == (334, 20)  # the per-address cap: per process
    assert connection_caps(settings, "mx") == settings.connection_caps("mx")
