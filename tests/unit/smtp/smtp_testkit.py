"""Test helpers for the SMTP listener: a scripted sink, a running listener, a raw client."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

from mailward.smtp.mx import ReverseResolver, start_mx
from mailward.smtp.types import Envelope, Reply

HOSTNAME = "mx.test"
OK_RCPT = Reply(250, "2.1.5", "OK")
QUEUED = Reply(250, "2.0.0", "Ok: queued")
RELAY_DENIED = Reply(550, "5.7.1", "Relay access denied")
UNKNOWN_USER = Reply(550, "5.1.1", "User unknown")
OVER_QUOTA = Reply(452, "4.2.2", "Mailbox full")
WAIT = 10.0  # upper bound on any single read; a hang fails instead of blocking the suite


@dataclass
class FakeSink:
    """Scripted ``InboundSink``: per-address RCPT replies, records accepted envelopes."""

    rcpt_replies: dict[str, Reply] = field(default_factory=dict)
    accept_reply: Reply = QUEUED
    rcpt_error: Exception | None = None
    accept_error: Exception | None = None
    checked: list[str] = field(default_factory=list)
    envelopes: list[Envelope] = field(default_factory=list)

    async def check_recipient(self, address: str) -> Reply:
        self.checked.append(address)
        if self.rcpt_error is not None:
            raise self.rcpt_error
        return self.rcpt_replies.get(address.lower(), OK_RCPT)

    async def accept(self, envelope: Envelope) -> Reply:
        if self.accept_error is not None:
            raise self.accept_error
        self.envelopes.append(envelope)
        return self.accept_reply


@dataclass
class Listener:
    """A running listener on 127.0.0.1."""

    port: int
    sink: FakeSink


async def fixed_rdns(ip: str) -> str | None:
    return "client.example"


@asynccontextmanager
async def running_mx(
    sink: FakeSink,
    *,
    tls_context: ssl.SSLContext | None = None,
    data_size_limit: int = 10_000,
    max_recipients: int = 100,
    session_timeout: float = 30.0,
    reverse_dns: ReverseResolver | None = fixed_rdns,
) -> AsyncIterator[Listener]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = await start_mx(
        sink,
        sock=sock,
        hostname=HOSTNAME,
        tls_context=tls_context,
        data_size_limit=data_size_limit,
        max_recipients=max_recipients,
        timeout=session_timeout,
        reverse_dns=reverse_dns,
    )
    try:
        yield Listener(sock.getsockname()[1], sink)
    finally:
        server.close()
        await server.wait_closed()


class RawClient:
    """A byte-level SMTP client for what ``smtplib`` will not send."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.greeting = ""

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        code, lines = await client.reply()
        assert code == 220, lines
        client.greeting = lines[0]
        return client

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def reply(self) -> tuple[int, list[str]]:
        """One (possibly multi-line) reply: its code and the text of each line."""
        lines: list[str] = []
        while True:
            raw = await asyncio.wait_for(self.reader.readline(), WAIT)
            assert raw.endswith(b"\r\n"), f"connection closed or bad reply: {raw!r}"
            text = raw[:-2].decode("utf-8")
            lines.append(text[4:])
            if text[3:4] == " ":
                return int(text[:3]), lines

    async def cmd(self, line: str | bytes) -> str:
        """Send one command line; return the reply's last line as ``"code text"``."""
        data = line.encode() if isinstance(line, str) else line
        await self.send(data + b"\r\n")
        code, lines = await self.reply()
        return f"{code} {lines[-1]}"

    async def replies(self, count: int) -> list[str]:
        out = []
        for _ in range(count):
            code, lines = await self.reply()
            out.append(f"{code} {lines[-1]}")
        return out

    async def at_eof(self) -> bool:
        """True once the server has closed the connection (waits for it)."""
        return await asyncio.wait_for(self.reader.read(), WAIT) == b""

    async def close(self) -> None:
        self.writer.close()
        with suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()


@asynccontextmanager
async def raw_client(port: int, ehlo: str | None = "client.example") -> AsyncIterator[RawClient]:
    client = await RawClient.connect(port)
    try:
        if ehlo is not None:
            assert (await client.cmd(f"EHLO {ehlo}")).startswith("250 ")
        yield client
    finally:
        await client.close()
