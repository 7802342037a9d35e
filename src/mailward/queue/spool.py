"""The durable spool: a message is safe before anyone is told 250.

Embedded (SQLite): the bytes go to an fsync'd file under ``data_dir/queue`` and then the
rows are committed (SQLite runs with ``synchronous=FULL``). PostgreSQL: the bytes go into
the row itself, so a delivery worker on any node can deliver what another node accepted.
A file left behind by a crash between the two steps was never acknowledged; ``sweep``
removes such orphans. Several copies of one message (``enqueue_many``) are queued in one
transaction: all or none, so a client's retry after a failure duplicates nothing.

The hot writes (``enqueue_many``, ``finish``) go through one :class:`GroupCommitter` per
spool: concurrent messages share a transaction (and its fsync); each caller returns only
after its group committed.

Webmail holds mail back in the queue itself (``not_before``: rows not due before the end
of the undo window or the send-later time) and cancels it with ``cancel_unclaimed`` while
no worker has claimed it.

Every message row names its trace (``trace_id``, :mod:`mailward.trace`): a new message's
first copy has the trace's id as its queue id; copies made from it later (forwards, DSNs,
releases) store the trace of the message they come from (``parent_trace``). When a
message leaves the queue, the group transaction that drops it records the trace's
``dequeue`` event (with a :class:`~mailward.trace.recorder.Trace`).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.policy import default as default_policy
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailward.core.normalize import domain_of
from mailward.db import Database, QueuedMessage, QueueStatus
from mailward.db.models import EXTERNAL_ORIGINS, utcnow
from mailward.directory.facts import domain_facts
from mailward.queue.group_commit import MESSAGES, RECIPIENTS, WRITE_LOCK, GroupCommitter, QueueRows
from mailward.queue.traced import dequeued
from mailward.queue.wake import Wakeup
from mailward.trace import ids
from mailward.trace.events import EventGroup

if TYPE_CHECKING:
    from mailward.trace.recorder import Trace

ORPHAN_AGE = timedelta(hours=1)
SUBJECT = re.compile(rb"(?:^|\n)subject:[ \t]*(.*?)\r?(?=\n(?![ \t])|$)",
                     re.IGNORECASE | re.DOTALL)


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


class Spooled(Protocol):
    """A queued message as far as reading its bytes goes (a row, or what a claim read)."""

    @property
    def id(self) -> int: ...
    @property
    def queue_id(self) -> str: ...
    @property
    def body(self) -> bytes | None: ...


def new_queue_id() -> str:
    """A short, time-ordered, unguessable id (shown to operators, names the file)."""
    return ids.new_id()


def subject_of(data: bytes) -> str | None:
    """The Subject of a message for queue listings; never raises on bad headers.

    Only the header section up to the first Subject field is looked at, and only that
    field is decoded (RFC 2047), as the email package's default policy does.
    """
    end = data.find(b"\r\n\r\n")
    found = SUBJECT.search(data, 0, len(data) if end < 0 else end + 2)
    if found is None:
        return None
    try:
        raw = found.group(1).decode("ascii", "surrogateescape")
        subject = default_policy.header_factory("subject", raw)
    except Exception:  # malformed header: the listing just shows none
        return None
    return " ".join(str(subject).split())[:200]


# Spool files are written and fsynced on threads of their own: on the default executor
# they queued behind the spam filter's CPU jobs, holding every SMTP session's 250 back.
_WRITERS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="mailward-spool")


def _write_durably(paths: list[Path], blobs: list[bytes]) -> None:
    """Write each blob to its new file and make files and directory entries durable.

    No temporary name and rename: a file only counts once a committed row names it, and
    that happens after this returned, so a crash midway leaves an orphan for ``sweep``.
    Each directory is synced once, however many files went into it.
    """
    directories: dict[Path, bool] = {}
    for path, data in zip(paths, blobs, strict=True):
        if path.parent not in directories:
            directories[path.parent] = not path.parent.exists()
            path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    for directory, created in directories.items():
        _fsync_dir(directory)
        if created:
            _fsync_dir(directory.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _TooLate(Exception):
    """A worker claimed or tried the message first (rolls the cancelling back)."""


class Spool:
    """Puts messages into the queue and gets their bytes back."""

    def __init__(self, db: Database, data_dir: Path, wakeup: Wakeup | None = None, *,
                 trace: Trace | None = None) -> None:
        self.db = db
        self.trace = trace  # records ``dequeue`` when a message leaves (None: nothing)
        self.root = data_dir / "queue"
        self.in_database = not db.is_sqlite
        self.wakeup = wakeup or Wakeup(db)
        self.group = GroupCommitter(db, before_commit=self._announce,
                                    after_commit=self._woken)

    async def _announce(self, session: AsyncSession, rows: QueueRows) -> None:
        if rows.messages:
            await self.wakeup.announce(session)
        if self.trace is not None:
            for message_id, queue_id in rows.dropped.items():
                if (why := rows.why.get(message_id)) is not None:
                    reason, by = why
                    await self.trace.add(session, EventGroup(
                        rows.traces.get(message_id) or queue_id,
                        [dequeued(queue_id, reason, by)]))

    def _woken(self, rows: QueueRows) -> None:
        if rows.messages:
            self.wakeup.local()

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
        not_before: datetime | None = None,
        queue_id: str | None = None,
        also: Callable[[AsyncSession], Awaitable[object]] | None = None,
        trace_id: str | None = None,
        parent_trace: str | None = None,
    ) -> str:
        """Make the message durable and queue one row per recipient; returns the queue id.

        Only once this returns may the message be acknowledged. ``not_before``: no worker
        claims the rows before then (webmail's undo window and send later); ``queue_id``:
        one the caller made with :func:`new_queue_id` (to name it in ``also``'s rows);
        ``trace_id``/``parent_trace``: as for :meth:`enqueue_many`.
        """
        [queue_id] = await self.enqueue_many(
            [NewCopy(recipients, data)], sender=sender, origin=origin, peer=peer,
            envid=envid, ret=ret, smtputf8=smtputf8, not_before=not_before, also=also,
            ids=[queue_id] if queue_id else None, trace_id=trace_id,
            parent_trace=parent_trace)
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
        not_before: datetime | None = None,
        ids: Sequence[str] | None = None,
        trace_id: str | None = None,
        parent_trace: str | None = None,
    ) -> list[str]:
        """Queue several copies of one message atomically; their queue ids, in order.

        Every copy's bytes are made durable first, then all rows are committed in one
        transaction, with whatever ``also`` adds to it (e.g. quarantine rows of the same
        message). If anything fails, nothing is queued and the files are removed.
        ``not_before``: the rows are not due before then; ``ids``: the copies' queue ids
        (made by :func:`new_queue_id`) when the caller needs them beforehand.

        The trace every copy stores: ``trace_id`` (a new message's, made with
        :func:`mailward.trace.ids.new_id`; the first copy's queue id unless ``ids`` are
        given), or ``parent_trace`` (that of the message this one comes from: a forward,
        a release; the queue ids are new), else the first copy's queue id.
        """
        if not copies or any(not copy.recipients for copy in copies):
            raise ValueError("a message needs at least one recipient")
        if trace_id and parent_trace:
            raise ValueError("a new trace or a parent's, not both")
        if ids is None:
            ids = [new_queue_id() for _ in copies]
            if trace_id:
                ids[0] = trace_id
        ids = list(ids)
        if len(ids) != len(copies):
            raise ValueError("one queue id per copy")
        trace = trace_id or parent_trace or ids[0]
        pairs = list(zip(ids, copies, strict=True))

        async def work(session: AsyncSession, rows: QueueRows) -> None:
            await self._add_rows(session, rows, pairs, sender, origin, peer, envid, ret,
                                 smtputf8, trace, not_before)
            if also is not None:
                await also(session)

        try:
            if not self.in_database:
                await asyncio.get_running_loop().run_in_executor(
                    _WRITERS, self._write_files, ids, copies)
            await self.group.run(work)
        except asyncio.CancelledError:
            raise  # its group may still commit: the files stay (``sweep`` finds orphans)
        except BaseException:
            for queue_id in ids:
                self.discard_file(queue_id)
            raise
        return ids

    async def enqueue_in(
        self,
        session: AsyncSession,
        copies: Sequence[NewCopy],
        *,
        sender: str,
        origin: str,
        smtputf8: bool = False,
        parent_trace: str | None = None,
    ) -> list[str]:
        """Queue copies as part of ``session``'s transaction (the caller commits, e.g. a
        bounce together with the end of the delivery it reports); their queue ids.

        The bytes are made durable now; if the caller's transaction then fails, the files
        are orphans that ``sweep`` removes. Call ``wakeup.local()`` after the commit.
        ``parent_trace``: the trace of the message they come from (else their own).
        """
        if not copies or any(not copy.recipients for copy in copies):
            raise ValueError("a message needs at least one recipient")
        ids = [new_queue_id() for _ in copies]
        if not self.in_database:
            await asyncio.get_running_loop().run_in_executor(
                _WRITERS, self._write_files, ids, copies)
        rows = QueueRows()
        await self._add_rows(session, rows, list(zip(ids, copies, strict=True)), sender,
                             origin, None, None, None, smtputf8, parent_trace or ids[0])
        await rows.apply(session)
        await self.wakeup.announce(session)
        return ids

    def _write_files(self, ids: list[str], copies: Sequence[NewCopy]) -> None:
        _write_durably([self.path_of(queue_id) for queue_id in ids],
                       [copy.data for copy in copies])

    async def _add_rows(
        self,
        session: AsyncSession,
        rows: QueueRows,
        copies: list[tuple[str, NewCopy]],
        sender: str,
        origin: str,
        peer: str | None,
        envid: str | None,
        ret: str | None,
        smtputf8: bool,
        trace_id: str,
        not_before: datetime | None = None,
    ) -> None:
        """Add the rows of ``copies`` to ``rows`` (inserted with the rest of the group)."""
        now = utcnow()
        # held mail (send later) counts as received when it falls due: its queue lifetime
        # and delay warnings run from then
        due = max(now, not_before) if not_before is not None else now
        # A row belongs to (is shown to) the account of its recipient's domain; mail from
        # inside mailward to a domain nobody proved belongs to no account, or a tenant
        # claiming someone else's domain would see other tenants' mail to it.
        verified_only = origin not in EXTERNAL_ORIGINS
        owners: dict[str, int | None] = {}
        for domain in {domain_of(r.address) for _, copy in copies for r in copy.recipients}:
            facts = await domain_facts(session, domain)  # cached per process
            owners[domain] = (facts.account_id if facts is not None
                              and (facts.verified or not verified_only) else None)
        for queue_id, copy in copies:
            rows.add(
                {"queue_id": queue_id, "sender": sender, "size": len(copy.data),
                 "origin": origin, "peer": peer, "envid": envid, "ret": ret,
                 "smtputf8": smtputf8, "subject": subject_of(copy.data), "received_at": due,
                 "body": copy.data if self.in_database else None, "trace_id": trace_id},
                [{"recipient": r.address, "domain": domain_of(r.address),
                  "account_id": owners[domain_of(r.address)], "orcpt": r.orcpt,
                  "notify": ",".join(r.notify) or None, "status": QueueStatus.QUEUED,
                  "attempts": 0, "next_attempt_at": due, "lease_until": None,
                  "lease_owner": None, "last_attempt_at": None, "last_error": None,
                  "delay_warned": False}
                 for r in copy.recipients])

    async def read(self, message: Spooled) -> bytes:
        """The message bytes (``OSError`` if the spool file or row vanished)."""
        if message.body is not None:
            return message.body
        if self.in_database:  # not loaded with the row (a large message)
            async with self.db.session() as session:
                body = await session.scalar(
                    select(QueuedMessage.body).where(QueuedMessage.id == message.id))
            if body is None:
                raise FileNotFoundError(f"queue {message.queue_id}: message row gone")
            return body
        return await asyncio.to_thread(self.path_of(message.queue_id).read_bytes)

    async def remove_if_done(self, message_id: int, queue_id: str, *,
                             reason: str | None = None, by: str | None = None) -> bool:
        """Drop a message whose recipients are all finished; True if it was dropped.
        ``reason``: record the trace's ``dequeue`` with it (None: the caller did)."""
        return bool(await self.finish([], [message_id], reason=reason, by=by))

    async def finish(self, recipient_ids: Sequence[int], message_ids: Sequence[int], *,
                     reason: str | None = "done", by: str | None = None) -> list[str]:
        """Delete finished recipients, then those of ``message_ids`` left with none (and
        their files), in the next group transaction; the queue ids of messages dropped.
        A message dropped records the trace's ``dequeue`` with ``reason`` (and ``by``)
        in that transaction, unless ``reason`` is None."""
        async def work(_session: AsyncSession, rows: QueueRows) -> QueueRows:
            rows.finished += recipient_ids
            rows.maybe_done += message_ids
            if reason is not None:
                for message_id in message_ids:
                    rows.why.setdefault(message_id, (reason, by))
            return rows

        rows = await self.group.run(work)
        dropped = [rows.dropped[i] for i in message_ids if i in rows.dropped]
        for queue_id in dropped:
            self.discard_file(queue_id)
        return dropped

    async def cancel_unclaimed(
        self, queue_id: str, also: Callable[[AsyncSession], Awaitable[object]] | None = None,
        *, by: str | None = None,
    ) -> bool:
        """Delete a message and its rows if no worker has claimed or tried any of them yet
        (webmail's undo send), with whatever ``also`` does, in one transaction; False (and
        nothing changed) when it is too late. The trace records ``dequeue`` (cancelled,
        ``by``) in that transaction.

        The delete is conditional: a worker claiming the rows at the same moment either
        commits first (the rows are no longer ``queued``: nothing is deleted) or waits for
        this transaction (its claim then finds no row).
        """
        try:
            async with self.db.session() as session, session.begin():
                conn = await session.connection()
                if self.db.is_sqlite:  # a write transaction from the start (see WRITE_LOCK)
                    await conn.exec_driver_sql(WRITE_LOCK)
                found = (await session.execute(
                    select(QueuedMessage.id, QueuedMessage.trace_id)
                    .where(QueuedMessage.queue_id == queue_id))).first()
                if found is None:
                    return False
                message_id, trace_id = found
                deleted = (await conn.execute(
                    delete(RECIPIENTS).where(
                        RECIPIENTS.c.message_id == message_id,
                        RECIPIENTS.c.status == QueueStatus.QUEUED,
                        RECIPIENTS.c.attempts == 0, RECIPIENTS.c.lease_owner.is_(None))
                    .returning(RECIPIENTS.c.id))).all()
                left = await conn.scalar(select(func.count()).select_from(RECIPIENTS).where(
                    RECIPIENTS.c.message_id == message_id))
                if not deleted or left:
                    raise _TooLate
                await conn.execute(delete(MESSAGES).where(MESSAGES.c.id == message_id))
                if also is not None:
                    await also(session)
                if self.trace is not None:
                    await self.trace.add(session, EventGroup(
                        trace_id or queue_id, [dequeued(queue_id, "cancelled", by)]))
        except _TooLate:  # rolled back
            return False
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
