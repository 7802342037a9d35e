"""The quarantine: mail the filter held, kept outside every mailbox until released,
deleted, or expired (``quarantine_retention_days``).

The MX tier stores a held message (one row with its bytes, one entry per recipient) and
commits before it answers 250. Release claims the entry (``held`` → ``released`` in one
conditional UPDATE, so a double click or a second node cannot deliver it twice), queues
the message for that recipient alone, teaches the domain's model "ham", and on request
adds the sender to the recipient's allow list. Every read and change is scoped to the
caller's accounts.

A held message keeps the trace id of the mail it came in with: its release (``release``,
the queued copy continuing that trace) and its deletion or expiry (``discard``) are
recorded there, in the transaction that makes the change (with a ``Trace``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailward.config import Settings
from mailward.core.actor import Actor, Q
from mailward.core.audit import record
from mailward.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from mailward.core.normalize import normalize_address, normalize_domain
from mailward.core.paging import Page
from mailward.db import Database
from mailward.db.models import (
    QuarantinedMessage,
    QuarantineEntry,
    utcnow,
)
from mailward.directory.facts import domain_keys
from mailward.filter.learning import without_our_headers
from mailward.filter.parsed import HeaderIndex
from mailward.filter.pipeline import Finding
from mailward.filter.policy import message_senders
from mailward.filter.settings import FilterSettingsService
from mailward.filter.virus import is_virus_reason
from mailward.queue.spool import NewRecipient, Spool, new_queue_id
from mailward.queue.traced import scope
from mailward.trace.events import EventGroup, Kind, TraceEvent
from mailward.trace.events import Outcome as Traced

if TYPE_CHECKING:
    from mailward.trace.recorder import Trace

__all__ = ["Hold", "Quarantine", "QuarantineDetail", "QuarantineService", "QuarantineView",
           "Released"]

log = logging.getLogger(__name__)

HELD, RELEASED = "held", "released"
MAX_PER_PAGE = 500
HEADER_PREVIEW = 16 * 1024
RELEASED_HEADER = "X-Mailward-Quarantine"


def _event(kind: Kind, result: Traced, quarantine_id: int, *, recipient: str,
           account_id: int | None, sender: str, queue_id: str | None = None,
           **detail: object) -> TraceEvent:
    """A quarantine event about ``recipient``'s held copy (entry ``quarantine_id``)."""
    domain, mailbox = scope(recipient, account_id, sender)
    return TraceEvent(kind, result, sender=sender, recipient=recipient, domain=domain,
                      mailbox=mailbox, queue_id=queue_id,
                      detail={"quarantine_id": quarantine_id, **detail})


@dataclass(frozen=True, slots=True)
class Hold:
    """A recipient whose copy is to be held, and why."""

    recipient: str
    reason: str


@dataclass(frozen=True, slots=True)
class QuarantineView:
    id: int
    recipient: str
    sender: str
    from_header: str
    subject: str
    size: int
    score: float
    reason: str
    status: str
    received_at: datetime
    expires_at: datetime
    released_at: datetime | None
    released_by: str | None

    @classmethod
    def of(cls, entry: QuarantineEntry, message: QuarantinedMessage) -> QuarantineView:
        return cls(entry.id, entry.recipient, message.sender, message.from_header,
                   message.subject, message.size, message.score, entry.reason, entry.status,
                   message.received_at, message.expires_at, entry.released_at,
                   entry.released_by)


@dataclass(frozen=True, slots=True)
class QuarantineDetail:
    entry: QuarantineView
    findings: list[dict[str, object]]
    peer: str | None
    headers: str  # the message's header block (at most HEADER_PREVIEW bytes), as text


@dataclass(frozen=True, slots=True)
class Released:
    entry: QuarantineView
    queue_id: str
    learnt: bool  # the domain's model was taught "ham"
    allowed: str | None  # the sender added to the recipient's allow list


