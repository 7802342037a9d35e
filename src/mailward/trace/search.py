"""Finding traces and telling their story, within a :class:`~mailward.trace.scope.TraceScope`.

A search walks the caller's own events in the time range newest first — on the
``(domain, at)`` index for an account, ``(mailbox, at)`` for a mailbox user, ``at`` for an
operator — keeping for each trace only its newest own event there (the anchor: a NOT
EXISTS on the ``trace_id`` index), so every trace comes once and paging is a keyset over
the anchor's ``(at, id)``. The other criteria are conditions on the trace's visible events:
exact ones (sender, recipient, Message-ID, queue id, client IP) as ``trace_id IN (...)`` over
their own indexes, the subject substring and the final outcome per candidate trace.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from mailward.core.errors import InvalidInput
from mailward.db.models import TraceEventRow
from mailward.trace.scope import TraceScope

__all__ = [
    "DEFAULT_DAYS",
    "DEFAULT_LIMIT",
    "FINAL_OUTCOMES",
    "MAX_LIMIT",
    "TraceEventView",
    "TraceQuery",
    "TraceStory",
    "TraceSummary",
    "search_traces",
    "trace_story",
]

DEFAULT_DAYS = 7  # a search without ``since`` looks this far back from ``until`` (or now)
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)

# The events whose outcome is a trace's outcome (the latest of them wins): what the
# recorder counts, plus DATA's answer and a discarded quarantine copy.
FINAL_OUTCOMES: dict[str, frozenset[str]] = {
    "rcpt": frozenset({"refused"}),
    "data": frozenset({"accepted", "refused"}),
    "verdict": frozenset({"accepted", "quarantined", "refused"}),
    "attempt": frozenset({"delivered", "deferred", "bounced"}),
    "mailbox": frozenset({"delivered"}),
    "expire": frozenset({"bounced"}),
    "release": frozenset({"released"}),
    "discard": frozenset({"discarded"}),
}
OUTCOMES = tuple(sorted({o for outcomes in FINAL_OUTCOMES.values() for o in outcomes}))

E = TraceEventRow


@dataclass(frozen=True, slots=True)
class TraceQuery:
    """What to look for; every given field must match (each by any visible event of the
    trace). ``since``/``until`` bound the caller's own events (default: the last
    ``DEFAULT_DAYS`` days); ``outcome`` is the trace's final outcome."""

    sender: str | None = None
    recipient: str | None = None
    subject: str | None = None  # a case-insensitive substring
    message_id: str | None = None  # with or without its angle brackets
    queue_id: str | None = None  # the trace id or any copy's queue id
    peer: str | None = None  # the client's IP address
    since: datetime | None = None
    until: datetime | None = None
    outcome: str | None = None
    limit: int = DEFAULT_LIMIT

    def window(self, now: datetime) -> tuple[datetime, datetime | None]:
        """The time range searched: ``(since, until)``; until None: up to now and later."""
        since = self.since or (self.until or now) - timedelta(days=DEFAULT_DAYS)
        if self.until is not None and since > self.until:
            raise InvalidInput("since must not be after until")
        return since, self.until

    def checked(self) -> TraceQuery:
        """This query with its text stripped (empty fields dropped); InvalidInput if bad."""
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidInput(f"limit must be 1-{MAX_LIMIT}")
        if self.outcome and self.outcome.strip().lower() not in OUTCOMES:
            raise InvalidInput(f"outcome must be one of {', '.join(OUTCOMES)}")
        def text(value: str | None) -> str | None:
            return (value or "").strip() or None

        def utc(value: datetime | None) -> datetime | None:
            return value.replace(tzinfo=UTC) if value and value.tzinfo is None else value

        outcome = text(self.outcome)
        return replace(self, sender=text(self.sender), recipient=text(self.recipient),
                       subject=text(self.subject), message_id=text(self.message_id),
                       queue_id=text(self.queue_id), peer=text(self.peer),
                       outcome=outcome.lower() if outcome else None,
                       since=utc(self.since), until=utc(self.until))


@dataclass(frozen=True, slots=True)
class TraceEventView:
    """One event as the caller may see it."""

    id: int
    at: datetime
    kind: str
    outcome: str
    node: str
    session_id: str | None
    queue_id: str | None
    sender: str | None
    recipient: str | None
    domain: str | None
    mailbox: str | None
    peer: str | None
    subject: str | None
    message_id: str | None
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TraceSummary:
    """A trace as a result line: what the caller may see of it. ``outcome`` is the latest
    final outcome (the caller's own events first). ``cursor`` (searches only) is the
    ``page`` that continues a search after this result."""

    trace_id: str
    first_at: datetime
    last_at: datetime
    sender: str | None
    recipients: list[str]
    subject: str | None
    message_id: str | None
    peer: str | None
    outcome: str | None
    queue_ids: list[str]
    events: int = 0
    cursor: str = ""


