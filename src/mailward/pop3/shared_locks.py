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
    """A PostgreSQL advisory lock per locked mailbox, each held by a database session of
    its own. A session whose lock was released (``pg_advisory_unlock`` said so) holds no
    lock and is kept for the next one, up to ``IDLE_SESSIONS``: a POP3 login then costs
    one round trip, not a new connection."""

    IDLE_SESSIONS = 16

    def __init__(self, database_url: str) -> None:
        super().__init__()
        url = make_url(database_url).set(drivername="postgresql")
        self.dsn = url.render_as_string(hide_password=False)
        self._sessions: dict[str, asyncpg.Connection] = {}
        self._idle: list[asyncpg.Connection] = []

    async def _try_lock(self, mailbox: str) -> tuple[asyncpg.Connection, bool]:
        while self._idle:  # a kept session first; one the server dropped is discarded
            conn = self._idle.pop()
            if conn.is_closed():
                continue
            try:
                return conn, await self._take(conn, mailbox)
            except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError):
                conn.terminate()
        conn = await asyncpg.connect(self.dsn, timeout=10)
        try:
            return conn, await self._take(conn, mailbox)
        except BaseException:
            conn.terminate()
            raise

    @staticmethod
    async def _take(conn: asyncpg.Connection, mailbox: str) -> bool:
        return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1::int, $2::int)",
                                        NAMESPACE, lock_key(mailbox), timeout=10))

    async def _keep_or_close(self, conn: asyncpg.Connection) -> None:
        if len(self._idle) < self.IDLE_SESSIONS and not conn.is_closed():
            self._idle.append(conn)
        else:
            with contextlib.suppress(Exception):
                await conn.close()

    async def acquire(self, mailbox: str) -> bool:
        if not await super().acquire(mailbox):  # this node first: no round trip
            return False
        try:
            conn, taken = await self._try_lock(mailbox)
        except BaseException:
            await super().release(mailbox)
            raise
        if not taken:
            await self._keep_or_close(conn)  # it holds no lock
            await super().release(mailbox)
            return False
        self._sessions[mailbox] = conn
        return True

    async def aclose(self) -> None:
        """Close the kept sessions (held locks stay with their POP3 sessions)."""
        idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                await conn.close(timeout=5)

    async def release(self, mailbox: str) -> None:
        conn = self._sessions.pop(mailbox, None)
        if conn is not None:
            unlocked = False
            with contextlib.suppress(Exception):
                unlocked = bool(await conn.fetchval(
                    "SELECT pg_advisory_unlock($1::int, $2::int)", NAMESPACE,
                    lock_key(mailbox), timeout=10))
            if unlocked:
                await self._keep_or_close(conn)
            else:  # ending the session ends whatever lock it may still hold
                with contextlib.suppress(Exception):
                    await conn.close()
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
