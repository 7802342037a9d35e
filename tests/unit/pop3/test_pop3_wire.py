"""POP3 on the wire: SASL PLAIN, malformed input, pipelining, timeouts, vanished mail."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import AsyncIterator

import pytest
from pop3_testkit import ANN, Listener, message, running_pop3

from mailward.store import INBOX, MaildirStore

PLAIN = base64.b64encode(f"\0{ANN}\0ann-secret".encode()).decode()


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def line(self) -> bytes:
        return await asyncio.wait_for(self.reader.readline(), 10)

    async def cmd(self, text: str) -> bytes:
        await self.send(text.encode() + b"\r\n")
        return await self.line()

    async def multiline(self) -> list[bytes]:
        lines = []
        while (line := await self.line()) != b".\r\n":
            assert line, "connection closed inside a multi-line response"
            lines.append(line)
        return lines


@pytest.fixture
async def client(pop: Listener) -> AsyncIterator[Client]:
    reader, writer = await asyncio.open_connection("127.0.0.1", pop.port)
    c = Client(reader, writer)
    assert (await c.line()).startswith(b"+OK")
    yield c
    writer.close()
    await writer.wait_closed()


async def test_auth_plain_initial_response(client: Client) -> None:
    assert (await client.cmd(f"AUTH PLAIN {PLAIN}")).startswith(b"+OK")
    assert await client.cmd("STAT") == b"+OK 0 0\r\n"
    assert (await client.cmd("QUIT")).startswith(b"+OK")
    assert await client.line() == b""


async def test_auth_plain_continuation(client: Client) -> None:
    assert await client.cmd("AUTH PLAIN") == b"+ \r\n"
    assert (await client.cmd(PLAIN)).startswith(b"+OK")


async def test_auth_plain_cancel_bad_and_wrong(client: Client, pop: Listener) -> None:
    assert await client.cmd("AUTH PLAIN") == b"+ \r\n"
    assert (await client.cmd("*")).startswith(b"-ERR")
    assert (await client.cmd("AUTH PLAIN !!notbase64")).startswith(b"-ERR")
    wrong = base64.b64encode(f"\0{ANN}\0nope".encode()).decode()
    assert (await client.cmd(f"AUTH PLAIN {wrong}")).startswith(b"-ERR [AUTH]")
    proxy = base64.b64encode(f"bob@example.com\0{ANN}\0ann-secret".encode()).decode()
    assert (await client.cmd(f"AUTH PLAIN {proxy}")).startswith(b"-ERR")
    assert (await client.cmd("AUTH CRAM-MD5")).startswith(b"-ERR")
    assert await client.cmd("AUTH") == b"+OK Mechanisms follow\r\n"
    assert await client.multiline() == [b"PLAIN\r\n"]
    assert (await client.cmd(f"AUTH PLAIN {PLAIN}")).startswith(b"+OK")
    assert [a[1] for a in pop.auth.attempts] == ["nope", "ann-secret"]


async def test_malformed_and_overlong_commands_get_err(client: Client) -> None:
    for bad in ["", "XYZZY", "RETR 1", "ST@T", "USER  two-spaces", "X" * 300]:
        assert (await client.cmd(bad)).startswith(b"-ERR"), bad
    await client.send(b"\xff\xfe\r\n")
    assert (await client.line()).startswith(b"-ERR")
    await client.send(b"NOOP " + b"A" * 10_000 + b"\r\n")  # beyond the read buffer
    assert await client.line() == b"-ERR Line too long\r\n"
    assert await client.cmd("PASS x") == b"-ERR USER first\r\n"
    assert (await client.cmd(f"user {ANN}")).startswith(b"+OK")
    assert (await client.cmd("pass ann-secret")).startswith(b"+OK")
    for bad in ["RETR", "RETR x", "RETR 0", "RETR 1", "TOP 1", "TOP 1 -1", "LIST 99", "USER a"]:
        assert (await client.cmd(bad)).startswith(b"-ERR"), bad
    assert await client.cmd("NOOP") == b"+OK\r\n"


async def test_too_many_errors_closes(client: Client) -> None:
    await client.send(b"BAD\r\n" * 25)
    lines = []
    while line := await client.line():
        lines.append(line)
    assert len(lines) == 20
    assert lines[-1] == b"-ERR Too many errors, closing connection\r\n"


async def test_pipelined_commands_in_one_write(store: MaildirStore, client: Client) -> None:
    await store.deliver(ANN, message("one"))
    await store.deliver(ANN, message("two"))
    await client.send(
        f"CAPA\r\nUSER {ANN}\r\nPASS ann-secret\r\nSTAT\r\nLIST\r\nRETR 2\r\n"
        "DELE 1\r\nUIDL 2\r\nQUIT\r\n".encode()
    )
    assert (await client.line()).startswith(b"+OK")
    assert b"PIPELINING\r\n" in await client.multiline()
    assert (await client.line()).startswith(b"+OK")
    assert (await client.line()).startswith(b"+OK Maildrop has 2")
    assert (await client.line()).startswith(b"+OK 2 ")
    assert (await client.line()).startswith(b"+OK")
    assert len(await client.multiline()) == 2
    assert (await client.line()).startswith(b"+OK")
    assert b"Subject: two\r\n" in await client.multiline()
    assert await client.line() == b"+OK Message 1 deleted\r\n"
    assert (await client.line()).startswith(b"+OK 2 ")
    assert await client.line() == b"+OK Bye (1 messages deleted)\r\n"
    assert await client.line() == b""
    assert len(await store.messages(ANN, INBOX)) == 1


async def test_message_expunged_elsewhere(store: MaildirStore, client: Client) -> None:
    stored = await store.deliver(ANN, message("gone"))
    await client.cmd(f"AUTH PLAIN {PLAIN}")
    await store.set_flags(ANN, INBOX, stored.uid, {"\\Deleted"})
    await store.expunge(ANN, INBOX)
    assert (await client.cmd("RETR 1")).startswith(b"-ERR")
    assert (await client.cmd("DELE 1")).startswith(b"+OK")
    assert (await client.cmd("QUIT")).startswith(b"+OK Bye (0")


async def test_deletion_keeps_other_flags_and_spares_imap_deleted(
    store: MaildirStore, client: Client
) -> None:
    a = await store.deliver(ANN, message("a"), flags=frozenset({"\\Seen"}))
    b = await store.deliver(ANN, message("b"))
    await client.cmd(f"AUTH PLAIN {PLAIN}")
    await store.set_flags(ANN, INBOX, b.uid, {"\\Deleted"})  # flagged by an IMAP client
    assert (await client.cmd("DELE 1")).startswith(b"+OK")
    assert (await client.cmd("QUIT")).startswith(b"+OK")
    remaining = await store.messages(ANN, INBOX)
    assert [m.uid for m in remaining] == [b.uid]
    assert a.uid != b.uid


async def test_idle_timeout_closes(store: MaildirStore) -> None:
    async with running_pop3(store, timeout=0.2) as listener:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        assert (await reader.readline()).startswith(b"+OK")
        assert (
            await asyncio.wait_for(reader.read(), 10)
            == b"-ERR Idle timeout, closing connection\r\n"
        )
        writer.close()
        await writer.wait_closed()


async def test_lock_released_when_connection_drops(store: MaildirStore, pop: Listener) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", pop.port)
    await reader.readline()
    writer.write(f"AUTH PLAIN {PLAIN}\r\n".encode())
    assert (await reader.readline()).startswith(b"+OK")
    assert pop.locks.held(ANN)
    writer.write_eof()  # the server sees EOF, releases the lock, then closes
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
    await writer.wait_closed()
    assert not pop.locks.held(ANN)


async def test_stls_discards_pipelined_plaintext(
    store: MaildirStore,
    pop3_server_tls: ssl.SSLContext,
    pop3_client_tls: ssl.SSLContext,
) -> None:
    async with running_pop3(
        store, tls_context=pop3_server_tls, allow_plaintext_auth=False
    ) as listener:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        c = Client(reader, writer)
        await c.line()
        await c.send(f"STLS\r\nUSER {ANN}\r\n".encode())  # the USER is injected
        assert await c.line() == b"+OK Begin TLS negotiation\r\n"
        await writer.start_tls(pop3_client_tls, server_hostname="127.0.0.1")
        assert await c.cmd("CAPA") == b"+OK Capability list follows\r\n"
        assert b"STLS\r\n" not in await c.multiline()
        assert await c.cmd("PASS ann-secret") == b"-ERR USER first\r\n"
        assert (await c.cmd("STLS")).startswith(b"-ERR")
        assert (await c.cmd(f"AUTH PLAIN {PLAIN}")).startswith(b"+OK")
        assert await c.cmd("CAPA") == b"+OK Capability list follows\r\n"
        caps = await c.multiline()
        assert b"USER\r\n" not in caps and b"TOP\r\n" in caps
        assert (await c.cmd("QUIT")).startswith(b"+OK")
        writer.close()
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            await writer.wait_closed()


async def test_quit_keeps_flags_changed_meanwhile(store: MaildirStore, client: Client) -> None:
    a = await store.deliver(ANN, message("a"))
    b = await store.deliver(ANN, message("b"))
    await client.cmd(f"AUTH PLAIN {PLAIN}")
    await store.set_flags(ANN, INBOX, b.uid, {"\\Flagged"})  # e.g. over IMAP
    assert (await client.cmd("DELE 1")).startswith(b"+OK")
    assert (await client.cmd("QUIT")).startswith(b"+OK Bye (1")
    [left] = await store.messages(ANN, INBOX)
    assert (left.uid, left.flags) == (b.uid, frozenset({"\\Flagged"}))
    assert a.uid != b.uid
