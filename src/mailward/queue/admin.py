"""Queue administration: list, show, retry now, delete — what the CLI and API call.

An account sees and touches only the queued recipients of its own domains; an operator
sees everything (including mail leaving us: forwards and bounces). A delete records a
``dequeue`` event per recipient removed in the message's trace (with a ``Trace``).
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailward.core.actor import Actor, Q
from mailward.core.audit import record
from mailward.core.errors import InvalidInput, NotFound
from mailward.core.normalize import normalize_domain
from mailward.core.paging import Page
from mailward.db import Database, QueuedMessage, QueuedRecipient, QueueStatus
from mailward.db.models import WebmailOutbox, utcnow
from mailward.queue.spool import Spool
from mailward.queue.traced import dequeued
from mailward.trace.events import EventGroup

if TYPE_CHECKING:
    from mailward.trace.recorder import Trace

MAX_PER_PAGE = 1000
HELD_PREFIX = "4.3.5 "  # Router: the domain has no mail server settings


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One queued recipient of one message."""

    queue_id: str
    recipient: str
    domain: str
    sender: str
    subject: str | None
    size: int
    origin: str
    status: str  # queued, deferred, active, held
    attempts: int
    received_at: datetime
    next_attempt_at: datetime
    last_error: str | None


@dataclass(frozen=True, slots=True)
class QueueMessageView:
    queue_id: str
    sender: str
    subject: str | None
    size: int
    origin: str
    peer: str | None
    received_at: datetime
    recipients: builtins.list[QueueEntry]


STATUSES = ("queued", "deferred", "active", "held")


def _status(row: QueuedRecipient) -> str:
    if row.status is QueueStatus.DEFERRED and (row.last_error or "").startswith(HELD_PREFIX):
        return "held"
    return row.status.value


def _entry(row: QueuedRecipient, message: QueuedMessage) -> QueueEntry:
    return QueueEntry(
        queue_id=message.queue_id, recipient=row.recipient, domain=row.domain,
        sender=message.sender, subject=message.subject, size=message.size,
        origin=message.origin, status=_status(row), attempts=row.attempts,
        received_at=message.received_at, next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
    )