@dataclass(frozen=True, slots=True)
class TraceStory:
    """A trace's summary and its visible events in ``(at, id)`` order."""

    summary: TraceSummary
    events: list[TraceEventView] = field(default_factory=list)


# -- paging -------------------------------------------------------------------------------


def encode_cursor(at: datetime, event_id: int) -> str:
    return f"{(at - EPOCH) // MICROSECOND}.{event_id}"


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        micros, _, event_id = cursor.strip().partition(".")
        return EPOCH + int(micros) * MICROSECOND, int(event_id)
    except (ValueError, OverflowError):
        raise InvalidInput(f"not a trace search cursor: {cursor!r}") from None


# -- the search ---------------------------------------------------------------------------


def _variants(value: str, *, upper: bool = False) -> list[str]:
    """The spellings an exact match accepts: as typed, lower-case (addresses are stored
    as the client wrote them or normalised), upper-case for ids."""
    found = {value, value.lower()}
    if upper:
        found.add(value.upper())
    return sorted(found)


def _message_ids(value: str) -> list[str]:
    bare = value.strip().removeprefix("<").removesuffix(">")
    return sorted({value, bare, f"<{bare}>"})


def _final(table: Any) -> ColumnElement[bool]:
    return or_(*(and_(table.kind == kind, table.outcome.in_(sorted(outcomes)))
                 for kind, outcomes in FINAL_OUTCOMES.items()))


def _criteria(scope: TraceScope, query: TraceQuery) -> list[ColumnElement[bool]]:
    """Conditions on the anchor ``E``: the trace has visible events matching each field."""
    conditions: list[ColumnElement[bool]] = []

    def having(condition_of: Any) -> ColumnElement[bool]:
        m = aliased(TraceEventRow)
        return E.trace_id.in_(select(m.trace_id).where(condition_of(m), scope.visible(m)))

    if query.sender:
        sender = query.sender
        conditions.append(having(lambda m: m.sender.in_(_variants(sender))))
    if query.recipient:
        recipient = query.recipient
        conditions.append(having(lambda m: m.recipient.in_(_variants(recipient))))
    if query.message_id:
        ids = _message_ids(query.message_id)
        conditions.append(having(lambda m: m.message_id.in_(ids)))
    if query.peer:
        peer = query.peer
        conditions.append(having(lambda m: m.peer == peer))
    if query.queue_id:
        queue_ids = _variants(query.queue_id, upper=True)
        conditions.append(or_(E.trace_id.in_(queue_ids),
                              having(lambda m: m.queue_id.in_(queue_ids))))
    if query.subject:
        s = aliased(TraceEventRow)
        pattern = "%" + _escape_like(query.subject) + "%"
        conditions.append(exists(select(s.id).where(
            s.trace_id == E.trace_id, scope.visible(s),
            s.subject.ilike(pattern, escape="\\"))))
    if query.outcome:
        conditions.append(_final_outcome(scope, E.trace_id) == query.outcome)
    return conditions


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _final_outcome(scope: TraceScope, trace_id: Any) -> Any:
    """The trace's final outcome as a scalar subquery (its own events first)."""
    f = aliased(TraceEventRow)
    order: list[Any] = [f.at.desc(), f.id.desc()]
    if not scope.unlimited:
        order.insert(0, case((scope.own(f, by_index=False), 1), else_=0).desc())
    return (select(f.outcome).where(f.trace_id == trace_id, scope.visible(f), _final(f))
            .order_by(*order).limit(1).scalar_subquery())


def anchors(scope: TraceScope, query: TraceQuery, now: datetime,
            page: str | None = None) -> Select[str, datetime, int]:
    """The newest own event in the window of each matching trace, newest first."""
    since, until = query.window(now)
    n = aliased(TraceEventRow)
    in_window = [n.at >= since] + ([n.at <= until] if until is not None else [])
    newer = select(n.id).where(
        n.trace_id == E.trace_id, scope.own(n, by_index=False), *in_window,
        or_(n.at > E.at, and_(n.at == E.at, n.id > E.id)))
    statement = select(E.trace_id, E.at, E.id).where(scope.own(E), E.at >= since)
    if until is not None:
        statement = statement.where(E.at <= until)
    if page:
        at, event_id = decode_cursor(page)
        statement = statement.where(E.at <= at,  # (a range the index serves)
                                    or_(E.at < at, and_(E.at == at, E.id < event_id)))
    return (statement.where(*_criteria(scope, query), ~exists(newer))
            .order_by(E.at.desc(), E.id.desc()).limit(query.limit))


