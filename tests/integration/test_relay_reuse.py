"""Outgoing connections kept per destination and reused (mailward.queue.connections).

``CountingServer`` is our own asyncio SMTP server on 127.0.0.1 (port 0): it numbers its
connections, records which connection carried each message, counts RSET and QUIT, and
answers 503 to a MAIL inside an open transaction, so a connection shared by two
transactions at once, or reused without RSET after a refused transaction, shows.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from mail_helpers import Sink, mail_settings, message, sink_server
from sqlalchemy import select

from mailward.app import Services
from mailward.config import Settings
from mailward.db import QueuedRecipient
from mailward.directory import Actor
from mailward.queue.connections import ConnectionCache, Destination
from mailward.queue.local import LocalDelivery
from mailward.queue.outcome import Result
from mailward.queue.relay import Envelope, Relay
from mailward.queue.spool import NewRecipient
from mailward.queue.worker import DeliveryWorker
from mailward.routing.routes import Hop
from mailward.store import open_store

HELO = "relay.mailward.test"
WAIT = 30.0


@dataclass
class CountingServer:
    """A loopback SMTP server that counts connections, messages, RSETs and QUITs."""

    refuse: set[str] = field(default_factory=set)  # recipients answered 550
    on_reused_mail: bytes | None = None  # reply (then close if 421) to MAIL on a used conn
    drop_reused_mail: bool = False  # close a used connection when MAIL comes
    drop_after_data: bool = False  # close instead of answering the message data
    connections: int = 0
    messages: list[tuple[int, bytes]] = field(default_factory=list)  # (connection, data)
    rsets: int = 0
    quits: int = 0
    errors: list[str] = field(default_factory=list)
    port: int = 0
    _writers: dict[int, asyncio.StreamWriter] = field(default_factory=dict)
    _closed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def hop(self) -> Hop:
        return Hop("127.0.0.1", self.port)

    async def session(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number, sent, in_mail = self.connections, 0, False
        self._writers[number] = writer
        writer.write(b"220 counting.test ESMTP\r\n")
        try:
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb == b"EHLO":
                    writer.write(b"250-counting.test\r\n250-8BITMIME\r\n250-SIZE 1000000\r\n"
                                 b"250 DSN\r\n")
                elif verb == b"MAIL":
                    if sent and self.drop_reused_mail:
                        break
                    if sent and self.on_reused_mail is not None:
                        writer.write(self.on_reused_mail + b"\r\n")
                        if self.on_reused_mail.startswith(b"421"):
                            break
                    elif in_mail:
                        self.errors.append(f"MAIL inside a transaction on {number}")
                        writer.write(b"503 5.5.1 nested MAIL\r\n")
                    else:
                        in_mail = True
                        writer.write(b"250 2.1.0 ok\r\n")
                elif verb == b"RCPT":
                    address = line.split(b":", 1)[1].split(b">")[0].strip(b" <").decode()
                    writer.write(b"550 5.1.1 no such user\r\n" if address in self.refuse
                                 else b"250 2.1.5 ok\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go ahead\r\n")
                    body = b""
                    while (chunk := await reader.readline()) not in (b".\r\n", b""):
                        body += chunk
                    if self.drop_after_data:
                        self.messages.append((number, body))
                        break
                    in_mail, sent = False, sent + 1
                    self.messages.append((number, body))
                    writer.write(b"250 2.0.0 queued\r\n")
                elif verb == b"RSET":
                    self.rsets += 1
                    in_mail = False
                    writer.write(b"250 2.0.0 reset\r\n")
                elif verb == b"QUIT":
                    self.quits += 1
                    writer.write(b"221 2.0.0 bye\r\n")
                    break
                else:
                    writer.write(b"502 5.5.2 not here\r\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            async with self._closed:
                self._writers.pop(number, None)
                self._closed.notify_all()

    async def drop_idle(self) -> None:
        """Close every open connection from the server's side (an idle timeout)."""
        for writer in list(self._writers.values()):
            writer.close()
        async with self._closed:
            await asyncio.wait_for(self._closed.wait_for(lambda: not self._writers), WAIT)

    async def wait_closed(self, count: int) -> None:
        """Until at most ``count`` connections are open."""
        async with self._closed:
            await asyncio.wait_for(
                self._closed.wait_for(lambda: len(self._writers) <= count), WAIT)

    def carried_by(self) -> list[int]:
        return [number for number, _ in self.messages]


