"""Submission intake: what an authenticated user may send, DKIM signing, then the spool.

The envelope sender, every From: address and the Sender: address must be the user's own
address or a forwarder (alias) that forwards to it (553 5.7.1 otherwise). The header must
be well formed where that check depends on it (550 5.6.0 otherwise): exactly one From:,
at most one Sender:, every field name printable ASCII right before its colon (``From :``
or a line without a colon would let other readers see other senders). Any recipient is
accepted: the user is authenticated, and routing delivers local recipients into their
mailboxes and the rest to their domains' MX hosts (or the smarthost), with the queue's
retries and bounces. Webmail sends through :meth:`SubmissionIntake.submit` too, so the same
rules, signing and spool apply to it.

With a ``Trace``, what a user sends is traced (``submit``, each recipient, the DATA answer
and a verdict per recipient), every event concerning the sender's domain and the
logged-in mailbox: written with the queued message, or, refused, left to the listener
(SMTP) or submitted here (webmail, which has no listener).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime
from email.headerregistry import Address as HeaderAddress
from email.policy import default as default_policy
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from mailward.core.errors import InvalidInput
from mailward.core.normalize import domain_of, normalize_address
from mailward.directory.mail_login import MailLogin
from mailward.dkim import DkimService, sign
from mailward.filter.parsed import HeaderIndex
from mailward.queue.spool import NewRecipient, Spool
from mailward.smtp.types import Envelope, Reply, Transcript, data_event, now, verdict_event
from mailward.trace.events import Kind, Outcome, TraceEvent, scope_domain
from mailward.trace.ids import new_id

if TYPE_CHECKING:
    from mailward.trace.recorder import Trace

log = logging.getLogger(__name__)
Signer = Callable[[bytes, str], Awaitable[bytes]]  # (message, From: domain) → signed

RECIPIENT_OK = Reply(250, "2.1.5", "Recipient OK")
BAD_RECIPIENT = Reply(501, "5.1.3", "Bad recipient address syntax")
SENDER_OK = Reply(250, "2.1.0", "Sender OK")
NOT_YOURS = Reply(553, "5.7.1", "Sender address not owned by the authenticated user")
FROM_NOT_YOURS = Reply(553, "5.7.1", "From: header address not owned by the "
                                     "authenticated user")
SENDER_NOT_YOURS = Reply(553, "5.7.1", "Sender: header address not owned by the "
                                       "authenticated user")
_FIELD_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]+")  # RFC 5322 §3.6.8 ftext


def _shown(name: bytes) -> str:
    return "".join(c if c.isprintable() else "?" for c in name[:40].decode("latin-1"))


def header_problem(data: bytes) -> str | None:
    """Why the header of a submitted message is refused (None: it is fine)."""
    head = data.split(b"\r\n\r\n", 1)[0]
    counts: Counter[bytes] = Counter()
    for number, line in enumerate(head.split(b"\r\n")):
        if line[:1] in (b" ", b"\t") and number:  # continuation of the field before
            continue
        name, colon, _ = line.partition(b":")
        if not colon:
            return f"Malformed header line (no field name and colon): {_shown(line)!r}"
        if not _FIELD_NAME.fullmatch(name):
            if name.rstrip(b" \t") != name:
                return f"Whitespace before the colon in header field {_shown(name)!r}"
            return f"Malformed header field name {_shown(name)!r}"
        counts[name.lower()] += 1
    if counts[b"from"] != 1:
        return f"Message must have exactly one From: header field (it has {counts[b'from']})"
    if counts[b"sender"] > 1:
        return "Message must have at most one Sender: header field"
    return None


def from_addresses(data: bytes | HeaderIndex, field: str = "from") -> list[str] | None:
    """The addresses of the From: (or ``field``) header, or None if it is missing or
    unreadable (``data``: the message, or its header index)."""
    headers = data if isinstance(data, HeaderIndex) else HeaderIndex.of(data)
    try:
        values = headers.get_all(field, default_policy)
        addresses: tuple[HeaderAddress, ...] = values[0].addresses if values else ()
    except Exception:  # malformed header: treat as unreadable
        return None
    found = [a.addr_spec for a in addresses if a.addr_spec and a.addr_spec != "<>"]
    return found or None


def dkim_signer(service: DkimService) -> Signer:
    """Sign with the From: domain's active DKIM key (unsigned if it has none)."""

    async def signer(data: bytes, domain: str) -> bytes:
        key = await service.signing_key(domain)
        if key is None:
            return data
        selector, private_key = key
        return await sign(data, domain=domain, selector=selector, private_key=private_key)

    return signer


