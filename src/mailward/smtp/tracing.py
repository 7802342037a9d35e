"""One SMTP session's part of the message trace (``mailward.trace``).

A session has an id; each MAIL starts a :class:`~mailward.smtp.types.Transcript` with a
new trace id: the session's facts (``connect``, or ``submit`` on the submission
listener), the MAIL answer, then one ``rcpt`` event per RCPT answer. The sink gets it
with the envelope and, when it spools the message, writes the group in its spool
transaction. What the sink does not write is recorded here: refusals at DATA, a
transaction ending without DATA (RSET, a new MAIL, EHLO, QUIT, a lost connection) that had
a recipient, a connection over a cap. Those groups are held until the session's next
transaction begins (then submitted, batched with others) or it ends: at QUIT they are
written before the ``221``, so a client that got it knows its trace is stored.

Only event objects are built per command; the database sees one insert per group.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from mailward.smtp.types import RecipientAnswer, Reply, Transcript, data_event, now
from mailward.trace.events import EventGroup, Kind, Outcome, TraceEvent
from mailward.trace.ids import new_id

if TYPE_CHECKING:
    from mailward.trace.recorder import Trace

Scope = tuple[str | None, str | None]  # (customer domain, mailbox) an event concerns
MAX_RCPT_EVENTS = 1000  # RCPT answers kept per transaction (a client may send RCPT forever)


def parse_reply(line: str) -> Reply:
    """``"550 5.1.1 text"`` as a :class:`Reply`."""
    code, _, rest = line.partition(" ")
    status, _, text = rest.partition(" ")
    if not status[:1].isdigit():  # no enhanced status code
        status, text = "", rest
    return Reply(int(code), status, text)


class SessionTrace:
    """The trace of one SMTP session (``trace`` None: ids only, nothing recorded)."""

    def __init__(self, trace: Trace | None) -> None:
        self.trace = trace
        self.session_id = new_id()
        self.connected_at = now()
        self._held: list[EventGroup] = []  # recorded groups not yet handed to the recorder

    @property
    def on(self) -> bool:
        return self.trace is not None

    def refused_connection(self, peer: str, reply: str, reason: str) -> None:
        """A connection refused at once (a connection cap): its own one-event trace."""
        if self.trace is not None:
            self.trace.submit(EventGroup(new_id(), [TraceEvent(
                Kind.CONNECT, Outcome.REFUSED, peer=peer, at=self.connected_at,
                detail={"reply": reply, "reason": reason})], self.session_id))

    def begin(self, opening: TraceEvent | None, sender: str, size: int | None,
              scope: Scope) -> Transcript:
        """A new transaction (MAIL accepted): the session's facts and the MAIL answer."""
        transcript = Transcript(new_id(), self.session_id)
        if self.trace is not None and opening is not None:
            detail: dict[str, object] = {"reply": "250 2.1.0 OK"}
            if size is not None:
                detail["size"] = size
            transcript.events += [opening, TraceEvent(
                Kind.MAIL, Outcome.ACCEPTED, sender=sender, domain=scope[0],
                mailbox=scope[1], detail=detail, at=now())]
        return transcript

    def rcpt(self, transcript: Transcript | None, sender: str | None, address: str,
             answer: RecipientAnswer | Reply | str, scope: Scope) -> None:
        """One RCPT answer; ``scope`` (the submission listener's) wins over the sink's."""
        if transcript is None or self.trace is None or \
                len(transcript.events) >= MAX_RCPT_EVENTS + 2:
            return
        if isinstance(answer, str):
            answer = parse_reply(answer)
        answer = RecipientAnswer.of(answer)
        domain, mailbox = scope if scope[0] is not None else (answer.domain, answer.mailbox)
        detail: dict[str, object] = {"reply": str(answer.reply)}
        if answer.reason:
            detail["reason"] = answer.reason
        transcript.events.append(TraceEvent(
            Kind.RCPT, Outcome.ACCEPTED if answer.reply.ok else Outcome.REFUSED,
            sender=sender, recipient=address, domain=domain, mailbox=mailbox,
            detail=detail, at=now()))

    def data(self, transcript: Transcript | None, sender: str | None,
             reply: Reply | str, size: int | None, scope: Scope) -> None:
        """DATA answered: held for recording unless the sink wrote the group. Without the
        sink's events: the answer, and a verdict per recipient accepted at RCPT when the
        answer is final (2xx accepted, 5xx refused)."""
        if transcript is None or transcript.written or self.trace is None:
            return
        if not transcript.outcome:
            code = reply.code if isinstance(reply, Reply) else int(reply[:3])
            transcript.outcome.append(data_event(
                accepted=200 <= code < 300, reply=reply, size=size, domain=scope[0],
                mailbox=scope[1]))
            if code < 300 or code >= 500:
                outcome = Outcome.ACCEPTED if code < 300 else Outcome.REFUSED
                transcript.outcome += [
                    TraceEvent(Kind.VERDICT, outcome, sender=sender,
                               recipient=event.recipient, domain=event.domain,
                               mailbox=event.mailbox, at=now(),
                               detail={"filtered": False, "reply": str(reply)})
                    for event in transcript.events
                    if event.kind is Kind.RCPT and event.outcome is Outcome.ACCEPTED]
        self._held.append(transcript.group())

    def end(self, transcript: Transcript | None, opening: TraceEvent | None) -> None:
        """A transaction ends without DATA: held for recording if it had a recipient
        (``opening``: the session's facts as they are now, e.g. with a reverse DNS name
        found since MAIL)."""
        if transcript is None or self.trace is None or not transcript.recipients:
            return
        if opening is not None and transcript.events:
            transcript.events[0] = opening
        self._held.append(transcript.group())

    def hand_over(self) -> None:
        """Submit the held groups (written soon, batched with others)."""
        groups, self._held = self._held, []
        if self.trace is not None:
            for group in groups:
                self.trace.submit(group)

    async def write(self) -> None:
        """Write the held groups now; returns once they are stored."""
        groups, self._held = self._held, []
        if self.trace is not None and groups:
            await asyncio.gather(*(self.trace.write(group) for group in groups))
