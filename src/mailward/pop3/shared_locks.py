"""Maildrop locks across processes.

:class:`PostgresMaildropLocks` (hosting nodes sharing the PostgreSQL store): a PostgreSQL
advisory lock per locked mailbox. Each held lock keeps its own database session open; the
lock belongs to that session, so a node that dies releases its locks with its connections.

:class:`FileMaildropLocks` (the worker processes of one node, Maildir store): an
``flock`` on a lock file per mailbox; the kernel drops it when its process dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from pathlib import Path

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


class FileMaildropLocks(MaildropLocks):
    """An exclusive ``flock`` per locked mailbox on ``directory/<hash>.lock``, held (the
    file kept open) until release. Lock files are left in place: removing one while
    another process opens it would let two processes lock different files."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory
        self._files: dict[str, int] = {}

    def path(self, mailbox: str) -> Path:
        name = hashlib.blake2b(mailbox.encode(), digest_size=16).hexdigest()
        return self.directory / f"{name}.lock"

    async def acquire(self, mailbox: str) -> bool:
        if not await super().acquire(mailbox):  # this process first: no system call
            return False
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path(mailbox), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except BaseException:
            await super().release(mailbox)
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BaseException as exc:
            os.close(fd)
            await super().release(mailbox)
            if isinstance(exc, BlockingIOError):  # another process holds it
                return False
            raise
        self._files[mailbox] = fd
        return True

    async def release(self, mailbox: str) -> None:
        fd = self._files.pop(mailbox, None)
        if fd is not None:
            os.close(fd)  # closing the file drops its lock
        await super().release(mailbox)
