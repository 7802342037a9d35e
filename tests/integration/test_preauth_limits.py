"""Pre-authentication limits of the IMAP and POP3 roles (issue 16, item 2).

Over real sockets against the running roles: a literal before login is capped at
``preauth_max_literal`` (refused before its octets are read), connections per client
address are capped per role (``* BYE`` / ``-ERR [SYS/TEMP]``, a slot frees when one
closes), and a session that has not logged in is closed after ``preauth_timeout_seconds``
of silence while a logged-in one is not.
"""

from __future__ import annotations

import asyncio
import ssl

import pytest
from hosting_helpers import PASSWORD, Hosting, client_tls

from mailward.config import Settings

USER = "bob@acme.example"
PER_IP = 3
SAFETY = 60  # seconds: only so that a broken server fails the test instead of hanging it


@pytest.fixture
def backend() -> str:
    """These limits live in the protocol sessions: one database backend is enough."""
    return "sqlite"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={
        "preauth_timeout_seconds": 5, "max_connections_per_ip_imap": PER_IP,
        "max_connections_per_ip_pop3": PER_IP,
    })


class Conn:
    """A line-level client (IMAP or POP3)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 greeting: bytes) -> None:
        self.reader, self.writer, self.greeting = reader, writer, greeting

    @classmethod
    async def open(cls, port: int, context: ssl.SSLContext | None = None) -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
        conn = cls(reader, writer, b"")
        conn.greeting = await conn.line()
        return conn

    async def line(self) -> bytes:
        """The next line; ``b""`` once the server has closed the connection."""
        async with asyncio.timeout(SAFETY):
            return await self.reader.readline()

    async def until(self, prefix: bytes) -> list[bytes]:
        lines = [await self.line()]
        while lines[-1] and not lines[-1].startswith(prefix):
            lines.append(await self.line())
        return lines

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def command(self, tag: bytes, text: bytes) -> list[bytes]:
        await self.send(tag + b" " + text + b"\r\n")
        return await self.until(tag + b" ")

    async def closed(self) -> list[bytes]:
        """Everything the server still sends until it closes the connection."""
        lines = []
        while line := await self.line():
            lines.append(line)
        return lines

    def close(self) -> None:
        self.writer.close()


async def _imap_login(port: int) -> Conn:
    conn = await Conn.open(port, client_tls())
    assert (await conn.command(b"l", f'LOGIN {USER} "{PASSWORD}"'.encode()))[-1].startswith(
        b"l OK")
    return conn


async def _pop3_login(port: int) -> Conn:
    conn = await Conn.open(port, client_tls())
    await conn.send(f"USER {USER}\r\n".encode())
    assert (await conn.line()).startswith(b"+OK")
    await conn.send(f"PASS {PASSWORD}\r\n".encode())
    assert (await conn.line()).startswith(b"+OK")
    return conn


async def test_imap_literal_before_login_is_capped(hosting: Hosting) -> None:
    assert hosting.settings.preauth_max_literal == 8192
    conn = await Conn.open(hosting.imaps, client_tls())
    # A synchronizing literal: refused instead of the continuation, nothing is sent.
    await conn.send(b"a1 LOGIN {102400}\r\n")
    assert await conn.line() == (b"a1 NO [TOOBIG] Literal too big "
                                 b"(at most 8192 octets before login)\r\n")
    # The session stays in step and usable: a small literal logs in.
    await conn.send(b"a2 LOGIN " + USER.encode() + b" {%d}\r\n" % len(PASSWORD))
    assert (await conn.line()).startswith(b"+ ")
    await conn.send(PASSWORD.encode() + b"\r\n")
    assert (await conn.until(b"a2 "))[-1].startswith(b"a2 OK")
    # Logged in, literals up to the message size limit are fine again.
    message = b"Subject: big\r\n\r\n" + b"x" * 20000 + b"\r\n"
    await conn.send(b"a3 APPEND INBOX {%d}\r\n" % len(message))
    assert (await conn.line()).startswith(b"+ ")
    await conn.send(message + b"\r\n")
    assert (await conn.until(b"a3 "))[-1].startswith(b"a3 OK")
    conn.close()

    # A non-synchronizing literal (LITERAL+): its octets are on their way, so the answer
    # is BAD and BYE, given as soon as the command line is in: none of them is awaited.
    conn = await Conn.open(hosting.imaps, client_tls())
    await conn.send(b"b1 LOGIN {102400+}\r\n")
    assert await conn.closed() == [b"b1 BAD [TOOBIG] Literal too big\r\n",
                                   b"* BYE Literal too big, closing connection\r\n"]
    conn.close()


async def test_imap_connections_per_address_are_capped(hosting: Hosting) -> None:
    # The cap is per role: the STARTTLS and the TLS port count together.
    conns = [await Conn.open(hosting.imap), await Conn.open(hosting.imaps, client_tls()),
             await Conn.open(hosting.imap)]
    assert all(c.greeting.startswith(b"* OK") for c in conns)
    extra = await Conn.open(hosting.imap)
    assert extra.greeting == b"* BYE [UNAVAILABLE] Too many connections from your address\r\n"
    assert await extra.closed() == []
    for n, conn in enumerate(conns):  # the others keep working
        assert (await conn.command(b"n%d" % n, b"NOOP"))[-1].startswith(b"n%d OK" % n)
    lines = await conns[0].command(b"z", b"LOGOUT")
    assert lines[-1].startswith(b"z OK") and await conns[0].closed() == []
    again = await Conn.open(hosting.imaps, client_tls())  # the freed slot
    assert again.greeting.startswith(b"* OK")
    for conn in [*conns, extra, again]:
        conn.close()


async def test_pop3_connections_per_address_are_capped(hosting: Hosting) -> None:
    conns = [await Conn.open(hosting.pop3), await Conn.open(hosting.pop3s, client_tls()),
             await Conn.open(hosting.pop3)]
    assert all(c.greeting.startswith(b"+OK") for c in conns)
    extra = await Conn.open(hosting.pop3s, client_tls())
    assert extra.greeting == b"-ERR [SYS/TEMP] Too many connections from your address\r\n"
    assert await extra.closed() == []
    for conn in conns:  # the others keep working
        await conn.send(b"CAPA\r\n")
        assert (await conn.until(b"."))[0].startswith(b"+OK")
    await conns[1].send(b"QUIT\r\n")
    assert (await conns[1].line()).startswith(b"+OK") and await conns[1].closed() == []
    again = await Conn.open(hosting.pop3)  # the freed slot
    assert again.greeting.startswith(b"+OK")
    for conn in [*conns, extra, again]:
        conn.close()


async def test_preauth_timeout_closes_sessions_that_did_not_log_in(hosting: Hosting) -> None:
    # Logged in first, so silent for longer than the idle ones below.
    imap_user, pop3_user = await _imap_login(hosting.imaps), await _pop3_login(hosting.pop3s)
    imap_idle = await Conn.open(hosting.imaps, client_tls())
    pop3_idle = await Conn.open(hosting.pop3s, client_tls())
    await pop3_idle.send(f"USER {USER}\r\n".encode())  # half way is not logged in
    assert (await pop3_idle.line()).startswith(b"+OK")
    imap_said, pop3_said = await asyncio.gather(imap_idle.closed(), pop3_idle.closed())
    assert imap_said == [b"* BYE Autologout; idle for too long\r\n"]
    assert pop3_said == [b"-ERR Idle timeout, closing connection\r\n"]
    # The logged-in sessions, silent all that time, are still there.
    assert (await imap_user.command(b"n", b"NOOP"))[-1] == b"n OK NOOP completed\r\n"
    await pop3_user.send(b"NOOP\r\n")
    assert (await pop3_user.line()).startswith(b"+OK")
    for conn in (imap_user, pop3_user, imap_idle, pop3_idle):
        conn.close()
