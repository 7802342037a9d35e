"""What the mail store tests over IMAP share (test_imap_scale.py, test_store_cache.py): both
backends as the fixture ``pg_or_maildir`` (import ``pg_or_maildir_fixture``), an emptied
PostgreSQL store, the statements PostgreSQL is sent, and a small IMAP client logged in as
ann over a loopback listener."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import pytest
from sqlalchemy import event, text

from mailward.db import Database
from mailward.imap.server import start_imap
from mailward.imap.session import ImapServices

ANN = "ann@example.com"
PASSWORD = "ann-secret"
C = TypeVar("C", bound="Client")


@pytest.fixture(name="pg_or_maildir", params=["maildir", "postgresql"])
def pg_or_maildir_fixture(request: pytest.FixtureRequest) -> str | None:
    """The PostgreSQL URL, or ``None`` for the Maildir store."""
    return request.getfixturevalue("pg_database") if request.param == "postgresql" else None


async def empty_store_db(url: str) -> Database:
    """A :class:`Database` on ``url`` with every store table emptied."""
    db = Database(url)
    async with db.engine.begin() as conn:
        await conn.execute(text("TRUNCATE store_messages, store_folders, store_mailboxes "
                                "RESTART IDENTITY CASCADE"))
    return db


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """The statements sent to ``db`` inside the block."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    target = db.engine.sync_engine
    event.listen(target, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(target, "before_cursor_execute", count)


class Auth:
    async def authenticate(self, login: str, password: str, peer: str) -> str | None:
        return login if (login, password) == (ANN, PASSWORD) else None


class Client:
    """Tagged IMAP commands over one connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.n = reader, writer, 0

    async def line(self) -> bytes:
        return await asyncio.wait_for(self.reader.readline(), 30)

    async def response(self) -> bytes:
        """One response line of a command."""
        response = await self.line()
        assert response, "connection closed"
        return response

    async def command(self, line: str) -> list[bytes]:
        """Untagged responses of one command that must end OK."""
        self.n += 1
        tag = f"t{self.n}".encode()
        self.writer.write(tag + b" " + line.encode() + b"\r\n")
        out: list[bytes] = []
        while True:
            response = await self.response()
            if response.startswith(tag + b" "):
                assert response.startswith(tag + b" OK"), response
                return out
            out.append(response)


@asynccontextmanager
async def imap(services: ImapServices, client_type: type[C]) -> AsyncIterator[C]:
    """A listener for ``services`` and a ``client_type`` logged in as ann with INBOX
    selected."""
    sock = socket.create_server(("127.0.0.1", 0))
    server = await start_imap(services, sock=sock, implicit_tls=False)
    reader, writer = await asyncio.open_connection(*sock.getsockname()[:2])
    client = client_type(reader, writer)
    await reader.readline()
    try:
        await client.command(f"LOGIN {ANN} {PASSWORD}")
        await client.command("SELECT INBOX")
        yield client
    finally:
        writer.close()
        server.close()
        services.shut_down()
        await server.wait_closed()
