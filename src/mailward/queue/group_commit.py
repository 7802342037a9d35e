"""Group commit: the queue writes of concurrent callers share one transaction.

Every accepted message and every finished delivery writes a few queue rows and must be
durable before anyone is told (the MX's 250, the end of a delivery). Committing each alone
costs a transaction and an fsync per message; :class:`GroupCommitter` runs the writes of
whoever is waiting in one transaction instead:

* a caller hands in its work (:meth:`GroupCommitter.run`) and waits for the commit of the
  group it joined, so its answer is never given before its rows are durable;
* when no commit is in flight the group starts at once (no timer: no added latency at low
  load); while one is in flight, new callers gather and form the next group, of at most
  ``max_members``;
* if the group fails (a member's work raised, or the commit did), every member gets that
  exception: nothing of any member is committed, nobody is told it is (the MX answers
  each of them 451);
* queue rows the members add through :class:`QueueRows` are inserted with one statement
  per table for the whole group (SQLAlchemy Core, built once), and so are the members'
  message trace events (``mailward.trace.recorder.batched``).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import Table, bindparam, delete, exists, insert
from sqlalchemy.ext.asyncio import AsyncSession

from mailward.db import Database, QueuedMessage, QueuedRecipient
from mailward.trace.recorder import batched

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_MEMBERS = 256  # callers per group transaction, at most

MESSAGES = cast(Table, QueuedMessage.__table__)
RECIPIENTS = cast(Table, QueuedRecipient.__table__)
INSERT_MESSAGES = insert(MESSAGES).returning(MESSAGES.c.id, MESSAGES.c.queue_id)
INSERT_RECIPIENTS = insert(RECIPIENTS)
# SQLite: take the write lock first (a write that changes nothing), so a group that reads
# before it writes never fails to upgrade its snapshot ("database is locked" at once)
# when another connection wrote meanwhile; it waits its turn (busy timeout) instead.
WRITE_LOCK = "UPDATE queue_messages SET id = id WHERE 0"
DELETE_RECIPIENTS = delete(RECIPIENTS).where(
    RECIPIENTS.c.id.in_(bindparam("ids", expanding=True)))
DELETE_DONE_MESSAGES = (
    delete(MESSAGES)
    .where(MESSAGES.c.id.in_(bindparam("ids", expanding=True)),
           ~exists().where(RECIPIENTS.c.message_id == MESSAGES.c.id))
    .returning(MESSAGES.c.id, MESSAGES.c.queue_id, MESSAGES.c.trace_id))


@dataclass(slots=True)
class QueueRows:
    """The group's batched queue changes, one statement each at the end of its
    transaction: message rows (keyed by queue id) and recipient rows naming their message
    by queue id to insert; finished recipients to delete; then the messages to drop if no
    recipient is left (``dropped``: ``{message id: queue id}`` of those that were,
    ``traces``: their trace ids; ``why``: ``{message id: (reason, by)}`` the dropping
    member gave, for the trace's ``dequeue`` event)."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    recipients: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)
    maybe_done: list[int] = field(default_factory=list)
    dropped: dict[int, str] = field(default_factory=dict)
    traces: dict[int, str] = field(default_factory=dict)
    why: dict[int, tuple[str, str | None]] = field(default_factory=dict)

    def add(self, message: dict[str, Any], recipients: list[dict[str, Any]]) -> None:
        self.messages.append(message)
        self.recipients += [(message["queue_id"], r) for r in recipients]

    async def apply(self, session: AsyncSession) -> None:
        """Run what was added (a statement per kind of change, however many rows)."""
        conn = await session.connection()
        if self.messages:
            ids = {queue_id: mid for mid, queue_id in
                   (await conn.execute(INSERT_MESSAGES, self.messages)).all()}
            await conn.execute(INSERT_RECIPIENTS, [
                {**row, "message_id": ids[queue_id]} for queue_id, row in self.recipients])
        if self.finished:
            await conn.execute(DELETE_RECIPIENTS, {"ids": self.finished})
        if self.maybe_done:
            found = (await conn.execute(DELETE_DONE_MESSAGES, {"ids": self.maybe_done})).all()
            self.dropped = {mid: queue_id for mid, queue_id, _trace in found}
            self.traces = {mid: trace_id or queue_id for mid, queue_id, trace_id in found}


Work = Callable[[AsyncSession, QueueRows], Awaitable[T]]
"""A member's part of a group: run in the shared transaction, adding rows to ``QueueRows``
(or running its own statements); its result is handed back once the group committed."""


@dataclass(slots=True)
class _Member(Generic[T]):
    work: Work[T]
    done: asyncio.Future[T]


class GroupCommitter:
    """Serialises the queue's hot writes of one process into group transactions.

    ``before_commit`` runs last in each transaction with the group's ``QueueRows`` (e.g.
    a NOTIFY to other nodes); ``after_commit`` runs once a group has committed.
    """

    def __init__(self, db: Database, *, max_members: int = MAX_MEMBERS,
                 before_commit: Callable[[AsyncSession, QueueRows], Awaitable[None]]
                 | None = None,
                 after_commit: Callable[[QueueRows], None] | None = None) -> None:
        self.db = db
        self.max_members = max_members
        self.before_commit = before_commit
        self.after_commit = after_commit
        self._waiting: list[_Member[Any]] = []
        self._runner: asyncio.Task[None] | None = None
        self.groups = 0  # groups committed or failed (for tests and the bench)

    async def run(self, work: Work[T]) -> T:
        """Run ``work`` in the next group transaction; its result after that committed.

        Raises what made the group fail if it did not commit (a member's work or the
        commit raised: nothing of ``work`` is then stored). A caller cancelled while its
        group commits is not told the outcome.
        """
        member: _Member[T] = _Member(work, asyncio.get_running_loop().create_future())
        self._waiting.append(member)
        if self._runner is None or self._runner.done():
            # a fresh context: the group serves many messages, so its log lines carry
            # none of its first caller's ids (``mailward.obs.logs.bind``)
            self._runner = asyncio.create_task(self._drain(), context=contextvars.Context())
        return await member.done

    async def _drain(self) -> None:
        while self._waiting:
            group = self._waiting[:self.max_members]
            del self._waiting[:self.max_members]
            try:
                await self._commit(group)
            except asyncio.CancelledError:  # shutting down: nobody is told it committed
                for member in group + self._waiting:
                    member.done.cancel()
                self._waiting.clear()
                raise

    async def _commit(self, group: list[_Member[Any]]) -> None:
        rows = QueueRows()
        results: list[Any] = []
        self.groups += 1
        try:
            async with self.db.session() as session, session.begin():
                if self.db.is_sqlite:
                    await (await session.connection()).exec_driver_sql(WRITE_LOCK)
                async with batched(session):  # every member's trace events: one insert
                    for member in group:
                        results.append(await member.work(session, rows))
                    await rows.apply(session)
                    if self.before_commit is not None:
                        await self.before_commit(session, rows)
        except Exception as exc:
            log.warning("queue group commit of %d failed: %r", len(group), exc)
            for member in group:
                if not member.done.done():
                    member.done.set_exception(exc)
            return
        if self.after_commit is not None:
            self.after_commit(rows)
        for member, result in zip(group, results, strict=True):
            if not member.done.done():
                member.done.set_result(result)
