"""What the SMTP listeners hand to the services behind them, and what they get back.

The listener (``mailward.smtp.mx``) speaks the protocol; an ``InboundSink`` decides.
Keeping this boundary small lets the protocol be tested with a scripted sink and the
services be tested without a socket.

The message trace crosses it too: the listener hands the sink a :class:`Transcript` (the
session's and transaction's events so far) with the envelope; a sink that records the
transaction itself (in its spool transaction) marks it written, one that refuses leaves
its answer's events in it for the listener to record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from mailward.trace.events import EventGroup, Kind, Outcome, TraceEvent


@dataclass(frozen=True, slots=True)
class Reply:
    """An SMTP reply: basic code, enhanced status code (RFC 3463) and text."""

    code: int
    status: str
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.status} {self.text}"

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300


@dataclass(frozen=True, slots=True)
class RecipientAnswer:
    """A sink's RCPT answer with whom the recipient concerns, for the trace: ``domain``
    (the customer domain, only when it is ours) and ``mailbox`` (the local address)."""

    reply: Reply
    domain: str | None = None
    mailbox: str | None = None
    reason: str | None = None  # a short word for the trace ("unlisted", "not-ours", ...)

    @classmethod
    def of(cls, answer: Reply | RecipientAnswer) -> RecipientAnswer:
        return answer if isinstance(answer, RecipientAnswer) else cls(answer)


@dataclass(slots=True)
class Transcript:
    """One transaction's trace: ``events`` the listener saw (connect or submit, MAIL, each
    RCPT), then ``outcome`` (DATA and the verdicts) as the sink decided it. ``written``:
    the sink stored the whole group (with the spooled copies); otherwise the listener
    records it."""

    trace_id: str
    session_id: str | None = None
    events: list[TraceEvent] = field(default_factory=list)
    outcome: list[TraceEvent] = field(default_factory=list)
    written: bool = False

    def group(self, *more: TraceEvent) -> EventGroup:
        """The group of everything so far, and ``more``."""
        return EventGroup(self.trace_id, [*self.events, *self.outcome, *more],
                          self.session_id)

    @property
    def recipients(self) -> int:
        """RCPT answers recorded (accepted or refused): none, and nothing is traced."""
        return sum(1 for event in self.events if event.kind is Kind.RCPT)


def now() -> datetime:
    """An event's time (events carry their own: a group is written later)."""
    return datetime.now(UTC)


def data_event(*, accepted: bool, reply: Reply | str, size: int | None,
               queue_ids: list[str] | None = None, subject: str | None = None,
               message_id: str | None = None, domain: str | None = None,
               mailbox: str | None = None) -> TraceEvent:
    """The answer to DATA."""
    detail: dict[str, object] = {"reply": str(reply)}
    if size is not None:
        detail["size"] = size
    if queue_ids:
        detail["queue_ids"] = queue_ids
    return TraceEvent(Kind.DATA, Outcome.ACCEPTED if accepted else Outcome.REFUSED,
                      subject=subject or None, message_id=message_id or None,
                      queue_id=queue_ids[0] if queue_ids else None, domain=domain,
                      mailbox=mailbox, detail=detail, at=now())


def verdict_event(recipient: str, outcome: Outcome, *, domain: str | None,
                  mailbox: str | None, sender: str | None = None,
                  queue_id: str | None = None, detail: dict[str, object] | None = None,
                  ) -> TraceEvent:
    """What became of one recipient accepted at RCPT (``detail``: filtered, spam, score,
    action, reason, findings)."""
    return TraceEvent(Kind.VERDICT, outcome, sender=sender, recipient=recipient,
                      domain=domain, mailbox=mailbox, queue_id=queue_id,
                      detail=detail if detail is not None else {"filtered": False}, at=now())


@dataclass(frozen=True, slots=True)
class RecipientParams:
    """One RCPT TO: the address and its DSN parameters (RFC 3461)."""

    address: str
    notify: tuple[str, ...] = ()  # e.g. ("FAILURE", "DELAY") or ("NEVER",); empty = default
    orcpt: str | None = None  # ORCPT value as given ("rfc822;user@example.com")


@dataclass(frozen=True, slots=True)
class Envelope:
    """A message as received: the envelope, peer facts, and the bytes to spool.

    ``data`` already starts with our ``Received:`` header and uses CRLF line endings.
    """

    sender: str  # "" for the null reverse-path
    recipients: tuple[RecipientParams, ...]
    data: bytes
    peer: str  # client IP address
    helo: str
    tls: bool
    authenticated_as: str | None = None
    envid: str | None = None  # MAIL FROM ENVID=
    ret: str | None = None  # MAIL FROM RET=FULL|HDRS
    smtputf8: bool = False
    body: str | None = None  # MAIL FROM BODY=7BIT|8BITMIME
    extra: dict[str, str] = field(default_factory=dict)
    transcript: Transcript | None = None  # the trace so far (None: not traced)


class InboundSink(Protocol):
    """The service side of a listener."""

    async def check_recipient(self, address: str) -> Reply | RecipientAnswer:
        """Answer RCPT TO for ``address`` (already stripped of <>); 250 accepts it. A
        ``RecipientAnswer`` also says which customer domain and mailbox it concerns."""
        ...

    async def accept(self, envelope: Envelope) -> Reply:
        """Take responsibility for the message (durably) or refuse it; 250 = accepted.

        With ``envelope.transcript``: add the DATA and verdict events to its ``outcome``;
        set ``written`` only when the sink stored the whole group itself."""
        ...
