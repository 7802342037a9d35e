"""Intake on the MX tier: answer RCPT from the directory, filter, spool, then 250.

This is the service behind the ``mx`` listener (``InboundSink``): the directory decides
whether a recipient is accepted, the filter whether the message is spam (for recipients
on the Filter list only), the spool makes it durable. Nothing is acknowledged before the
spool has committed it.
"""

from __future__ import annotations

import logging
import re
import time

from mailward.directory.lookup import Recipient, RecipientLookup, Verdict
from mailward.filter import Action, FilterInput, FilterPipeline, FilterVerdict
from mailward.filter.auth import Authenticator
from mailward.queue.spool import NewRecipient, Spool
from mailward.smtp.types import Envelope, RecipientParams, Reply

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
ANSWER_REUSE_SECONDS = 60.0  # RCPT lookups reused at DATA time (saves a query each)
MAX_REMEMBERED = 10_000


def _tagged(data: bytes, verdict: FilterVerdict) -> bytes:
    headers = (f"X-Spam-Flag: YES\r\nX-Spam-Status: Yes, {verdict.header()}\r\n").encode()
    return headers + data


def _authenticated(data: bytes, value: str, authserv_id: str) -> bytes:
    """``data`` with our Authentication-Results on top, and any claiming to be ours
    before it dropped (RFC 8601 §5: a sender could forge our results)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, body = data, b""
    kept = []
    ours = re.compile(rb"(?i)^authentication-results:\s*" + re.escape(authserv_id.encode())
                      + rb"\s*(;|$)")
    skipping = False
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):  # a continuation of the previous field
            if not skipping:
                kept.append(line)
            continue
        skipping = bool(ours.match(line))
        if not skipping:
            kept.append(line)
    new_head = b"\r\n".join(kept)
    field = f"Authentication-Results: {value}\r\n".encode()
    return field + new_head + (b"\r\n\r\n" + body if sep else b"")


class MxIntake:
    def __init__(self, lookup: RecipientLookup, spool: Spool,
                 pipeline: FilterPipeline | None = None,
                 authenticator: Authenticator | None = None) -> None:
        self.lookup = lookup
        self.spool = spool
        self.pipeline = pipeline or FilterPipeline()
        self.authenticator = authenticator  # None: no Authentication-Results (filter off)
        self._answers: dict[str, tuple[float, Recipient]] = {}

    async def _lookup(self, address: str, *, reuse: bool) -> Recipient:
        now = time.monotonic()
        if reuse:
            remembered = self._answers.get(address)
            if remembered is not None and now - remembered[0] < ANSWER_REUSE_SECONDS:
                return remembered[1]
        found = await self.lookup.lookup(address)
        if len(self._answers) >= MAX_REMEMBERED:
            self._answers.clear()
        self._answers[address] = (now, found)
        return found

    async def check_recipient(self, address: str) -> Reply:
        found = await self._lookup(address, reuse=False)  # always the directory's answer
        if found.verdict is not Verdict.ACCEPTED:
            return REPLIES[found.verdict]
        if found.over_quota:
            return OVER_QUOTA
        return ACCEPTED

    async def accept(self, envelope: Envelope) -> Reply:
        filtered: list[RecipientParams] = []
        unfiltered: list[RecipientParams] = []
        for rcpt in envelope.recipients:
            found = await self._lookup(rcpt.address, reuse=True)
            target = filtered if found.filtered else unfiltered
            target.append(RecipientParams(found.address, rcpt.notify, rcpt.orcpt))
        data, auth = envelope.data, None
        if self.authenticator is not None:  # every recipient gets the results
            auth = await self.authenticator.check(FilterInput(
                sender=envelope.sender, recipients=(), data=data, peer=envelope.peer,
                helo=envelope.helo, tls=envelope.tls))
            data = _authenticated(data, auth.header, self.authenticator.authserv_id)
        verdict = FilterVerdict(Action.ACCEPT, 0.0)
        if filtered:
            verdict = await self.pipeline.run(FilterInput(
                sender=envelope.sender, recipients=tuple(r.address for r in filtered),
                data=envelope.data, peer=envelope.peer, helo=envelope.helo, tls=envelope.tls,
                auth=auth,
            ))
        if verdict.action is Action.ACCEPT:
            queue_id = await self._spool(envelope, [*unfiltered, *filtered], data)
            return Reply(250, "2.0.0", f"Ok: queued as {queue_id}")
        if verdict.action is Action.REJECT and not unfiltered:
            log.info("refused spam from %s (%s)", envelope.sender, verdict.header())
            return SPAM_REJECTED
        # Tag (quarantine comes with the spam engine; until then it is tagged delivery).
        ids = []
        if unfiltered:
            ids.append(await self._spool(envelope, unfiltered, data))
        ids.append(await self._spool(envelope, filtered, _tagged(data, verdict)))
        return Reply(250, "2.0.0", f"Ok: queued as {' '.join(ids)}")

    async def _spool(self, envelope: Envelope, recipients: list[RecipientParams],
                     data: bytes) -> str:
        return await self.spool.enqueue(
            sender=envelope.sender,
            recipients=[NewRecipient(r.address, r.orcpt, r.notify) for r in recipients],
            data=data,
            origin="mx",
            peer=envelope.peer,
            envid=envelope.envid,
            ret=envelope.ret,
            smtputf8=envelope.smtputf8,
        )
