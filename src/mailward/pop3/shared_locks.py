"""Maildrop locks across hosting nodes: a PostgreSQL advisory lock per locked mailbox.

Each held lock keeps its own database session open; the lock belongs to that session,
so a node that dies releases its locks with its connections.
"""

from __future__ import annotations

import contextlib
import hashlib

import asyncpg
from sqlalchemy.engine import make_url

from mailward.pop3.maildrop import MaildropLocks

NAMESPACE = 0x504F5033  # "POP3": the first key of the two-key advisory lock


def lock_key(mailbox: str) -> int:
    """A stable signed 32-bit key for ``mailbox``."""
    return int.from_bytes(hashlib.blake2b(mailbox.encode(), digest_size=4).digest(),
                          "big", signed=True)


class PostgresMaildropLocks(MaildropLocks):
    def __init__(self, database_url: str) -> None:
        super().__init__()
        url = make_url(database_url).set(drivername="postgresql")
        self.dsn = url.render_as_string(hide_password=False)
        self._sessions: dict[str, asyncpg.Connection] = {}

    async def acquire(self, mailbox: str) -> bool:
        if not await super().acquire(mailbox):  # this node first: no round trip
            return False
        try:
            conn = await asyncpg.connect(self.dsn, timeout=10)
            taken = await conn.fetchval("SELECT pg_try_advisory_lock($1::int, $2::int)",
                                        NAMESPACE, lock_key(mailbox))
        except BaseException:
            await super().release(mailbox)
            raise
        if not taken:
            await conn.close()
            await super().release(mailbox)
            return False
        self._sessions[mailbox] = conn
        return True

    async def release(self, mailbox: str) -> None:
        conn = self._sessions.pop(mailbox, None)
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()  # ends the session, and with it the advisory lock
        await super().release(mailbox)
