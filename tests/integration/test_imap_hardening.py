"""A FETCH of hostile messages (deep nesting, many parts) does not hold up other sessions.

Session A asks, in one command, for the BODYSTRUCTURE and body sections of many messages
nested past the depth cap (every level ending in the close delimiter of the level below:
the shape whose parse doubled with each level) beside thousand-part multiparts. Once A's
first answer is in, session B sends NOOP: B's OK must come before A's command completes
(the order of arrival, not a duration), and A's answers must be right.
"""

from __future__ import annotations

import asyncio
import re
import ssl

from hosting_helpers import PASSWORD, Hosting, client_tls

from mailward.imap.mime import MAX_DEPTH
from mailward.store import open_store

USER = "bob@acme.example"
MESSAGES = 30
DEPTH = MAX_DEPTH + 10
WIDTH = 300
SAFETY = 120  # seconds: only so that a broken server fails the test instead of hanging it
_LITERAL = re.compile(rb"\{(\d+)\}\r\n$")


def hostile(n: int) -> bytes:
    """A chain ``DEPTH`` multiparts deep next to a multipart of ``WIDTH`` parts."""
    chain = b"Content-Type: text/plain\r\n\r\ninnermost\r\n"
    for i in range(DEPTH):
        b = b"c%d" % i
        chain = (b"Content-Type: multipart/mixed; boundary=" + b + b"\r\n\r\n--" + b
                 + b"\r\n" + chain + b"\r\n--" + b + b"--")
    wide = b"".join(b"--w\r\n\r\n%d\r\n" % i for i in range(WIDTH))
    return (b"From: mallory@example.net\r\nTo: " + USER.encode() + b"\r\nSubject: hostile %d\r\n"
            b"Content-Type: multipart/mixed; boundary=outer\r\n\r\n--outer\r\n" % n + chain
            + b"\r\n--outer\r\nContent-Type: multipart/mixed; boundary=w\r\n\r\n" + wide
            + b"--w--\r\nepilogue\r\n--outer--\r\n")


class Wire:
    """An IMAP client over TLS reading whole responses (literals included)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def login(cls, port: int, context: ssl.SSLContext) -> Wire:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context,
                                                       limit=16 * 1024 * 1024)
        wire = cls(reader, writer)
        assert (await wire.response()).startswith(b"* OK")
        lines = await wire.command(b"l", f'LOGIN {USER} "{PASSWORD}"'.encode())
        assert lines[-1].startswith(b"l OK")
        assert (await wire.command(b"s", b"SELECT INBOX"))[-1].startswith(b"s OK")
        return wire

    async def response(self) -> bytes:
        async with asyncio.timeout(SAFETY):
            line = await self.reader.readline()
            while m := _LITERAL.search(line):
                line += await self.reader.readexactly(int(m.group(1)))
                line += await self.reader.readline()
        assert line.endswith(b"\r\n"), line[-200:]
        return line

    async def until(self, tag: bytes) -> list[bytes]:
        lines = [await self.response()]
        while not lines[-1].startswith(tag + b" "):
            lines.append(await self.response())
        return lines

    async def command(self, tag: bytes, text: bytes) -> list[bytes]:
        self.writer.write(tag + b" " + text + b"\r\n")
        return await self.until(tag)

    def close(self) -> None:
        self.writer.close()


async def test_hostile_fetch_leaves_other_sessions_responsive(hosting: Hosting) -> None:
    store = open_store(hosting.settings, hosting.directory.db)
    for n in range(MESSAGES):
        await store.deliver(USER, hostile(n))
    a = await Wire.login(hosting.imaps, client_tls())
    b = await Wire.login(hosting.imaps, client_tls())
    arrived: list[str] = []

    a.writer.write(b"f FETCH 1:* (BODYSTRUCTURE BODY.PEEK[2.1] BODY.PEEK[2.%d] BODY.PEEK[1.TEXT]"
                   b" BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n" % WIDTH)
    first = await a.response()
    assert first.startswith(b"* 1 FETCH (")

    async def other_session() -> list[bytes]:
        lines = await b.command(b"n", b"NOOP")
        arrived.append("B done")
        return lines

    async def fetching() -> list[bytes]:
        lines = [first, *await a.until(b"f")]
        arrived.append("A done")
        return lines

    noop, fetched = await asyncio.gather(other_session(), fetching())
    assert noop[-1] == b"n OK NOOP completed\r\n"
    assert arrived == ["B done", "A done"]

    assert fetched[-1] == b"f OK Fetch completed\r\n"
    answers = fetched[:-1]
    assert [int(line.split()[1]) for line in answers] == list(range(1, MESSAGES + 1))
    for n, line in enumerate(answers):
        structure = line[line.index(b"BODYSTRUCTURE "):]
        assert structure.count(b'("text" "plain"') == WIDTH  # the chain's text is too deep
        # The chain is served down to the cap; the part there is a leaf holding the rest.
        leaf = b"c%d" % (DEPTH - MAX_DEPTH)  # the root is level 0, part 1 level 1
        assert structure.startswith(b"BODYSTRUCTURE (" + b"(" * MAX_DEPTH
                                    + b'"multipart" "mixed" ("boundary" "' + leaf + b'") ')
        assert b"BODY[2.1] {1}\r\n0 " in line
        assert b"BODY[2.%d] {3}\r\n%d " % (WIDTH, WIDTH - 1) in line
        assert b"BODY[1.TEXT] {0}\r\n" in line  # part 1 is no message/rfc822: no TEXT
        assert b"Subject: hostile %d\r\n" % n in line
    a.close()
    b.close()
