"""Intake on the MX tier: answer RCPT from the directory, filter, spool, then 250.

This is the service behind the ``mx`` listener (``InboundSink``): the directory decides
whether a recipient is accepted, the filter whether the message is spam (for recipients
on the Filter list only), the spool makes it durable. Nothing is acknowledged before the
spool has committed it, and all copies of one message (Do Not Filter, each filtered
treatment) are committed in one transaction, so a failure midway leaves none and a
client's retry duplicates nothing; quarantine holds of the same message commit with them.

Postmaster mail is accepted as the directory answers it (``RecipientLookup``): delivered
to the configured postmaster, the address as written kept as ORCPT, never refused as spam.
RCPT and DATA both ask the directory (its answers are cached per process).

A message is read once: with the filter on, one worker-thread job splits its header block
(``HeaderIndex``) and authenticates it (SPF, DKIM, DMARC, ARC) from that index; the
pipeline's one bounded parse (in its own job, within the time budget) serves the checks and
the judge; the quarantine hold takes From and Subject from the same index.

With a ``VirusScanner`` (``clamd_socket`` set), a message with Filter recipients is sent to
clamd while it is authenticated, before the spam pipeline. Infected: each Filter
recipient's ``virus_action`` decides; when all of them say reject and there is no Do Not
Filter recipient, DATA is refused (554 5.7.1 naming the signature) and no pipeline runs;
otherwise the Filter recipients' copy is held in the quarantine (the signature its reason:
one SMTP answer covers every recipient) and the Do Not Filter recipients get the message,
as they asked for no filtering. Without a quarantine an infected message is refused. A scan
that failed (clamd down or slow) is delivered with the neutral finding
``virus-scan-failed`` when ``clamd_fail_open``, else DATA gets 451 4.7.1; one larger than
``clamd_max_bytes`` is delivered with ``virus-scan-skipped``.

With a ``Trace``, RCPT answers say whom they concern (our domain and the address; none for
a domain not ours), and the message's trace (the listener's ``Transcript``, then the DATA
answer and a verdict per recipient) is written in the transaction that spools its copies
and holds, or, for a message only held, in the quarantine's. A refusal is left in the
transcript for the listener to record. The first copy's queue id is the trace id.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from mailward.directory.lookup import Recipient, RecipientLookup, Verdict
from mailward.filter import Action, FilterInput, FilterPipeline, FilterVerdict
from mailward.filter.auth import Authenticator, AuthOutcome
from mailward.filter.bulk import BULK
from mailward.filter.judge import Judge, spam_headers, with_subject_tag
from mailward.filter.learning import without_our_headers
from mailward.filter.parsed import HeaderIndex
from mailward.filter.pipeline import Finding
from mailward.filter.policy import Decision
from mailward.filter.virus import VIRUS, Scan, ScanStatus, VirusScanner, virus_reason
from mailward.quarantine.service import Hold, Quarantine
from mailward.queue.spool import NewCopy, NewRecipient, Spool
from mailward.smtp.types import (
    Envelope,
    RecipientAnswer,
    RecipientParams,
    Reply,
    Transcript,
    data_event,
    verdict_event,
)
from mailward.trace.events import Outcome, TraceEvent
from mailward.trace.ids import new_id

if TYPE_CHECKING:
    from mailward.trace.recorder import Trace

log = logging.getLogger(__name__)

REPLIES = {
    Verdict.MALFORMED: Reply(501, "5.1.3", "Bad recipient address syntax"),
    Verdict.NOT_OURS: Reply(550, "5.7.1", "Relaying denied: we do not accept mail for "
                                          "that domain"),
    Verdict.UNLISTED: Reply(550, "5.1.1", "No such user here"),
}
OVER_QUOTA = Reply(452, "4.2.2", "Mailbox full, try again later")
ACCEPTED = Reply(250, "2.1.5", "Recipient OK")
SPAM_REJECTED = Reply(550, "5.7.1", "Message refused as spam")
SENDER_BLOCKED = Reply(550, "5.7.1", "Message refused: the sender is blocked by the recipient")
DMARC_REJECTED = Reply(550, "5.7.1", "Message refused: it fails the DMARC policy of the "
                                     "sender's domain")
NOT_SCANNED = Reply(451, "4.7.1", "Message not scanned for viruses, try again later")


def _virus_refused(signature: str) -> Reply:
    return Reply(554, "5.7.1", f"Message refused: virus found ({signature})")


def _queued(ids: list[str]) -> Reply:
    return Reply(250, "2.0.0", f"Ok: queued as {' '.join(ids)}")


def _judged(decision: Decision, *, filtered: bool = True) -> dict[str, object]:
    """A verdict event's detail: what the filter found and the intake decided."""
    return {"filtered": filtered, "spam": decision.action is not Action.ACCEPT,
            "score": decision.score, "action": str(decision.action),
            "reason": decision.reason,
            "findings": [{"check": f.check, "score": f.score, "reason": f.reason}
                         for f in decision.findings]}


