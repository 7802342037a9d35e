"""Mailbox change events: IMAP sessions learn quickly that a mailbox changed.

:class:`MailboxEvents` is an in-process hub: every change notice for a mailbox bumps
that mailbox's *version*, and :meth:`MailboxEvents.wait` returns as soon as the version
differs from the one a session last saw. A session reads ``version()``, looks at the
mailbox, then waits with that version, so a change in between is never missed.

:class:`PostgresMailboxEvents` adds LISTEN/NOTIFY on the channel
``mailward_mailbox`` (payload: the mailbox address), so that hosting nodes sharing one
PostgreSQL hear each other's changes. Versions are per node: each node counts what it
heard. After its LISTEN connection is lost and re-established, every version is bumped,
since changes may have been missed meanwhile.

:class:`NodeMailboxEvents` is the same for the worker processes of one node (Maildir
store): each worker binds a unix datagram socket and sends the names of changed mailboxes
to the other workers' sockets.

:class:`NotifyingStore` wraps a :class:`MailStore` and announces every successful change.
All methods must be called from the event loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import struct
import sys
from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

from mailward.store import batch
from mailward.store.interface import (
    INBOX,
    FolderStatus,
    MailStore,
    MessageInfo,
    Stored,
    Summary,
)

if TYPE_CHECKING:
    from mailward.config import Settings

CHANNEL = "mailward_mailbox"
REMEMBERED_MAILBOXES = 65536
KEEPALIVE_SECONDS = 15.0
QUERY_TIMEOUT = 5.0
CONNECT_TIMEOUT = 10.0
RETRY_MIN, RETRY_MAX = 0.5, 15.0
_NOTIFY = "SELECT pg_notify($1, m) FROM unnest($2::text[]) AS m"

log = logging.getLogger(__name__)


def asyncpg_dsn(db_url: str) -> str:
    """A SQLAlchemy URL (``postgresql+asyncpg://...``) as a DSN asyncpg accepts."""
    return make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)


class MailboxEvents:
    """In-process change notices (one node): per-mailbox versions and waiters.

    Versions come from one counter, so they only grow. Only the ``remembered`` most
    recently changed mailboxes are kept; a forgotten mailbox reports the highest version
    forgotten so far, which never lowers a version (at worst a waiter wakes needlessly).
    """

    def __init__(self, *, remembered: int = REMEMBERED_MAILBOXES) -> None:
        self._limit = max(1, remembered)
        self._counter = 0
        self._floor = 0
        self._versions: OrderedDict[str, int] = OrderedDict()
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}

    def version(self, mailbox: str) -> int:
        """The mailbox's current version; it increases on every change notice."""
        return self._versions.get(mailbox, self._floor)

    def changed(self, mailbox: str) -> None:
        """Announce that ``mailbox`` changed: bump its version, wake its waiters."""
        self._bump(mailbox)

    async def wait(self, mailbox: str, seen_version: int, timeout: float) -> int:  # noqa: ASYNC109
        """The current version as soon as it differs from ``seen_version``, or at timeout."""
        current = self.version(mailbox)
        if current != seen_version or timeout <= 0:
            return current
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(mailbox, set())
        waiters.add(future)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await future
        finally:
            waiters.discard(future)
            if not waiters and self._waiters.get(mailbox) is waiters:
                del self._waiters[mailbox]
        return self.version(mailbox)

    async def start(self) -> None:
        """Start hearing other nodes (nothing to do in-process)."""

    async def close(self) -> None:
        """Stop hearing other nodes (nothing to do in-process)."""

    def _bump(self, mailbox: str) -> None:
        self._counter += 1
        self._versions[mailbox] = self._counter
        self._versions.move_to_end(mailbox)
        while len(self._versions) > self._limit:
            _, forgotten = self._versions.popitem(last=False)
            self._floor = max(self._floor, forgotten)
        _wake(self._waiters.get(mailbox, ()))

    def _bump_all(self) -> None:
        """Every mailbox may have changed (e.g. notices were missed)."""
        self._counter += 1
        self._floor = self._counter
        self._versions.clear()
        for waiters in self._waiters.values():
            _wake(waiters)


def _wake(waiters: Iterable[asyncio.Future[None]]) -> None:
    for future in waiters:
        if not future.done():
            future.set_result(None)


