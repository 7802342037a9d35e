"""The queue's side of a message trace: the events a delivery attempt, a bounce, an
expiry and a message leaving the queue add (:mod:`mailward.trace.events`).

Whom an event concerns (who may see it): the recipient's domain and address when the
recipient is ours (its queue row belongs to an account), else the sender's (mail our
customers send out); neither for mail from the null sender to elsewhere (a DSN leaving).
"""

from __future__ import annotations

from datetime import datetime

from mailward.queue.outcome import Outcome, Result
from mailward.trace.events import Kind, TraceEvent, scope_domain
from mailward.trace.events import Outcome as Traced

LOCAL_SERVER = "local"  # the ``server`` of an attempt at a hosted mailbox
_RESULTS = {Result.DELIVERED: Traced.DELIVERED, Result.DEFERRED: Traced.DEFERRED,
            Result.FAILED: Traced.BOUNCED}


def scope(recipient: str, account_id: int | None, sender: str
          ) -> tuple[str | None, str | None]:
    """(domain, mailbox) a queue event about ``recipient`` concerns (see the module)."""
    if account_id is not None:
        return scope_domain(recipient), recipient.lower()
    if sender:
        return scope_domain(sender), sender.lower()
    return None, None


def dequeued(queue_id: str, reason: str, by: str | None = None, *,
             recipient: str | None = None, sender: str | None = None,
             account_id: int | None = None) -> TraceEvent:
    """``queue_id`` left the queue (``reason``: done, deleted, expired or cancelled;
    ``by``: who did it). With ``recipient``: only that recipient's row did (scoped)."""
    detail: dict[str, object] = {"reason": reason}
    if by:
        detail["by"] = by
    domain, mailbox = (scope(recipient, account_id, sender or "") if recipient
                       else (None, None))
    return TraceEvent(Kind.DEQUEUE, Traced.REMOVED, sender=sender, recipient=recipient,
                      domain=domain, mailbox=mailbox, queue_id=queue_id, detail=detail)


def _ms(since: datetime, now: datetime) -> int:
    return max(int((now - since).total_seconds() * 1000), 0)


def attempt_events(outcome: Outcome, *, sender: str, recipient: str,
                   account_id: int | None, queue_id: str, attempt: int,
                   received_at: datetime, now: datetime, expired: bool = False
                   ) -> list[TraceEvent]:
    """What one delivery attempt for ``recipient`` adds to the trace.

    A hosted mailbox's delivery is ``mailbox`` (with the folder) and each copy queued for
    a forwarder or auto-cc a ``forward``; anything else is an ``attempt`` (at the server
    tried, or ``local``). ``expired``: the deferral ended the queue lifetime (``expire``).
    """
    domain, mailbox = scope(recipient, account_id, sender)
    def event(kind: Kind, result: Traced, detail: dict[str, object],
              **where: str | None) -> TraceEvent:
        return TraceEvent(kind, result, sender=sender, recipient=recipient,
                          domain=where.get("domain", domain),
                          mailbox=where.get("mailbox", mailbox), queue_id=queue_id,
                          detail=detail, at=now)

    latency = _ms(received_at, now)
    events: list[TraceEvent] = []
    if outcome.local and (outcome.folder or outcome.forwarded
                          or outcome.result is Result.DELIVERED):
        if outcome.folder or not outcome.forwarded:
            events.append(event(Kind.MAILBOX, Traced.DELIVERED,
                                {"folder": outcome.folder, "latency_ms": latency},
                                mailbox=(outcome.mailbox or recipient).lower()))
        events += [event(Kind.FORWARD, Traced.FORWARDED,
                         {"copy_queue_id": copy.queue_id, "to": list(copy.to),
                          "copy": copy.copy})
                   for copy in outcome.forwarded]
        if outcome.result is Result.DELIVERED:
            return events
    detail: dict[str, object] = {
        "server": LOCAL_SERVER if outcome.local else outcome.remote_mta,
        "reply": outcome.detail, "status": outcome.status, "attempt": attempt}
    if outcome.ip:
        detail["ip"] = outcome.ip
    if outcome.port:
        detail["port"] = outcome.port
    if outcome.duration_ms is not None:
        detail["duration_ms"] = outcome.duration_ms
    if outcome.result is Result.DELIVERED:
        detail["latency_ms"] = latency
    events.append(event(Kind.ATTEMPT, _RESULTS[outcome.result], detail))
    if expired:
        events.append(event(Kind.EXPIRE, Traced.BOUNCED,
                            {"reason": f"queue lifetime over after {attempt} attempt(s)",
                             "last_error": outcome.describe()}))
    return events


def bounce_event(*, sender: str, recipient: str, account_id: int | None, queue_id: str,
                 dsn_queue_id: str, action: str, now: datetime) -> TraceEvent:
    """A DSN (``action``: failed, delayed, delivered, relayed) reporting on ``recipient``
    was queued as ``dsn_queue_id``."""
    domain, mailbox = scope(recipient, account_id, sender)
    return TraceEvent(Kind.BOUNCE, Traced.INFO, sender=sender, recipient=recipient,
                      domain=domain, mailbox=mailbox, queue_id=queue_id,
                      detail={"dsn_queue_id": dsn_queue_id, "action": action}, at=now)
