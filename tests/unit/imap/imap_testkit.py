"""An IMAP listener on 127.0.0.1 run in its own event-loop thread, for stdlib clients.

Tests talk to it with blocking clients (imaplib, imapclient, raw sockets) from the test
thread and reach the store through :meth:`ImapTestServer.call`, which runs a coroutine
in the server's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from mailward.imap.server import start_imap
from mailward.imap.session import ImapServices, LoginDeferred
from mailward.store import INBOX, MailStore, Stored
from mailward.store.events import MailboxEvents, NotifyingStore

T = TypeVar("T")
HOSTNAME = "imap.example.test"
ANN = "ann@example.com"
BOB = "bob@example.com"
PASSWORDS = {ANN: "ann-secret", BOB: "bob pw"}


@dataclass
class DictAuth:
    """Logins from a dict; ``locked`` logins are deferred as a rate limiter would."""

    passwords: dict[str, str] = field(default_factory=lambda: dict(PASSWORDS))
    locked: set[str] = field(default_factory=set)
    attempts: list[tuple[str, str]] = field(default_factory=list)

    async def authenticate(self, login: str, password: str, peer: str) -> str | None:
        self.attempts.append((login, peer))
        if login in self.locked:
            raise LoginDeferred("Too many failed logins; try again in 60 seconds")
        return login if self.passwords.get(login) == password else None


class ImapTestServer:
    """A running listener (plaintext + optional implicit TLS) and its store."""

    def __init__(self, make_store: Callable[[], MailStore], *, quota: int | None = None,
                 tls: ssl.SSLContext | None = None, **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.auth = DictAuth()
        self.events = MailboxEvents()
        self.quota_bytes = quota
        self.store: MailStore = self.call(self._make(make_store))
        self.services = ImapServices(
            authenticator=self.auth, store=self.store, events=self.events,
            quota=self._quota, hostname=HOSTNAME, tls_context=tls,
            allow_plaintext_auth=options.pop("allow_plaintext_auth", True), **options,
        )
        self.servers: list[asyncio.AbstractServer] = []
        self.port = self._listen(implicit_tls=False)
        self.tls_port = self._listen(implicit_tls=True) if tls is not None else 0

    async def _make(self, make_store: Callable[[], MailStore]) -> MailStore:
        return NotifyingStore(make_store(), self.events)

    async def _quota(self, mailbox: str) -> int | None:
        return self.quota_bytes

    def _listen(self, *, implicit_tls: bool) -> int:
        sock = socket.create_server(("127.0.0.1", 0))
        server = self.call(start_imap(self.services, sock=sock, implicit_tls=implicit_tls))
        self.servers.append(server)
        return int(sock.getsockname()[1])

    def call(self, coro: Coroutine[Any, Any, T] | Awaitable[T]) -> T:
        async def wrap() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrap(), self.loop).result(timeout=60)

    def deliver(self, mailbox: str, data: bytes, *, folder: str = INBOX,
                flags: frozenset[str] = frozenset(),
                date: datetime | None = None) -> Stored:
        return self.call(self.store.deliver(mailbox, data, folder=folder, flags=flags,
                                            internal_date=date))

    def login(self, user: str = ANN) -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=30)
        client.login(user, PASSWORDS[user])
        return client

    def close(self) -> None:
        async def stop() -> None:
            for server in self.servers:
                server.close()
            self.services.shut_down()
            await asyncio.sleep(0)
            sessions = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in sessions:
                task.cancel()
            await asyncio.gather(*sessions, return_exceptions=True)
            for server in self.servers:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(server.wait_closed(), 10)
            await self.loop.shutdown_asyncgens()

        with contextlib.suppress(Exception):
            self.call(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@contextlib.contextmanager
def imap_server(make_store: Callable[[], MailStore], **options: Any) -> Iterator[ImapTestServer]:
    server = ImapTestServer(make_store, **options)
    try:
        yield server
    finally:
        server.close()


def message(subject: str, body: str = "Hello.\r\n", *, sender: str = "x@example.org",
            to: str = ANN) -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Date: Mon, 02 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{abs(hash(subject))}@t>\r\n"
            f"\r\n{body}").encode()


class RawClient:
    """A line-level client for exact wire checks (pipelining, malformed input)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.file = self.sock.makefile("rb")
        self.greeting = self.line()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        data = self.file.readline()
        if not data:
            raise EOFError("server closed the connection")
        return data

    def until_tagged(self, tag: bytes) -> list[bytes]:
        """Every line up to and including the one starting with ``tag``."""
        lines: list[bytes] = []
        while True:
            line = self.line()
            lines.append(line)
            if line.startswith(tag + b" "):
                return lines

    def command(self, tag: bytes, text: bytes) -> list[bytes]:
        self.send(tag + b" " + text + b"\r\n")
        return self.until_tagged(tag)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
            self.sock.close()