class Quarantine:
    """The MX tier's side: hold messages, and drop expired ones (no tenant scope)."""

    def __init__(self, db: Database, settings: Settings, *,
                 trace: Trace | None = None) -> None:
        self.db = db
        self.retention = timedelta(days=settings.quarantine_retention_days)
        self.trace = trace  # records ``discard`` for held mail that expires (None: nothing)

    async def hold(self, *, sender: str, peer: str | None, data: bytes, score: float,
                   findings: tuple[Finding, ...], holds: list[Hold],
                   headers: HeaderIndex | None = None, trace_id: str | None = None) -> int:
        """Store the message for ``holds`` durably (committed); the message's id (each
        recipient's entry has its own id, which the services take)."""
        async with self.db.session() as session, session.begin():
            return await self.add_hold(session, sender=sender, peer=peer, data=data,
                                       score=score, findings=findings, holds=holds,
                                       headers=headers, trace_id=trace_id)

    async def add_hold(self, session: AsyncSession, *, sender: str, peer: str | None,
                       data: bytes, score: float, findings: tuple[Finding, ...],
                       holds: list[Hold], headers: HeaderIndex | None = None,
                       trace_id: str | None = None) -> int:
        """Add the message for ``holds`` to ``session``'s transaction (the caller commits,
        e.g. together with the queued copies of the same message); the message's id.
        From and Subject are read from ``headers`` (the intake's header index of the
        message; made here when not given). ``trace_id``: the trace of the mail it came
        in with (its release and deletion are recorded there)."""
        now = utcnow()
        if headers is None:
            headers = await asyncio.to_thread(HeaderIndex.of, data)
        domains = {h.recipient.rsplit("@", 1)[-1] for h in holds}
        owners = await domain_keys(session, domains)
        message = QuarantinedMessage(
            sender=sender[:320], from_header=headers.text("From")[:320],
            subject=headers.text("Subject")[:200], size=len(data), score=score,
            findings=json.dumps([{"check": f.check, "score": f.score, "reason": f.reason}
                                 for f in findings]),
            peer=peer, received_at=now, expires_at=now + self.retention, content=data,
            trace_id=trace_id)
        session.add(message)
        await session.flush()
        for hold in holds:
            domain_id, account_id = owners[hold.recipient.rsplit("@", 1)[-1]]
            session.add(QuarantineEntry(
                message_id=message.id, account_id=account_id, domain_id=domain_id,
                recipient=hold.recipient, reason=hold.reason[:200], status=HELD,
                created_at=now))
        return message.id

    async def purge(self, now: datetime | None = None) -> int:
        """Delete expired messages (with their entries) and messages no entry refers to."""
        now = now or utcnow()
        async with self.db.session() as session, session.begin():
            if self.trace is not None:
                await self._discarded(session, now)
            expired = await session.execute(
                delete(QuarantinedMessage).where(QuarantinedMessage.expires_at <= now))
            orphaned = await session.execute(delete(QuarantinedMessage).where(
                ~exists().where(QuarantineEntry.message_id == QuarantinedMessage.id)))
        count = int(expired.rowcount or 0) + int(orphaned.rowcount or 0)  # type: ignore[attr-defined]
        if count:
            log.info("quarantine: %d expired or unreferenced message(s) deleted", count)
        return count

    async def _discarded(self, session: AsyncSession, now: datetime) -> None:
        """Record ``discard`` for the held entries of the messages expiring now."""
        assert self.trace is not None
        found = await session.execute(
            select(QuarantineEntry, QuarantinedMessage.sender, QuarantinedMessage.trace_id)
            .join(QuarantinedMessage, QuarantinedMessage.id == QuarantineEntry.message_id)
            .where(QuarantinedMessage.expires_at <= now, QuarantineEntry.status == HELD,
                   QuarantinedMessage.trace_id.is_not(None))
            .order_by(QuarantineEntry.id))
        traces: dict[str, list[TraceEvent]] = {}
        for entry, sender, trace_id in found:
            traces.setdefault(str(trace_id), []).append(_event(
                Kind.DISCARD, Traced.DISCARDED, entry.id, recipient=entry.recipient,
                account_id=entry.account_id, sender=sender, reason="expired"))
        for trace_id, events in traces.items():
            await self.trace.add(session, EventGroup(trace_id, events))