class QueueService:
    def __init__(self, db: Database, spool: Spool, *, trace: Trace | None = None) -> None:
        self.db = db
        self.spool = spool
        self.trace = trace  # None: deletes are not traced

    async def list(
        self, actor: Actor, *, domain: str | None = None, status: str | None = None,
        page: int = 1, per_page: int = 50,
    ) -> Page[QueueEntry]:
        if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
            raise InvalidInput(f"page must be ≥ 1 and per_page 1-{MAX_PER_PAGE}")
        query = actor.scope(
            select(QueuedRecipient, QueuedMessage).join(QueuedRecipient.message),
            QueuedRecipient.account_id,
        )
        if domain:
            query = query.where(QueuedRecipient.domain == normalize_domain(domain))
        if status:
            query = _where_status(query, status)
        async with self.db.session() as session:
            total = await session.scalar(select(func.count()).select_from(query.subquery()))
            rows = await session.execute(
                query.order_by(QueuedMessage.received_at, QueuedRecipient.id)
                .offset((page - 1) * per_page).limit(per_page)
            )
            items = [_entry(row, message) for row, message in rows]
        return Page(items, int(total or 0), page, per_page)

    async def show(self, actor: Actor, queue_id: str) -> QueueMessageView:
        async with self.db.session() as session:
            message, rows = await self._message(session, actor, queue_id)
            return QueueMessageView(
                queue_id=message.queue_id, sender=message.sender, subject=message.subject,
                size=message.size, origin=message.origin, peer=message.peer,
                received_at=message.received_at,
                recipients=[_entry(row, message) for row in rows],
            )

    async def retry(self, actor: Actor, queue_id: str) -> QueueMessageView:
        """Make the caller's waiting recipients of a message due now (not webmail mail
        its sender still holds back: undo window or send later)."""
        async with self.db.session() as session, session.begin():
            message, rows = await self._message(session, actor, queue_id)
            held_until = await session.scalar(select(WebmailOutbox.release_at).where(
                WebmailOutbox.queue_id == message.queue_id))
            held = held_until is not None and held_until > utcnow()
            waiting = [r for r in rows if r.status is not QueueStatus.ACTIVE
                       and not (held and r.status is QueueStatus.QUEUED)]
            if waiting:
                await session.execute(
                    update(QueuedRecipient)
                    .where(QueuedRecipient.id.in_([r.id for r in waiting]))
                    .values(next_attempt_at=utcnow())
                )
                _audit(session, actor, "queue.retry", message.queue_id, waiting)
            await self.spool.wakeup.announce(session)
        self.spool.wakeup.local()
        return await self.show(actor, queue_id)

    async def delete(self, actor: Actor, queue_id: str) -> QueueMessageView:
        """Remove the caller's recipients of a message without bouncing (no DSN)."""
        view = await self.show(actor, queue_id)
        async with self.db.session() as session, session.begin():
            message, rows = await self._message(session, actor, queue_id)
            await session.execute(
                delete(QueuedRecipient).where(QueuedRecipient.id.in_([r.id for r in rows]))
            )
            _audit(session, actor, "queue.delete", message.queue_id, rows)
            if self.trace is not None:
                by = (actor.name or actor.role.value)[:254]
                await self.trace.add(session, EventGroup(
                    message.trace_id or message.queue_id,
                    [dequeued(message.queue_id, "deleted", by, recipient=row.recipient,
                              sender=message.sender, account_id=row.account_id)
                     for row in rows]))
        # the dequeue events are written: none more when the message row goes
        await self.spool.remove_if_done(message.id, message.queue_id, reason=None)
        return view

    async def _message(
        self, session: AsyncSession, actor: Actor, queue_id: str
    ) -> tuple[QueuedMessage, builtins.list[QueuedRecipient]]:
        message = await session.scalar(
            select(QueuedMessage).where(QueuedMessage.queue_id == queue_id.strip().upper())
        )
        rows: builtins.list[QueuedRecipient] = []
        if message is not None:
            rows = list(await session.scalars(
                actor.scope(select(QueuedRecipient), QueuedRecipient.account_id)
                .where(QueuedRecipient.message_id == message.id)
                .order_by(QueuedRecipient.id)
            ))
        if message is None or not rows:
            raise NotFound(f"no queued message {queue_id.strip()!r}")
        return message, rows


async def retry_domain_now(session: AsyncSession, domain: str) -> None:
    """A domain's route changed (verified, hosting switched, mail servers edited): its
    deferred mail is tried again now, not after backoff. The app passes this to the
    directory and the mail server settings as their route-change hook."""
    await session.execute(
        update(QueuedRecipient)
        .where(QueuedRecipient.domain == domain, QueuedRecipient.status == QueueStatus.DEFERRED)
        .values(next_attempt_at=utcnow())
    )


def _audit(session: AsyncSession, actor: Actor, action: str, queue_id: str,
           rows: builtins.list[QueuedRecipient]) -> None:
    """One entry per account whose recipients of the message were touched."""
    by_account: dict[int | None, builtins.list[str]] = {}
    for row in rows:
        by_account.setdefault(row.account_id, []).append(row.recipient)
    for account_id, recipients in by_account.items():
        record(session, actor, action, queue_id, account_id=account_id,
               detail=f"{len(recipients)} recipient(s): {', '.join(recipients)}")


def _where_status(query: Q, status: str) -> Q:
    """``query`` narrowed to recipients in ``status`` (one of STATUSES)."""
    if status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}")
    held = QueuedRecipient.last_error.startswith(HELD_PREFIX)
    if status == "held":
        return query.where(QueuedRecipient.status == QueueStatus.DEFERRED, held)
    if status == "deferred":
        return query.where(QueuedRecipient.status == QueueStatus.DEFERRED,
                           ~held | QueuedRecipient.last_error.is_(None))
    return query.where(QueuedRecipient.status == QueueStatus(status))
