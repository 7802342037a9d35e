"""The durable spool: a message is safe before anyone is told 250.

Embedded (SQLite): the bytes go to an fsync'd file under ``data_dir/queue`` and then the
rows are committed (SQLite runs with ``synchronous=FULL``). PostgreSQL: the bytes go into
the row itself, so a delivery worker on any node can deliver what another node accepted.
A file left behind by a crash between the two steps was never acknowledged; ``sweep``
removes such orphans. Several copies of one message (``enqueue_many``) are queued in one
transaction: all or none, so a client's retry after a failure duplicates nothing.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailward.core.normalize import domain_of
from mailward.db import Database, QueuedMessage, QueuedRecipient, QueueStatus
from mailward.db.models import EXTERNAL_ORIGINS, utcnow
from mailward.directory.facts import domain_owners
from mailward.queue.wake import Wakeup

ORPHAN_AGE = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class NewRecipient:
    """A recipient to queue, with its DSN parameters (RFC 3461)."""

    address: str
    orcpt: str | None = None
    notify: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NewCopy:
    """One copy of a message to queue: its bytes and who gets them."""

    recipients: Sequence[NewRecipient]
    data: bytes


def new_queue_id() -> str:
    """A short, time-ordered, unguessable id (shown to operators, names the file)."""
    return f"{time.time_ns() // 1_000_000:011X}{secrets.token_hex(5).upper()}"


def subject_of(data: bytes) -> str | None:
    """The Subject of a message for queue listings; never raises on bad headers."""
    head = data.split(b"\r\n\r\n", 1)[0]
    try:
        subject = BytesHeaderParser(policy=default_policy).parsebytes(head).get("subject")
    except Exception:  # malformed headers: the listing just shows none
        return None
    return None if subject is None else " ".join(str(subject).split())[:200]


def _write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and make file and directory entry durable."""
    created = not path.parent.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    if created:
        _fsync_dir(path.parent.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """Puts messages into the queue and gets their bytes back."""

    def __init__(self, db: Database, data_dir: Path, wakeup: Wakeup | None = None) -> None:
        self.db = db
        self.root = data_dir / "queue"
        self.in_database = not db.is_sqlite
        self.wakeup = wakeup or Wakeup(db)

    def path_of(self, queue_id: str) -> Path:
        return self.root / queue_id[-2:] / queue_id

    async def enqueue(
        self,
        *,
        sender: str,
        recipients: Sequence[NewRecipient],
        data: bytes,
        origin: str,
        peer: str | None = None,
        envid: str | None = None,
        ret: str | None = None,
        smtputf8: bool = False,
    ) -> str:
        """Make the message durable and queue one row per recipient; returns the queue id.

        Only once this returns may the message be acknowledged.
        """
        [queue_id] = await self.enqueue_many(
            [NewCopy(recipients, data)], sender=sender, origin=origin, peer=peer,
            envid=envid, ret=ret, smtputf8=smtputf8)
        return queue_id

    async def enqueue_many(
        self,
        copies: Sequence[NewCopy],
        *,
        sender: str,
        origin: str,
        peer: str | None = None,
        envid: str | None = None,
        ret: str | None = None,
        smtputf8: bool = False,
        also: Callable[[AsyncSession], Awaitable[object]] | None = None,
    ) -> list[str]:
        """Queue several copies of one message atomically; their queue ids, in order.

        Every copy's bytes are made durable first, then all rows are committed in one
        transaction, with whatever ``also`` adds to it (e.g. quarantine rows of the same
        message). If anything fails, nothing is queued and the files are removed.
        """
        if not copies or any(not copy.recipients for copy in copies):
            raise ValueError("a message needs at least one recipient")
        ids = [new_queue_id() for _ in copies]
        try:
            if not self.in_database:
                await asyncio.to_thread(self._write_files, ids, copies)
            await self._insert(list(zip(ids, copies, strict=True)), sender, origin, peer,
                               envid, ret, smtputf8, also)
        except BaseException:
            for queue_id in ids:
                self.discard_file(queue_id)
            raise
        self.wakeup.local()
        return ids

    async def enqueue_in(
        self,
        session: AsyncSession,
        copies: Sequence[NewCopy],
        *,
        sender: str,
        origin: str,
        smtputf8: bool = False,
    ) -> list[str]:
        """Queue copies as part of ``session``'s transaction (the caller commits, e.g. a
        bounce together with the end of the delivery it reports); their queue ids.

        The bytes are made durable now; if the caller's transaction then fails, the files
        are orphans that ``sweep`` removes. Call ``wakeup.local()`` after the commit.
        """
        if not copies or any(not copy.recipients for copy in copies):
            raise ValueError("a message needs at least one recipient")
        ids = [new_queue_id() for _ in copies]
        if not self.in_database:
            await asyncio.to_thread(self._write_files, ids, copies)
        await self._add_rows(session, list(zip(ids, copies, strict=True)), sender, origin,
                             None, None, None, smtputf8)
        return ids

    def _write_files(self, ids: list[str], copies: Sequence[NewCopy]) -> None:
        for queue_id, copy in zip(ids, copies, strict=True):
            _write_durably(self.path_of(queue_id), copy.data)

    async def _insert(
        self,
        copies: list[tuple[str, NewCopy]],
        sender: str,
        origin: str,
        peer: str | None,
        envid: str | None,
        ret: str | None,
        smtputf8: bool,
        also: Callable[[AsyncSession], Awaitable[object]] | None = None,
    ) -> None:
        async with self.db.session() as session, session.begin():
            await self._add_rows(session, copies, sender, origin, peer, envid, ret, smtputf8)
            if also is not None:
                await also(session)

    async def _add_rows(
        self,
        session: AsyncSession,
        copies: list[tuple[str, NewCopy]],
        sender: str,
        origin: str,
        peer: str | None,
        envid: str | None,
        ret: str | None,
        smtputf8: bool,
    ) -> None:
        domains = {domain_of(r.address) for _, copy in copies for r in copy.recipients}
        now = utcnow()
        # A row belongs to (is shown to) the account of its recipient's domain; mail from
        # inside mailward to a domain nobody proved belongs to no account, or a tenant
        # claiming someone else's domain would see other tenants' mail to it.
        owners = await domain_owners(session, domains,
                                     verified_only=origin not in EXTERNAL_ORIGINS)
        for queue_id, copy in copies:
            message = QueuedMessage(
                queue_id=queue_id,
                sender=sender,
                size=len(copy.data),
                origin=origin,
                peer=peer,
                envid=envid,
                ret=ret,
                smtputf8=smtputf8,
                subject=subject_of(copy.data),
                received_at=now,
                body=copy.data if self.in_database else None,
            )
            message.recipients = [
                QueuedRecipient(
                    recipient=r.address,
                    domain=domain_of(r.address),
                    account_id=owners.get(domain_of(r.address)),
                    orcpt=r.orcpt,
                    notify=",".join(r.notify) or None,
                    status=QueueStatus.QUEUED,
                    attempts=0,
                    next_attempt_at=now,
                    delay_warned=False,
                )
                for r in copy.recipients
            ]
            session.add(message)
        await self.wakeup.announce(session)

    async def read(self, message: QueuedMessage) -> bytes:
        """The message bytes (``OSError`` if the spool file vanished)."""
        if message.body is not None:
            return message.body
        return await asyncio.to_thread(self.path_of(message.queue_id).read_bytes)

    async def remove_if_done(self, message_id: int, queue_id: str) -> bool:
        """Drop a message whose recipients are all finished; True if it was dropped."""
        async with self.db.session() as session, session.begin():
            left = await session.scalar(
                select(QueuedRecipient.id).where(QueuedRecipient.message_id == message_id)
                .limit(1)
            )
            if left is not None:
                return False
            await session.execute(delete(QueuedMessage).where(QueuedMessage.id == message_id))
        self.discard_file(queue_id)
        return True

    def discard_file(self, queue_id: str) -> None:
        if not self.in_database:
            self.path_of(queue_id).unlink(missing_ok=True)

    async def sweep(self) -> int:
        """Remove spool files older than an hour that no queue row refers to."""
        if self.in_database or not self.root.exists():
            return 0
        cutoff = time.time() - ORPHAN_AGE.total_seconds()
        candidates = await asyncio.to_thread(
            lambda: [p for p in self.root.glob("*/*") if p.stat().st_mtime < cutoff]
        )
        if not candidates:
            return 0
        async with self.db.session() as session:
            known = set(
                (await session.scalars(
                    select(QueuedMessage.queue_id).where(
                        QueuedMessage.queue_id.in_([p.name for p in candidates])
                    )
                )).all()
            )
        orphans = [p for p in candidates if p.name not in known]
        for path in orphans:
            path.unlink(missing_ok=True)
        return len(orphans)