class QuarantineService:
    """Listing, showing, releasing and deleting held mail, for a caller."""

    def __init__(self, db: Database, settings: Settings, spool: Spool,
                 filters: FilterSettingsService, *, trace: Trace | None = None) -> None:
        self.db = db
        self.spool = spool
        self.trace = trace  # None: releases and deletions are not traced
        self.node = settings.node_name
        self.filters = filters  # the allow lists, and the domains' learning

    def _scoped(self, actor: Actor, query: Q) -> Q:
        return actor.scope(query, QuarantineEntry.account_id)

    async def list(self, actor: Actor, *, address: str | None = None,
                   domain: str | None = None, status: str | None = HELD, page: int = 1,
                   per_page: int = 50) -> Page[QuarantineView]:
        """Entries newest first, of one address, one domain, or all the caller may see."""
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise InvalidInput(f"per_page must be between 1 and {MAX_PER_PAGE}")
        if page < 1:
            raise InvalidInput("page must be 1 or more")
        if status not in (None, HELD, RELEASED):
            raise InvalidInput("status must be held or released")

        def narrow(query: Q) -> Q:
            query = self._scoped(actor, query.join(
                QuarantinedMessage, QuarantinedMessage.id == QuarantineEntry.message_id))
            if address:
                query = query.where(QuarantineEntry.recipient == normalize_address(address))
            if domain:
                query = query.where(QuarantineEntry.domain_id == domain_id)
            if status:
                query = query.where(QuarantineEntry.status == status)
            return query

        async with self.db.session() as session:
            domain_id = -1  # a domain we do not serve holds nothing
            if domain:
                name = normalize_domain(domain)
                domain_id = (await domain_keys(session, [name])).get(name, (-1, 0))[0]
            total = await session.scalar(narrow(select(func.count(QuarantineEntry.id))))
            rows = await session.execute(
                narrow(select(QuarantineEntry, QuarantinedMessage))
                .order_by(QuarantineEntry.created_at.desc(), QuarantineEntry.id.desc())
                .limit(per_page).offset((page - 1) * per_page))
            items = [QuarantineView.of(entry, message) for entry, message in rows]
        return Page(items, int(total or 0), page, per_page)

    async def _find(self, session: AsyncSession, actor: Actor,
                    entry_id: int) -> tuple[QuarantineEntry, QuarantinedMessage]:
        row = (await session.execute(self._scoped(actor, select(
            QuarantineEntry, QuarantinedMessage)
            .join(QuarantinedMessage, QuarantinedMessage.id == QuarantineEntry.message_id)
            .where(QuarantineEntry.id == entry_id)))).first()
        if row is None:
            raise NotFound(f"no quarantined message {entry_id}")
        return row[0], row[1]

    async def show(self, actor: Actor, entry_id: int) -> QuarantineDetail:
        async with self.db.session() as session:
            entry, message = await self._find(session, actor, entry_id)
            head = message.content.split(b"\r\n\r\n", 1)[0][:HEADER_PREVIEW]
            return QuarantineDetail(QuarantineView.of(entry, message),
                                    json.loads(message.findings or "[]"), message.peer,
                                    head.decode("utf-8", "replace"))

    async def content(self, actor: Actor, entry_id: int) -> bytes:
        """The raw message, for download."""
        async with self.db.session() as session:
            _entry, message = await self._find(session, actor, entry_id)
            return message.content

    async def release(self, actor: Actor, entry_id: int, *, allow_sender: bool = False,
                      learn: bool = True, by_recipient: bool = False) -> Released:
        """Deliver the held copy to its recipient; teach ham; optionally allow the sender.

        A copy held for a virus is released by an administrator only (``by_recipient``:
        the recipient asks, through a digest link or webmail) and never teaches "ham".
        """
        async with self.db.session() as session:
            entry, message = await self._find(session, actor, entry_id)
            if entry.status != HELD:
                raise Conflict(f"quarantined message {entry_id} was already released")
            virus = is_virus_reason(entry.reason)
            if virus and by_recipient:
                raise Forbidden(f"quarantined message {entry_id} is held for a virus "
                                f"({entry.reason}); only an administrator may release it")
            learn = learn and not virus
            claimed = await session.execute(
                update(QuarantineEntry).where(QuarantineEntry.id == entry.id,
                                              QuarantineEntry.status == HELD)
                .values(status=RELEASED, released_at=utcnow(),
                        released_by=(actor.name or actor.role.value)[:254]))
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                raise Conflict(f"quarantined message {entry_id} was already released")
            record(session, actor, "quarantine.release", entry.recipient,
                   account_id=entry.account_id,
                   detail=f"#{entry.id} from {message.sender or '<>'}: {message.subject}")
            await session.commit()
            recipient, domain_id, account_id = entry.recipient, entry.domain_id, entry.account_id
            sender, data, trace_id = message.sender, message.content, message.trace_id
            score = message.score
        by = actor.name or actor.role.value
        marker = f"{RELEASED_HEADER}: released by {by} on {self.node}\r\n".encode()
        queue_id = new_queue_id()

        async def traced(session: AsyncSession) -> None:  # with the copy's rows
            if self.trace is not None:
                await self.trace.add(session, EventGroup(trace_id or queue_id, [_event(
                    Kind.RELEASE, Traced.RELEASED, entry_id, recipient=recipient,
                    account_id=account_id, sender=sender, queue_id=queue_id, by=by)]))

        try:
            await self.spool.enqueue(
                # the sender's own X-Spam-*/X-Mailward-* fields must not speak for us
                sender=sender, recipients=[NewRecipient(recipient)],
                data=marker + without_our_headers(data), origin="release",
                queue_id=queue_id, parent_trace=trace_id, also=traced)
        except BaseException:  # not delivered: hold it again
            async with self.db.session() as session, session.begin():
                await session.execute(update(QuarantineEntry).where(
                    QuarantineEntry.id == entry_id).values(
                        status=HELD, released_at=None, released_by=None))
            raise
        learnt = False
        if learn:
            try:
                await self.filters.learning.learn(domain_id, account_id, data, spam=False)
                learnt = True
            except Exception:  # delivery matters more than learning
                log.exception("learning ham from quarantined message %d failed", entry_id)
            try:  # the recipient's own memory of this kind of sender
                await self.filters.remember(recipient, data, spam=False, score=score,
                                            sender=sender)
            except Exception:
                log.exception("remembering ham from quarantined message %d for %s failed",
                              entry_id, recipient)
        allowed = None
        if allow_sender:
            allowed = await self._allow(actor, recipient, data, sender)
        async with self.db.session() as session:
            entry, message = await self._find(session, actor, entry_id)
            view = QuarantineView.of(entry, message)
        return Released(view, queue_id, learnt, allowed)

    async def _allow(self, actor: Actor, recipient: str, data: bytes, sender: str) -> str | None:
        candidates = message_senders(data) or ((sender.lower(),) if sender else ())
        if len(candidates) != 1:
            return None
        try:
            await self.filters.add_sender(actor, candidates[0], "allow", address=recipient,
                                          exist_ok=True)
        except Conflict:  # on the block list: the release stands, the lists stay as set
            log.info("not allowing %s for %s: it is on their block list", candidates[0],
                     recipient)
            return None
        return candidates[0]

    async def delete(self, actor: Actor, entry_id: int) -> QuarantineView:
        async with self.db.session() as session:
            entry, message = await self._find(session, actor, entry_id)
            view = QuarantineView.of(entry, message)
            record(session, actor, "quarantine.delete", entry.recipient,
                   account_id=entry.account_id,
                   detail=f"#{entry.id} from {message.sender or '<>'}: {message.subject}")
            if self.trace is not None and message.trace_id and entry.status == HELD:
                await self.trace.add(session, EventGroup(message.trace_id, [_event(
                    Kind.DISCARD, Traced.DISCARDED, entry.id, recipient=entry.recipient,
                    account_id=entry.account_id, sender=message.sender, reason="deleted",
                    by=actor.name or actor.role.value)]))
            await session.delete(entry)
            await session.flush()
            others = await session.scalar(select(func.count(QuarantineEntry.id)).where(
                QuarantineEntry.message_id == message.id))
            if not others:
                await session.delete(message)
            await session.commit()
        return view