class _Story:
    """What one DATA adds to the trace: the answer and a verdict per recipient (made once
    the queue and quarantine ids are known: inside the transaction)."""

    def __init__(self, envelope: Envelope, headers: HeaderIndex) -> None:
        self.envelope = envelope
        self.subject = headers.text("Subject")
        self.message_id = headers.text("Message-ID")
        self.verdicts: list[tuple[Recipient, Outcome, dict[str, object]]] = []

    def add(self, found: Recipient, outcome: Outcome,
            detail: dict[str, object] | None = None) -> None:
        self.verdicts.append((found, outcome, detail or {"filtered": False}))

    def events(self, reply: Reply, ids: list[str], held_ids: list[int],
               copy_of: dict[str, int]) -> list[TraceEvent]:
        """``copy_of``: each queued recipient's copy (an index into ``ids``)."""
        events = [data_event(accepted=reply.ok, reply=reply, size=len(self.envelope.data),
                             queue_ids=ids or None, subject=self.subject,
                             message_id=self.message_id)]
        for found, outcome, detail in self.verdicts:
            if outcome is Outcome.QUARANTINED and held_ids:
                detail = {**detail, "quarantine_id": held_ids[0]}
            copy = copy_of.get(found.address)
            events.append(verdict_event(
                found.address, outcome, domain=found.domain, mailbox=found.address,
                sender=self.envelope.sender, detail=detail,
                queue_id=ids[copy] if copy is not None and copy < len(ids) else None))
        return events


def _virus_judged(scan: Scan, action: str) -> dict[str, object]:
    """An infected message's verdict event detail (``action``: what the intake did)."""
    return {"filtered": True, "spam": True, "virus": scan.signature, "score": 0.0,
            "action": action, "reason": virus_reason(scan.signature),
            "findings": [{"check": VIRUS, "score": 0.0, "reason": scan.signature}]}


def _refusal(decision: Decision) -> Reply:
    if decision.reason.startswith("sender "):
        return SENDER_BLOCKED
    if decision.reason.startswith("DMARC"):
        return DMARC_REJECTED
    return SPAM_REJECTED


def _authenticated(headers: HeaderIndex, value: str, authserv_id: str) -> bytes:
    """The message with our Authentication-Results on top, and any claiming to be ours
    before it dropped (RFC 8601 §5: a sender could forge our results)."""
    ours = re.compile(rb"(?i)\s*" + re.escape(authserv_id.encode()) + rb"\s*(;|$)")

    def forged(name: bytes, raw: bytes) -> bool:
        return (name.lower() == b"authentication-results"
                and ours.match(raw.split(b"\r\n", 1)[0]) is not None)

    kept = headers.without(forged)
    if headers.malformed:  # a lenient reader may take lines past the index's end as fields
        kept = _without_forged_lines(kept, ours)
    return f"Authentication-Results: {value}\r\n".encode() + kept


def _without_forged_lines(data: bytes, ours: re.Pattern[bytes]) -> bytes:
    """``data`` without the Authentication-Results fields claiming to be ours anywhere
    before its first blank line, read line by line."""
    head, sep, body = data.partition(b"\r\n\r\n")
    kept: list[bytes] = []
    skipping = False
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):  # a continuation of the previous field
            if not skipping:
                kept.append(line)
            continue
        name, colon, raw = line.partition(b":")
        skipping = bool(colon) and name.lower() == b"authentication-results" and \
            ours.match(raw) is not None
        if not skipping:
            kept.append(line)
    return b"\r\n".join(kept) + sep + body