class PostgresMailboxEvents(MailboxEvents):
    """:class:`MailboxEvents` shared by the nodes of one PostgreSQL (LISTEN/NOTIFY).

    One dedicated asyncpg connection per node LISTENs and also sends this node's
    notices (batched, in a background task, so :meth:`changed` never blocks). It is
    kept alive with a periodic ``SELECT 1`` and re-established after loss; notices
    queued meanwhile are sent once it is back. A node ignores its own notices.
    """

    def __init__(self, db_url: str, *, remembered: int = REMEMBERED_MAILBOXES) -> None:
        super().__init__(remembered=remembered)
        self._dsn = asyncpg_dsn(db_url)
        self._pending: set[str] = set()
        self._kick = asyncio.Event()
        self._attempted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._own_pid: int | None = None
        self._connects = 0

    @property
    def backend_pid(self) -> int | None:
        """The server process id of the LISTEN connection; ``None`` while it is down."""
        return self._own_pid

    def changed(self, mailbox: str) -> None:
        """Bump locally now; tell the other nodes in the background."""
        self._bump(mailbox)
        self._pending.add(mailbox)
        self._kick.set()

    async def start(self) -> None:
        """Start listening; returns after the first connection attempt (even a failed
        one: attempts go on in the background)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="mailward-mailbox-events")
        attempted = asyncio.ensure_future(self._attempted.wait())
        try:
            await asyncio.wait({self._task, attempted}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            attempted.cancel()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _heard(self, _conn: Any, pid: int, _channel: str, payload: str) -> None:
        if pid != self._own_pid and payload:
            self._bump(payload)

    async def _run(self) -> None:
        import asyncpg

        delay = RETRY_MIN
        while True:
            try:
                conn = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT)
            except Exception as exc:  # any failure: retry later
                log.warning("mailbox events: cannot connect to LISTEN (%s); retrying", exc)
                self._attempted.set()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            try:
                await self._serve(conn)
            except Exception as exc:  # any failure: reconnect
                log.warning("mailbox events: LISTEN connection lost (%s); reconnecting", exc)
            finally:
                self._own_pid = None
                conn.terminate()
            await asyncio.sleep(RETRY_MIN)
            delay = RETRY_MIN

    async def _serve(self, conn: Any) -> None:
        """Listen and send queued notices until the connection fails."""
        conn.add_termination_listener(lambda _conn: self._kick.set())
        await conn.add_listener(CHANNEL, self._heard)
        self._own_pid = conn.get_server_pid()
        if self._connects:
            self._bump_all()  # notices sent while we were away are lost
        self._connects += 1
        self._attempted.set()
        while not conn.is_closed():
            try:
                async with asyncio.timeout(KEEPALIVE_SECONDS):
                    await self._kick.wait()
            except TimeoutError:
                await conn.fetchval("SELECT 1", timeout=QUERY_TIMEOUT)
                continue
            self._kick.clear()
            if self._pending and not conn.is_closed():
                batch, self._pending = self._pending, set()
                try:
                    await conn.execute(_NOTIFY, CHANNEL, sorted(batch), timeout=QUERY_TIMEOUT)
                except BaseException:
                    self._pending |= batch
                    raise
        raise ConnectionError("the server closed the connection")


DATAGRAM_BYTES = 32768  # a batch of mailbox names is sent in datagrams of at most this
ALL = b"*"  # "every mailbox may have changed": sent after a peer's queue was full
RESEND_SECONDS = 0.05
_CREDENTIALS = struct.Struct("iII")  # SCM_CREDENTIALS: pid, uid, gid


class NodeMailboxEvents(MailboxEvents):
    """:class:`MailboxEvents` shared by the ``workers`` processes of one node (Linux).

    Worker ``index`` binds the unix datagram socket ``address(data_dir, index)`` in the
    abstract namespace (gone with its process: nothing stale is left behind) and sends
    each batch of changed mailboxes, one name a line, to the other workers' sockets
    (a worker that is down, e.g. restarting, is skipped). Datagrams are accepted only
    from processes of the same user (kernel-checked credentials). A peer whose socket
    queue was full is sent ``*`` (bump every mailbox) once it takes datagrams again.
    """

    def __init__(self, data_dir: Path, index: int, workers: int, *,
                 remembered: int = REMEMBERED_MAILBOXES) -> None:
        super().__init__(remembered=remembered)
        self._own = self.address(data_dir, index)
        self._peers = [self.address(data_dir, k) for k in range(workers) if k != index]
        self._sock: socket.socket | None = None
        self._pending: set[str] = set()
        self._overflowed: set[str] = set()
        self._flush: asyncio.Handle | asyncio.TimerHandle | None = None

    @staticmethod
    def address(data_dir: Path, index: int) -> str:
        """The abstract socket address of worker ``index`` of the node using ``data_dir``."""
        node = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:32]
        return f"\0mailward-events-{node}-{index}"

    def changed(self, mailbox: str) -> None:
        """Bump locally now; tell the other workers as soon as the loop is free."""
        self._bump(mailbox)
        self._pending.add(mailbox)
        self._schedule(0)

    async def start(self) -> None:
        if self._sock is not None:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            sock.bind(self._own)
        except OSError as exc:  # e.g. a worker of an older run still draining
            sock.close()
            log.warning("mailbox events: cannot bind %r (%s); other workers' changes "
                        "reach this one only by polling", self._own[1:], exc)
            return
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._receive)
        self._schedule(0)  # changes made before start

    async def close(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        sock, self._sock = self._sock, None
        if sock is not None:
            asyncio.get_running_loop().remove_reader(sock.fileno())
            sock.close()

    def _schedule(self, delay: float) -> None:
        if self._sock is None or self._flush is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: sent with the next change or at start
            return
        self._flush = (loop.call_later(delay, self._send) if delay
                       else loop.call_soon(self._send))

    def _send(self) -> None:
        self._flush = None
        sock = self._sock
        if sock is None:
            return
        batch, self._pending = sorted(self._pending), set()
        datagrams = _datagrams(batch)
        for peer in self._peers:
            if peer in self._overflowed:
                if not _send_to(sock, peer, [ALL]):
                    continue
                self._overflowed.discard(peer)  # "*" covers this batch too
                continue
            if not _send_to(sock, peer, datagrams):
                self._overflowed.add(peer)
        if self._overflowed:
            self._schedule(RESEND_SECONDS)

    def _receive(self) -> None:
        sock = self._sock
        space = socket.CMSG_SPACE(_CREDENTIALS.size)
        while sock is not None:
            try:
                data, ancillary, _flags, _address = sock.recvmsg(DATAGRAM_BYTES, space)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("mailbox events: receiving failed: %s", exc)
                return
            if not _from_own_user(ancillary):
                continue
            for name in data.split(b"\n"):
                if name == ALL:
                    self._bump_all()
                elif name:
                    self._bump(name.decode("utf-8", "replace"))


def _datagrams(names: list[str]) -> list[bytes]:
    """``names`` one a line, in datagrams of at most :data:`DATAGRAM_BYTES`."""
    datagrams: list[bytes] = []
    current = bytearray()
    for name in names:
        encoded = name.encode()
        if current and len(current) + 1 + len(encoded) > DATAGRAM_BYTES:
            datagrams.append(bytes(current))
            current = bytearray()
        current += (b"\n" if current else b"") + encoded
    if current:
        datagrams.append(bytes(current))
    return datagrams


def _send_to(sock: socket.socket, peer: str, datagrams: list[bytes]) -> bool:
    """Send ``datagrams`` to ``peer``; ``False`` if its queue is full (the rest unsent).
    A peer that is not there (not started, restarting) counts as served."""
    for datagram in datagrams:
        try:
            sock.sendto(datagram, peer)
        except (BlockingIOError, InterruptedError):
            return False
        except (ConnectionRefusedError, FileNotFoundError):
            return True
        except OSError as exc:
            log.warning("mailbox events: cannot notify %r: %s", peer[1:], exc)
            return True
    return True


def _from_own_user(ancillary: list[tuple[int, int, bytes]]) -> bool:
    for level, kind, data in ancillary:
        if (level, kind) == (socket.SOL_SOCKET, socket.SCM_CREDENTIALS):
            _pid, uid, _gid = _CREDENTIALS.unpack(data[:_CREDENTIALS.size])
            return uid == os.getuid()
    return False


class NotifyingStore:
    """A :class:`MailStore` that announces every successful change to ``events``.

    Reads and subscription changes pass straight through to ``inner``.
    """

    def __init__(self, inner: MailStore, events: MailboxEvents) -> None:
        self.inner = inner
        self.events = events

    async def deliver(
        self,
        mailbox: str,
        data: bytes,
        *,
        folder: str = INBOX,
        flags: frozenset[str] = frozenset(),
        quota_bytes: int | None = None,
        internal_date: datetime | None = None,
    ) -> Stored:
        stored = await self.inner.deliver(
            mailbox,
            data,
            folder=folder,
            flags=flags,
            quota_bytes=quota_bytes,
            internal_date=internal_date,
        )
        self.events.changed(mailbox)
        return stored

    async def usage(self, mailbox: str) -> int:
        return await self.inner.usage(mailbox)

    async def folders(self, mailbox: str) -> list[FolderStatus]:
        return await self.inner.folders(mailbox)

    async def folder_status(self, mailbox: str, folder: str) -> FolderStatus:
        return await self.inner.folder_status(mailbox, folder)

    async def create_folder(self, mailbox: str, folder: str) -> None:
        await self.inner.create_folder(mailbox, folder)
        self.events.changed(mailbox)

    async def delete_folder(self, mailbox: str, folder: str) -> None:
        await self.inner.delete_folder(mailbox, folder)
        self.events.changed(mailbox)

    async def rename_folder(self, mailbox: str, folder: str, new_name: str) -> None:
        await self.inner.rename_folder(mailbox, folder, new_name)
        self.events.changed(mailbox)

    async def subscriptions(self, mailbox: str) -> list[str]:
        return await self.inner.subscriptions(mailbox)

    async def subscribe(self, mailbox: str, folder: str) -> None:
        await self.inner.subscribe(mailbox, folder)

    async def unsubscribe(self, mailbox: str, folder: str) -> None:
        await self.inner.unsubscribe(mailbox, folder)

    async def messages(self, mailbox: str, folder: str) -> list[MessageInfo]:
        return await self.inner.messages(mailbox, folder)

    async def fetch(self, mailbox: str, folder: str, uid: int) -> bytes:
        return await self.inner.fetch(mailbox, folder, uid)

    async def fetch_many(self, mailbox: str, folder: str, uids: Iterable[int]) -> dict[int, bytes]:
        return await self.inner.fetch_many(mailbox, folder, uids)

    async def set_flags(
        self, mailbox: str, folder: str, uid: int, flags: Iterable[str]
    ) -> frozenset[str]:
        stored = await self.inner.set_flags(mailbox, folder, uid, flags)
        self.events.changed(mailbox)
        return stored

    async def set_flags_many(
        self, mailbox: str, folder: str, changes: dict[int, frozenset[str]]
    ) -> dict[int, frozenset[str]]:
        stored = await batch.set_flags_many(self.inner, mailbox, folder, changes)
        if stored:
            self.events.changed(mailbox)
        return stored

    async def summaries(self, mailbox: str, folder: str, uids: Iterable[int]) -> dict[int, Summary]:
        return await batch.summaries(self.inner, mailbox, folder, uids)

    async def vanished(self, mailbox: str, folder: str, since: int) -> list[int] | None:
        return await batch.vanished(self.inner, mailbox, folder, since)

    async def set_flags_unchanged_since(
        self, mailbox: str, folder: str, changes: dict[int, frozenset[str]], modseq: int
    ) -> tuple[dict[int, frozenset[str]], list[int]]:
        stored, modified = await batch.set_flags_unchanged_since(
            self.inner, mailbox, folder, changes, modseq
        )
        if stored:
            self.events.changed(mailbox)
        return stored, modified

    async def expunge(
        self, mailbox: str, folder: str, uids: Iterable[int] | None = None
    ) -> list[int]:
        expunged = await self.inner.expunge(mailbox, folder, uids)
        if expunged:
            self.events.changed(mailbox)
        return expunged

    async def copy(
        self,
        mailbox: str,
        folder: str,
        uids: Iterable[int],
        target_folder: str,
        *,
        quota_bytes: int | None = None,
    ) -> dict[int, int]:
        mapping = await self.inner.copy(
            mailbox, folder, uids, target_folder, quota_bytes=quota_bytes
        )
        if mapping:
            self.events.changed(mailbox)
        return mapping

    async def move(
        self, mailbox: str, folder: str, uids: Iterable[int], target_folder: str
    ) -> dict[int, int]:
        mapping = await self.inner.move(mailbox, folder, uids, target_folder)
        if mapping:
            self.events.changed(mailbox)
        return mapping

    async def delete_mailbox(self, mailbox: str) -> None:
        await self.inner.delete_mailbox(mailbox)
        self.events.changed(mailbox)


def open_events(settings: Settings) -> MailboxEvents:
    """The change-event hub for the configured store: LISTEN/NOTIFY on PostgreSQL; unix
    sockets between the worker processes of a node on Maildir (Linux), else in-process."""
    if settings.store_backend == "postgresql":
        return PostgresMailboxEvents(settings.db_url)
    workers = settings.workers or 1
    if workers > 1 and sys.platform.startswith("linux"):
        return NodeMailboxEvents(settings.data_dir, settings.worker_index, workers)
    if workers > 1:
        log.warning("mailbox events between worker processes need Linux; IDLE sessions "
                    "see other workers' changes only by polling")
    return MailboxEvents()