@contextlib.asynccontextmanager
async def counting_server(**options: object) -> AsyncIterator[CountingServer]:
    server = CountingServer(**options)  # type: ignore[arg-type]
    listener = await asyncio.start_server(server.session, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()


def envelope(n: int, *recipients: str) -> Envelope:
    to = recipients or ("bob@dest.example",)
    return Envelope(sender="ann@here.example", recipients=[(r, None, None) for r in to],
                    data=message("ann@here.example", to[0], f"Message {n}"))


def relay(**cache: Any) -> Relay:
    return Relay(helo=HELO, timeout=10, cache=ConnectionCache(**cache))


async def send(relay: Relay, server: CountingServer, n: int, *to: str) -> Result:
    outcomes = await relay.send([server.hop], envelope(n, *to))
    [result] = {o.result for o in outcomes.values()}
    return result


async def test_sequential_messages_share_one_connection() -> None:
    async with counting_server() as server:
        r = relay()
        for n in range(5):
            assert await send(r, server, n) is Result.DELIVERED
        assert server.carried_by() == [1] * 5
        assert server.quits == 0 and server.errors == []
        await r.aclose()
        assert server.quits == 1
        assert await send(r, server, 5) is Result.DELIVERED  # closed cache: QUIT after each
        assert server.connections == 2 and server.quits == 2


async def test_concurrent_deliveries_use_at_most_one_connection_each() -> None:
    async with counting_server() as server:
        r = relay()
        for round_ in range(3):
            results = await asyncio.gather(
                *(send(r, server, round_ * 10 + n) for n in range(5)))
            assert set(results) == {Result.DELIVERED}
        assert len(server.messages) == 15
        assert server.connections <= 5  # 15 without reuse
        assert server.errors == []  # never two transactions at once on one connection
        await r.aclose()
        assert server.quits == server.connections


async def test_a_connection_the_server_closed_is_replaced_without_deferral() -> None:
    async with counting_server() as server:
        r = relay()
        assert await send(r, server, 1) is Result.DELIVERED
        await server.drop_idle()
        assert await send(r, server, 2) is Result.DELIVERED
        assert server.carried_by() == [1, 2]


@pytest.mark.parametrize("failure", [
    {"drop_reused_mail": True},
    {"on_reused_mail": b"421 4.4.2 idle too long, closing"},
    {"on_reused_mail": b"451 4.7.0 too many messages on this connection"},
])
async def test_a_reused_connection_failing_at_mail_is_retried_fresh_once(
        failure: dict[str, object]) -> None:
    async with counting_server(**failure) as server:
        r = relay()
        assert await send(r, server, 1) is Result.DELIVERED
        assert await send(r, server, 2) is Result.DELIVERED  # not deferred
        assert server.carried_by() == [1, 2]
        assert server.connections == 2


async def test_no_retry_once_message_data_was_sent() -> None:
    async with counting_server() as server:
        r = relay()
        assert await send(r, server, 1) is Result.DELIVERED
        server.drop_after_data = True
        assert await send(r, server, 2) is Result.DEFERRED  # it may have arrived: no copy
        assert server.carried_by() == [1, 1]
        assert server.connections == 1


async def test_a_refused_transaction_is_reset_before_the_connection_is_reused() -> None:
    async with counting_server(refuse={"gone@dest.example"}) as server:
        r = relay()
        assert await send(r, server, 1, "gone@dest.example") is Result.FAILED
        assert server.rsets == 1
        assert await send(r, server, 2) is Result.DELIVERED
        assert server.carried_by() == [1] and server.connections == 1
        assert server.errors == []


async def test_connections_are_not_shared_between_destinations() -> None:
    async with counting_server() as a, counting_server() as b:
        r = relay()
        for n in range(3):
            assert await send(r, a, n) is Result.DELIVERED
            assert await send(r, b, n) is Result.DELIVERED
        assert a.carried_by() == [1, 1, 1] and b.carried_by() == [1, 1, 1]
        assert len(r.cache) == 2
        other_name = Destination("127.0.0.1", a.port, "mx.other.example", HELO)
        assert r.cache.take(other_name) is None  # the MX name is part of the key
        await r.aclose()
        assert (a.quits, b.quits) == (1, 1)


async def test_max_uses_per_connection() -> None:
    async with counting_server() as server:
        r = relay(max_uses=3)
        for n in range(7):
            assert await send(r, server, n) is Result.DELIVERED
        assert server.carried_by() == [1, 1, 1, 2, 2, 2, 3]
        assert server.quits == 2  # the two used up, QUIT at once


async def test_max_age_and_disabled_cache_close_after_each_message() -> None:
    async with counting_server() as server:
        for r in (relay(max_age_seconds=1e-9), relay(idle_seconds=0)):
            before = server.connections
            for n in range(2):
                assert await send(r, server, n) is Result.DELIVERED
            assert server.connections == before + 2
            assert len(r.cache) == 0
        assert server.quits == 4


async def test_idle_limits_close_the_surplus() -> None:
    async with counting_server() as a, counting_server() as b:
        r = relay(per_destination=2, total=3)
        await asyncio.gather(*(send(r, a, n) for n in range(4)))
        assert len(r.cache) == 2 and a.quits == a.connections - 2
        await asyncio.gather(*(send(r, b, n) for n in range(2)))
        assert len(r.cache) == 3  # the longest idle one to ``a`` made room
        await a.wait_closed(1)
        assert r.cache.idle(Destination("127.0.0.1", a.port, None, HELO)) == 1


async def test_an_idle_connection_is_closed_when_its_time_runs_out() -> None:
    async with counting_server() as server:
        r = relay(idle_seconds=0.05)
        assert await send(r, server, 1) is Result.DELIVERED
        await server.wait_closed(0)  # the timer hung up, with a QUIT
        assert len(r.cache) == 0 and server.quits == 1
        assert await send(r, server, 2) is Result.DELIVERED
        assert server.carried_by() == [1, 2]


async def test_delivery_workers_reuse_connections_across_queued_messages(
        settings: Settings, directory: Services) -> None:
    op = Actor.operator()
    await directory.accounts.create(op, "Acme")
    await directory.domains.create(op, "filtered.example", account="Acme")
    async with counting_server() as customer, sink_server(Sink()) as smarthost:
        configured = mail_settings(settings, relay_host=smarthost.address)
        services = Services(directory.db, configured)
        await services.servers.add(op, "filtered.example", f"127.0.0.1:{customer.port}",
                                   preference=10)
        spool = services.queue.spool
        worker = DeliveryWorker(services.db, configured, spool, LocalDelivery(
            services.db, open_store(configured, services.db), spool))
        for n in range(3):
            await spool.enqueue(sender="origin@outside.example",
                                recipients=[NewRecipient("ann@filtered.example")],
                                data=message("origin@outside.example",
                                             "ann@filtered.example", f"Queued {n}"),
                                origin="mx")
            assert await worker.run_once() == 1
        assert customer.carried_by() == [1, 1, 1]
        async with services.db.session() as session:
            assert list(await session.scalars(select(QueuedRecipient))) == []
        await worker.relay.aclose()
        assert customer.quits == 1