class MxIntake:
    def __init__(self, lookup: RecipientLookup, spool: Spool,
                 pipeline: FilterPipeline | None = None,
                 authenticator: Authenticator | None = None, judge: Judge | None = None,
                 quarantine: Quarantine | None = None, *,
                 trace: Trace | None = None, virus: VirusScanner | None = None) -> None:
        self.lookup = lookup
        self.spool = spool
        self.pipeline = pipeline or FilterPipeline()
        self.authenticator = authenticator  # None: no Authentication-Results (filter off)
        self.judge = judge  # None: the pipeline's thresholds, no lists (filter off)
        self.quarantine = quarantine  # None: what would be held is delivered tagged
        self.trace = trace  # None: nothing recorded
        self.virus = virus  # None: no virus scanning

    async def check_recipient(self, address: str) -> RecipientAnswer:
        """The directory's answer; for our domains, the domain and address it concerns."""
        found = await self.lookup.lookup(address)
        if found.verdict in (Verdict.MALFORMED, Verdict.NOT_OURS):
            return RecipientAnswer(REPLIES[found.verdict], reason=found.verdict.value)
        domain, mailbox = found.domain, found.address.lower()
        if found.verdict is not Verdict.ACCEPTED:
            return RecipientAnswer(REPLIES[found.verdict], domain, mailbox,
                                   found.verdict.value)
        if found.over_quota:
            return RecipientAnswer(OVER_QUOTA, domain, mailbox, "over quota")
        return RecipientAnswer(ACCEPTED, domain, mailbox)

    async def accept(self, envelope: Envelope) -> Reply:
        filtered: list[RecipientParams] = []
        unfiltered: list[RecipientParams] = []
        found_of: dict[str, Recipient] = {}
        for rcpt in envelope.recipients:
            found = await self.lookup.lookup(rcpt.address)  # the directory's cache: cheap
            if found.address in found_of:  # bob@ and bob+tag@ in one transaction: one copy
                continue
            found_of[found.address] = found
            target = filtered if found.filtered else unfiltered
            # a sub-address answered as its base keeps what the client wrote for DSNs
            orcpt = rcpt.orcpt or (f"rfc822;{rcpt.address}"
                                   if found.address != rcpt.address.strip().lower() else None)
            target.append(RecipientParams(found.address, rcpt.notify, orcpt))
        data, auth, headers = envelope.data, None, None
        # clamd scans while the message is authenticated (a worker thread)
        scanning = asyncio.ensure_future(self.virus.scan(envelope.data)) \
            if self.virus is not None and filtered else None
        try:
            if self.authenticator is not None:  # every recipient gets the results
                headers, auth, data = await self.authenticator.run(
                    self._authenticate, envelope, self.authenticator)
            scan = await scanning if scanning is not None else None
        finally:
            if scanning is not None and not scanning.done():
                scanning.cancel()
        transcript = envelope.transcript
        if scan is not None and scan.infected:
            return await self._infected(envelope, scan, filtered, unfiltered, found_of, data,
                                        headers)
        if scan is not None and scan.status is ScanStatus.FAILED and \
                self.virus is not None and not self.virus.fail_open:
            return NOT_SCANNED  # fail closed; the listener records the answer
        story = None
        if self.trace is not None and transcript is not None:
            story = _Story(envelope, headers or HeaderIndex.of(envelope.data))
        if not filtered:
            for rcpt in unfiltered:
                if story is not None:
                    story.add(found_of[rcpt.address], Outcome.ACCEPTED)
            return await self._queue(envelope, [(unfiltered, data)], [], story, transcript)
        verdict = await self.pipeline.run(FilterInput(
            sender=envelope.sender, recipients=tuple(r.address for r in filtered),
            data=envelope.data, peer=envelope.peer, helo=envelope.helo, tls=envelope.tls,
            auth=auth, headers=headers,
        ))
        unscanned = scan.finding() if scan is not None else None
        if unscanned is not None:  # neutral: in X-Spam-Status, the trace and the quarantine
            verdict = replace(verdict, findings=(*verdict.findings, unscanned))
        decisions = await self._decide(filtered, verdict, envelope, auth)
        if not unfiltered and all(d.action is Action.REJECT for d in decisions.values()):
            first = decisions[filtered[0].address]
            log.info("refused mail from %s to %s: %s (%s)", envelope.sender or "<>",
                     ", ".join(decisions), first.reason, verdict.header())
            reply = _refusal(first)
            if story is not None and transcript is not None:  # the listener records it
                for rcpt in filtered:
                    story.add(found_of[rcpt.address], Outcome.REFUSED,
                              _judged(decisions[rcpt.address]))
                transcript.outcome = story.events(reply, [], [], {})
            return reply
        # One copy per distinct treatment; mail refused for some recipients but accepted for
        # others is held for them instead (one SMTP answer covers every recipient).
        copies: dict[tuple[str, ...], list[RecipientParams]] = {}
        held: list[Hold] = []
        for rcpt in unfiltered:
            if story is not None:
                story.add(found_of[rcpt.address], Outcome.ACCEPTED)
        for rcpt in filtered:
            decision = decisions[rcpt.address]
            found = found_of[rcpt.address]
            if decision.action in (Action.QUARANTINE, Action.REJECT) and self.quarantine:
                held.append(Hold(rcpt.address, decision.reason))
                if story is not None:
                    story.add(found, Outcome.QUARANTINED, _judged(decision))
                continue
            if decision.action is Action.ACCEPT and not self.pipeline.checks:
                unfiltered.append(rcpt)  # no checks ran (filter off): nothing to say
                if story is not None:
                    story.add(found, Outcome.ACCEPTED)
                continue
            # filtered copies carry the verdict (X-Spam-Flag: NO on clean mail, as clients'
            # rules, customers' own servers and admins asking "why did this get through"
            # expect)
            copies.setdefault(self._treatment(decision), []).append(rcpt)
            if story is not None:
                story.add(found, Outcome.ACCEPTED, _judged(decision))
        spooled = [(unfiltered, data)] if unfiltered else []
        spooled += [(recipients, self._copy(data, decisions, treatment, recipients))
                    for treatment, recipients in copies.items()]
        held_ids: list[int] = []

        async def hold(session: AsyncSession) -> None:
            assert self.quarantine is not None
            held_ids.append(await self.quarantine.add_hold(
                session, sender=envelope.sender, peer=envelope.peer, data=data,
                score=verdict.score, findings=verdict.findings, holds=held, headers=headers,
                trace_id=transcript.trace_id if transcript is not None else None))

        reply = await self._queue(envelope, spooled, held_ids, story, transcript,
                                  hold if held else None)
        for held_id in held_ids:
            log.info("quarantined mail from %s for %s (#%d): %s", envelope.sender or "<>",
                     ", ".join(h.recipient for h in held), held_id, held[0].reason)
        return reply

    async def _infected(self, envelope: Envelope, scan: Scan, filtered: list[RecipientParams],
                        unfiltered: list[RecipientParams], found_of: dict[str, Recipient],
                        data: bytes, headers: HeaderIndex | None) -> Reply:
        """An infected message: refused at DATA when every Filter recipient's
        ``virus_action`` says reject and no one else gets it (or there is no quarantine),
        else held for the Filter recipients and queued for the Do Not Filter ones."""
        assert self.virus is not None
        transcript = envelope.transcript
        story = None
        if self.trace is not None and transcript is not None:
            story = _Story(envelope, headers or HeaderIndex.of(envelope.data))
        actions = await self.virus.actions(r.address for r in filtered)
        reason = virus_reason(scan.signature)
        if self.quarantine is None or (
                not unfiltered and all(a == "reject" for a in actions.values())):
            reply = _virus_refused(scan.signature)
            log.info("refused mail from %s to %s: %s", envelope.sender or "<>",
                     ", ".join(r.address for r in [*filtered, *unfiltered]), reason)
            if story is not None and transcript is not None:  # the listener records it
                for rcpt in [*filtered, *unfiltered]:
                    story.add(found_of[rcpt.address], Outcome.REFUSED,
                              _virus_judged(scan, "reject") if rcpt in filtered else
                              {"filtered": False, "reason": reason})
                transcript.outcome = story.events(reply, [], [], {})
            return reply
        held = [Hold(rcpt.address, reason) for rcpt in filtered]
        for rcpt in unfiltered:
            if story is not None:
                story.add(found_of[rcpt.address], Outcome.ACCEPTED)
        for rcpt in filtered:
            if story is not None:
                story.add(found_of[rcpt.address], Outcome.QUARANTINED,
                          _virus_judged(scan, "quarantine"))
        held_ids: list[int] = []

        async def hold(session: AsyncSession) -> None:
            assert self.quarantine is not None
            held_ids.append(await self.quarantine.add_hold(
                session, sender=envelope.sender, peer=envelope.peer, data=data, score=0.0,
                findings=(Finding(VIRUS, 0.0, scan.signature),), holds=held,
                headers=headers,
                trace_id=transcript.trace_id if transcript is not None else None))

        reply = await self._queue(envelope, [(unfiltered, data)] if unfiltered else [],
                                  held_ids, story, transcript, hold)
        for held_id in held_ids:
            log.info("quarantined mail from %s for %s (#%d): %s", envelope.sender or "<>",
                     ", ".join(h.recipient for h in held), held_id, reason)
        return reply

    async def _queue(self, envelope: Envelope,
                     copies: list[tuple[list[RecipientParams], bytes]], held_ids: list[int],
                     story: _Story | None, transcript: Transcript | None,
                     hold: Callable[[AsyncSession], Awaitable[None]] | None = None,
                     ) -> Reply:
        """Queue the copies and ``hold`` what is held (its ids go to ``held_ids``) in one
        transaction, with the trace (``story``); the 250 answer. Held only: in the
        quarantine's transaction."""
        trace_id = transcript.trace_id if transcript is not None else None
        ids = [trace_id, *(new_id() for _ in copies[1:])] if trace_id and copies else []
        copy_of = {r.address: i for i, (recipients, _) in enumerate(copies)
                   for r in recipients}

        def answer() -> Reply:
            return _queued([f"quarantine#{held_id}" for held_id in held_ids] + ids)

        async def also(session: AsyncSession) -> None:
            if hold is not None:
                await hold(session)
            if story is not None and transcript is not None and self.trace is not None:
                await self.trace.add(session, transcript.group(
                    *story.events(answer(), ids, held_ids, copy_of)))

        if copies:  # the holds commit with the copies: one DATA, one transaction
            ids = await self._spool(envelope, copies, ids or None, trace_id,
                                    also if hold is not None or story is not None else None)
        elif hold is not None:
            assert self.quarantine is not None
            async with self.quarantine.db.session() as session, session.begin():
                await also(session)
        if transcript is not None and story is not None:
            transcript.written = True
        return answer()

    @staticmethod
    def _authenticate(envelope: Envelope, authenticator: Authenticator,
                      ) -> tuple[HeaderIndex, AuthOutcome, bytes]:
        """The message's header index, its authentication, and its bytes with our
        Authentication-Results (blocking: run in a worker thread)."""
        headers = HeaderIndex.of(envelope.data)
        auth = authenticator.check_blocking(FilterInput(
            sender=envelope.sender, recipients=(), data=envelope.data, peer=envelope.peer,
            helo=envelope.helo, tls=envelope.tls, headers=headers))
        return headers, auth, _authenticated(headers, auth.header, authenticator.authserv_id)

    async def _decide(self, filtered: list[RecipientParams], verdict: FilterVerdict,
                      envelope: Envelope, auth: object) -> dict[str, Decision]:
        addresses = [r.address for r in filtered]
        if self.judge is None:  # the pipeline's own thresholds for everyone
            bulk = any(f.check == BULK for f in verdict.findings)
            return {a: Decision(verdict.action, verdict.score, f"score {verdict.score:g}",
                                verdict.findings, bulk=bulk) for a in addresses}
        return await self.judge.decide(addresses, verdict, data=envelope.data,
                                       sender=envelope.sender, auth=auth)

    @staticmethod
    def _treatment(decision: Decision) -> tuple[str, ...]:
        """What makes two filtered copies differ: the subject tag (spam's, or bulk mail's),
        the verdict and the header values."""
        spam = decision.action is not Action.ACCEPT
        tag = decision.subject_tag if spam else decision.bulk_tag
        return (tag or "", "spam" if spam else "clean", "bulk" if decision.bulk else "",
                f"{decision.score:g}", ",".join(f"{f.check}={f.score:g}"
                                                for f in decision.findings))

    @staticmethod
    def _copy(data: bytes, decisions: dict[str, Decision], treatment: tuple[str, ...],
              recipients: list[RecipientParams]) -> bytes:
        data = without_our_headers(data)  # a sender's own X-Spam-Flag: NO must not show
        if treatment[0]:
            data = with_subject_tag(data, treatment[0])
        return spam_headers(decisions[recipients[0].address]) + data

    async def _spool(self, envelope: Envelope,
                     copies: list[tuple[list[RecipientParams], bytes]],
                     ids: list[str] | None, trace_id: str | None,
                     also: Callable[[AsyncSession], Awaitable[None]] | None = None,
                     ) -> list[str]:
        """Queue the copies of one message (and ``also`` what it adds, e.g. quarantine
        holds and the trace) in one transaction; their queue ids (``ids`` when given)."""
        return await self.spool.enqueue_many(
            [NewCopy([NewRecipient(r.address, r.orcpt, r.notify) for r in recipients], data)
             for recipients, data in copies],
            sender=envelope.sender,
            origin="mx",
            peer=envelope.peer,
            envid=envelope.envid,
            ret=envelope.ret,
            smtputf8=envelope.smtputf8,
            also=also,
            ids=ids,
            trace_id=trace_id,
        )