async def search_traces(session: AsyncSession, scope: TraceScope, query: TraceQuery, *,
                        page: str | None = None, now: datetime | None = None
                        ) -> list[TraceSummary]:
    """The traces matching ``query`` that ``scope`` may see, newest first, at most
    ``query.limit``; ``page``: the ``cursor`` of the last result of the page before."""
    query = query.checked()
    if scope.empty:
        return []
    found = (await session.execute(anchors(scope, query, now or datetime.now(UTC), page))).all()
    if not found:
        return []
    events = await _events(session, scope, [trace_id for trace_id, _, _ in found],
                           with_detail=False)
    results = []
    for trace_id, at, event_id in found:
        rows = events.get(trace_id, [])
        if rows:
            results.append(replace(_summary(trace_id, rows, scope),
                                   cursor=encode_cursor(at, event_id)))
    return results


# -- one trace ----------------------------------------------------------------------------


async def trace_story(session: AsyncSession, scope: TraceScope, trace_id: str
                      ) -> TraceStory | None:
    """The story of trace ``trace_id`` (or of the trace of queue id ``trace_id``), or
    None when there is none that ``scope`` may see."""
    wanted = trace_id.strip()
    if not wanted or scope.empty:
        return None
    spellings = _variants(wanted, upper=True)
    found = await session.scalar(select(E.trace_id).where(E.trace_id.in_(spellings)).limit(1))
    if found is None:
        found = await session.scalar(
            select(E.trace_id).where(E.queue_id.in_(spellings)).limit(1))
    if found is None:
        return None
    rows = (await _events(session, scope, [found], with_detail=True)).get(found, [])
    if not rows or not any(scope.owns(row.domain, row.mailbox) for row in rows):
        return None
    return TraceStory(_summary(found, rows, scope), [_view(row) for row in rows])


COLUMNS = (E.id, E.at, E.kind, E.outcome, E.node, E.session_id, E.queue_id, E.sender,
           E.recipient, E.domain, E.mailbox, E.peer, E.subject, E.message_id, E.trace_id)


async def _events(session: AsyncSession, scope: TraceScope, trace_ids: Sequence[str], *,
                  with_detail: bool) -> dict[str, list[Any]]:
    """The visible events of ``trace_ids`` in ``(at, id)`` order, by trace."""
    columns = (*COLUMNS, E.detail) if with_detail else COLUMNS
    # sorted here, not in SQL: an ORDER BY could tempt a planner onto the ``at`` index
    rows = (await session.execute(
        select(*columns).where(E.trace_id.in_(sorted(set(trace_ids))), scope.visible(E))
    )).all()
    found: dict[str, list[Any]] = {}
    for row in sorted(rows, key=lambda r: (r.at, r.id)):
        found.setdefault(row.trace_id, []).append(row)
    return found


def _summary(trace_id: str, rows: list[Any], scope: TraceScope) -> TraceSummary:
    """What the visible events ``rows`` (in order) say of the trace."""

    def first(name: str) -> Any:
        return next((getattr(r, name) for r in rows if getattr(r, name)), None)

    recipients = list(dict.fromkeys(r.recipient for r in rows if r.recipient))
    queue_ids = list(dict.fromkeys(r.queue_id for r in rows if r.queue_id))
    finals = [r for r in rows if r.outcome in FINAL_OUTCOMES.get(r.kind, ())]
    own = [r for r in finals if scope.owns(r.domain, r.mailbox)]
    outcome = (own or finals)[-1].outcome if finals else None
    return TraceSummary(
        trace_id=trace_id, first_at=rows[0].at, last_at=rows[-1].at, sender=_sender(rows),
        recipients=recipients, subject=first("subject"), message_id=first("message_id"),
        peer=first("peer"), outcome=outcome, queue_ids=queue_ids, events=len(rows))


def _sender(rows: list[Any]) -> str | None:
    """The envelope sender: of the MAIL (or submission) event, else of any event; the
    null sender is ``""``."""
    for row in rows:
        if row.kind in ("mail", "submit") and row.sender is not None:
            return str(row.sender)
    return next((r.sender for r in rows if r.sender is not None), None)


def _view(row: Any) -> TraceEventView:
    return TraceEventView(
        id=row.id, at=row.at, kind=row.kind, outcome=row.outcome, node=row.node,
        session_id=row.session_id, queue_id=row.queue_id, sender=row.sender,
        recipient=row.recipient, domain=row.domain, mailbox=row.mailbox, peer=row.peer,
        subject=row.subject, message_id=row.message_id, detail=_detail(row.detail))


def _detail(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {"raw": text}
    return value if isinstance(value, dict) else {"value": value}
