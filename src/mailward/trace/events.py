"""What a message trace is made of: events, grouped as they are written.

Each part of mailward that handles a message (the SMTP listeners, the queue, the
quarantine) describes what it did as :class:`TraceEvent` values; the recorder
(:mod:`mailward.trace.recorder`) stores a group of them at once and derives the counters
the charts read.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime


class Kind(enum.StrEnum):
    CONNECT = "connect"  # peer, HELO, TLS of the session the message came in
    SUBMIT = "submit"  # an authenticated sender (submission, webmail)
    MAIL = "mail"
    RCPT = "rcpt"  # one RCPT TO answer
    DATA = "data"  # the answer to the message
    VERDICT = "verdict"  # per recipient: what the filter and the intake decided
    QUARANTINE = "quarantine"
    RELEASE = "release"
    DISCARD = "discard"  # deleted from the quarantine (by hand or expired)
    ATTEMPT = "attempt"  # one delivery attempt to a server
    MAILBOX = "mailbox"  # delivered into a hosted mailbox
    FORWARD = "forward"  # a forward or auto-cc copy was queued (its own queue id)
    BOUNCE = "bounce"  # a DSN was queued
    EXPIRE = "expire"  # the queue lifetime ended
    DEQUEUE = "dequeue"  # the message left the queue


class Outcome(enum.StrEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    QUARANTINED = "quarantined"
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    BOUNCED = "bounced"
    RELEASED = "released"
    DISCARDED = "discarded"
    FORWARDED = "forwarded"
    REMOVED = "removed"
    INFO = "info"


# The (kind, outcome) pairs of a recipient's event that count in the charts' counters
# and the messages-by-outcome metric; anything else is part of the story only.
COUNTED: frozenset[tuple[Kind, Outcome]] = frozenset({
    (Kind.VERDICT, Outcome.ACCEPTED), (Kind.VERDICT, Outcome.QUARANTINED),
    (Kind.VERDICT, Outcome.REFUSED), (Kind.RCPT, Outcome.REFUSED),
    (Kind.ATTEMPT, Outcome.DELIVERED), (Kind.ATTEMPT, Outcome.DEFERRED),
    (Kind.ATTEMPT, Outcome.BOUNCED), (Kind.MAILBOX, Outcome.DELIVERED),
    (Kind.EXPIRE, Outcome.BOUNCED), (Kind.RELEASE, Outcome.RELEASED),
})


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One thing that happened to a message.

    ``domain`` and ``mailbox`` say whom it concerns (the customer domain and the local
    address): they decide who may see it. Both None: it is about the whole message
    (connection, DATA answer) and shows to everyone who may see any part of the trace.
    """

    kind: Kind
    outcome: Outcome = Outcome.INFO
    sender: str | None = None
    recipient: str | None = None
    domain: str | None = None
    mailbox: str | None = None
    peer: str | None = None
    subject: str | None = None
    message_id: str | None = None
    queue_id: str | None = None
    detail: Mapping[str, object] = field(default_factory=dict)  # JSON-able
    at: datetime | None = None  # None: when recorded

    @property
    def counted(self) -> bool:
        return self.recipient is not None and (self.kind, self.outcome) in COUNTED


@dataclass(frozen=True, slots=True)
class EventGroup:
    """Events of one message written together (one insert)."""

    trace_id: str
    events: Sequence[TraceEvent]
    session_id: str | None = None


def scope_domain(address: str | None) -> str | None:
    """The lower-case domain of an address (None for the null sender or no domain)."""
    if not address or "@" not in address:
        return None
    return address.rpartition("@")[2].strip().lower().rstrip(".") or None