class SubmissionIntake:
    """The one path of mail a mailbox user sends: SMTP submission and webmail alike."""

    def __init__(self, login: MailLogin, spool: Spool, signer: Signer | None = None, *,
                 trace: Trace | None = None) -> None:
        self.login = login
        self.spool = spool
        self.signer = signer
        self.trace = trace  # None: nothing recorded

    async def check_recipient(self, address: str) -> Reply:
        try:
            normalize_address(address)
        except InvalidInput:
            return BAD_RECIPIENT
        return RECIPIENT_OK

    async def check_sender(self, login: str, sender: str) -> Reply:
        if sender and await self.login.may_send_as(login, sender):
            return SENDER_OK
        log.warning("submission: %s tried to send as <%s>", login, sender)
        return NOT_YOURS

    async def accept(self, envelope: Envelope) -> Reply:
        login = envelope.authenticated_as
        if login is None:  # the listener never lets this happen
            return Reply(530, "5.7.0", "Authentication required")
        recipients = [NewRecipient(normalize_address(r.address), r.orcpt, r.notify)
                      for r in envelope.recipients]
        return await self.submit(
            login, envelope.sender, recipients, envelope.data, peer=envelope.peer,
            envid=envelope.envid, ret=envelope.ret, smtputf8=envelope.smtputf8,
            sender_checked=True, transcript=envelope.transcript)  # sender: at MAIL FROM

    async def refusal(self, login: str, data: bytes) -> tuple[Reply | None, str]:
        """Why ``login`` may not send this message (None: it may), and the first From:
        address (the DKIM signing domain's): the header checks and the sender rules."""
        problem = header_problem(data)
        if problem is not None:
            log.info("submission: refused a message of %s: %s", login, problem)
            return Reply(550, "5.6.0", problem), ""
        headers = HeaderIndex.of(data)  # the header block, split once
        senders = from_addresses(headers)
        if senders is None:
            return Reply(550, "5.6.0", "Message needs a readable From: header"), ""
        for address in senders:
            if not await self.login.may_send_as(login, address):
                log.warning("submission: %s tried From: %s", login, address)
                return FROM_NOT_YOURS, address
        if headers.count("sender"):  # names checked above
            for address in from_addresses(headers, "sender") or ["<unreadable>"]:
                if not await self.login.may_send_as(login, address):
                    log.warning("submission: %s tried Sender: %s", login, address)
                    return SENDER_NOT_YOURS, address
        return None, senders[0]

    async def submit(
        self,
        login: str,
        sender: str,
        recipients: list[NewRecipient],
        data: bytes,
        *,
        origin: str = "submission",
        peer: str | None = None,
        envid: str | None = None,
        ret: str | None = None,
        smtputf8: bool = False,
        sender_checked: bool = False,
        not_before: datetime | None = None,
        queue_id: str | None = None,
        also: Callable[[AsyncSession], Awaitable[object]] | None = None,
        transcript: Transcript | None = None,
    ) -> Reply:
        """Check, DKIM-sign and queue what ``login`` sends; 250 with the queue id, or the
        refusal (nothing queued). ``not_before``, ``queue_id`` and ``also``: see
        :meth:`Spool.enqueue` (webmail holds its mail for undo send and send later).
        ``transcript``: the SMTP listener's (its trace id is the queue id); without it
        (webmail) the trace is ``queue_id``'s, or a new one."""
        listener = transcript is not None
        if transcript is None:
            transcript = self._transcript(login, sender, recipients, origin, peer, queue_id)
        refused: Reply | None = None
        if not sender_checked:
            answer = await self.check_sender(login, sender)
            refused = None if answer.ok else answer
        author = ""
        if refused is None:
            refused, author = await self.refusal(login, data)
        if refused is not None:
            if self.trace is not None:
                transcript.outcome = self._outcome(login, sender, recipients, data, refused)
                if not listener:  # webmail: no listener records it
                    transcript.written = True
                    self.trace.submit(transcript.group())
            return refused
        if self.signer is not None:
            data = await self.signer(data, domain_of(normalize_address(author)))
        queue_id = queue_id or transcript.trace_id
        reply = Reply(250, "2.0.0", f"Ok: queued as {queue_id}")
        trace = self.trace
        group = transcript.group(*self._outcome(
            login, sender, recipients, data, reply, queue_id)) if trace is not None else None

        async def traced(session: AsyncSession) -> None:
            if also is not None:
                await also(session)
            if trace is not None and group is not None:
                await trace.add(session, group)

        await self.spool.enqueue(
            sender=normalize_address(sender), recipients=recipients, data=data,
            origin=origin, peer=peer, envid=envid, ret=ret, smtputf8=smtputf8,
            not_before=not_before, queue_id=queue_id, trace_id=transcript.trace_id,
            also=traced if also is not None or trace is not None else None,
        )
        transcript.written = trace is not None
        return reply

    def _transcript(self, login: str, sender: str, recipients: list[NewRecipient],
                    origin: str, peer: str | None, queue_id: str | None) -> Transcript:
        """The trace of mail sent without an SMTP listener (webmail): who sent it, to whom."""
        transcript = Transcript(queue_id or new_id())
        if self.trace is not None:
            domain, at = scope_domain(sender), now()
            transcript.events.append(TraceEvent(
                Kind.SUBMIT, sender=sender, domain=domain, mailbox=login, peer=peer, at=at,
                detail={"login": login, "origin": origin}))
            transcript.events += [TraceEvent(
                Kind.RCPT, Outcome.ACCEPTED, sender=sender, recipient=r.address,
                domain=domain, mailbox=login, at=at, detail={"reply": str(RECIPIENT_OK)})
                for r in recipients]
        return transcript

    @staticmethod
    def _outcome(login: str, sender: str, recipients: list[NewRecipient], data: bytes,
                 reply: Reply, queue_id: str | None = None) -> list[TraceEvent]:
        """The DATA answer and a verdict per recipient, about the sender's domain."""
        headers = HeaderIndex.of(data)
        domain = scope_domain(sender)
        detail: dict[str, object] = {"filtered": False}
        if not reply.ok:
            detail["reason"] = reply.text
        outcome = Outcome.ACCEPTED if reply.ok else Outcome.REFUSED
        return [data_event(accepted=reply.ok, reply=reply, size=len(data),
                           queue_ids=[queue_id] if queue_id else None,
                           subject=headers.text("Subject"),
                           message_id=headers.text("Message-ID"), domain=domain,
                           mailbox=login),
                *(verdict_event(r.address, outcome, domain=domain, mailbox=login,
                                sender=sender, queue_id=queue_id, detail=detail)
                  for r in recipients)]
