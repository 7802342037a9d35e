"""The hosting route: deliver into our own mailboxes, expand forwarders and auto-cc.

A mailbox gets the message in its INBOX; a forwarder's copy is queued again to its
destinations (so each destination has its own retries and bounces); an auto-cc does both.
Loops (our own Delivered-To seen again, or too many hops) are bounced, never delivered.

Forwarding is bounded (``forward_max_depth``, ``forward_max_copies``) for graphs the
directory never checked (legacy data, changes since): each forwarder a message passes
leaves a ``Delivered-To`` (its depth), and each forwarded copy carries how many further
copies it may still become (``X-Mailward-Forward-Copies``, never more than the cap). A
forwarder hands its destinations shares of that allowance as large as the directory says
their own forwarding needs; a copy whose share does not cover its destinations fails with
a DSN instead of multiplying. A domain whose hosting is off gets nothing into mailboxes.

Which address a recipient is (sub-addressing included) and its destinations are asked of
the directory's :class:`~mailward.directory.lookup.RecipientLookup`, as on the MX.

A mailbox's active Sieve script (:mod:`mailward.sieve`) decides where its copy goes: the
folders and flags, a discard, redirects (queued like forwards, origin ``redirect``) and a
vacation reply (queued with the null sender, origin ``vacation``). ``fileinto`` a folder
that does not exist keeps the message in INBOX, as Dovecot does, unless ``:create`` (the
``mailbox`` extension) asks for it; a runtime error is the implicit keep (logged).
"""

from __future__ import annotations

import logging
from dataclasses import replace

from mailward.db import AddressKind, Database
from mailward.directory.forwarding import ForwardLimits, expand, load_graph
from mailward.directory.lookup import RecipientLookup, Verdict
from mailward.queue.loops import (
    add_delivered_to,
    add_field,
    count_delivered_to,
    delivered_to,
    field_value,
    is_loop,
    without_field,
)
from mailward.queue.outcome import Forwarded, Outcome
from mailward.queue.spool import NewRecipient, Spool
from mailward.sieve.interpreter import Delivery, Envelope, Result, run
from mailward.sieve.message import SieveMessage
from mailward.sieve.scripts import SieveScripts
from mailward.sieve.vacation import Signer, Vacations
from mailward.store import (
    INBOX,
    FolderExists,
    InvalidFlag,
    InvalidFolderName,
    MailStore,
    NoSuchFolder,
    QuotaExceeded,
    Stored,
)
from mailward.store.search_index import SearchIndex

log = logging.getLogger(__name__)

COPIES_FIELD = "X-Mailward-Forward-Copies"
"""How many more copies forwarding may make of this one (written when forwarding)."""


def _allowance(data: bytes, cap: int) -> int:
    """The copies a message may still become: its ``COPIES_FIELD``, at most ``cap``
    (a sender cannot raise it), ``cap`` when it has none."""
    value = (field_value(data, COPIES_FIELD) or "").strip()
    return min(int(value), cap) if value.isascii() and value.isdigit() else cap


class LocalDelivery:
    def __init__(self, db: Database, store: MailStore, spool: Spool,
                 recipients: RecipientLookup | None = None,
                 limits: ForwardLimits | None = None, signer: Signer | None = None) -> None:
        self.db = db
        self.store = store
        self.spool = spool
        self.recipients = recipients or RecipientLookup(db)  # sub-addressing as on the MX
        self.limits = limits or ForwardLimits()
        self.search_index = SearchIndex(db)  # webmail search: indexed as delivered
        self.sieve = SieveScripts(db)  # each mailbox's active script
        self.vacations = Vacations(db, signer)  # signer: DKIM as submission mail

    async def deliver(self, recipient: str, *, sender: str, data: bytes,
                      smtputf8: bool = False, trace_id: str | None = None) -> Outcome:
        """Deliver to a hosted address; the outcome names the mailbox, the folder it
        landed in and the forward/auto-cc copies queued (each stores ``trace_id``, the
        trace of the message delivered)."""
        addressed = recipient
        found = await self.recipients.local(recipient)  # bob+tag@ is bob@ unless listed
        recipient = found.address
        if found.verdict is not Verdict.ACCEPTED:
            return Outcome.failed("5.1.1", f"{recipient}: no such address here")
        kind, quota = found.kind, found.quota_bytes
        address_id, domain, hosting = found.address_id, found.domain, found.domain_hosting
        assert address_id is not None
        loop = is_loop(data, recipient)
        if loop:
            return Outcome.failed("5.4.6", loop)
        if not hosting:
            return Outcome.deferred("4.3.5", f"hosting is off for {domain}: nothing is "
                                    f"delivered to {recipient} until it is switched on")
        if kind is AddressKind.PENDING:
            return Outcome.deferred("4.2.1", f"{recipient} is not set up yet (pending setup)")
        copy = add_delivered_to(without_field(data, COPIES_FIELD), recipient)
        stored = ""
        folder: str | None = None
        filtered: tuple[Forwarded, ...] = ()
        if kind in (AddressKind.MAILBOX, AddressKind.AUTOCC):
            script = await self.sieve.active(recipient)
            result = (run(script, copy, Envelope(sender, addressed)) if script
                      else Result(deliveries=[Delivery(INBOX, frozenset())]))
            if result.error:
                log.warning("sieve: %s: runtime error, implicit keep: %s", recipient,
                            result.error)
            try:
                landed = await self._store(recipient, copy, quota, result)
            except QuotaExceeded:
                return Outcome.deferred("4.2.2", f"mailbox {recipient} is full (over quota)")
            if landed is not None:
                await self._index(recipient, landed, copy)
                await self._record_usage(address_id, recipient)
                stored, folder = f"delivered to mailbox {recipient}; ", landed.folder
            else:
                stored = f"discarded by the sieve script of {recipient}; "
            filtered = await self._sieve_mail(recipient, result, data, copy, sender=sender,
                                              smtputf8=smtputf8, trace_id=trace_id)
        if kind in (AddressKind.FORWARDER, AddressKind.AUTOCC) and found.destinations:
            targets = list(found.destinations)
            forwarded = await self._forward(
                recipient, targets, data, copy, sender=sender, smtputf8=smtputf8,
                kind="autocc" if kind is AddressKind.AUTOCC else "forward",
                trace_id=trace_id)
            if isinstance(forwarded, str):
                return replace(Outcome.failed("5.4.6", stored + forwarded),
                               mailbox=recipient, folder=folder)
            return replace(Outcome.delivered(f"{stored}forwarded to {', '.join(targets)}"),
                           mailbox=recipient, folder=folder, forwarded=filtered + forwarded)
        detail = stored.removesuffix("; ") or f"delivered to mailbox {recipient}"
        return replace(Outcome.delivered(detail), mailbox=recipient, folder=folder,
                       forwarded=filtered)

    async def _store(self, mailbox: str, data: bytes, quota: int | None,
                     result: Result) -> Stored | None:
        """Store the copy where the script says (INBOX without one); the first place it
        landed, ``None`` when the script discarded it. A folder that does not exist is
        INBOX unless ``:create``; flags the store refuses are dropped (logged)."""
        first: Stored | None = None
        for target in result.deliveries:
            where = target.folder
            if where != INBOX and target.create:
                try:
                    await self.store.create_folder(mailbox, where)
                except FolderExists:
                    pass
                except InvalidFolderName:
                    where = INBOX
            try:
                landed = await self._store_one(mailbox, data, where, target.flags, quota)
            except (NoSuchFolder, InvalidFolderName):
                log.info("sieve: %s: no folder %r, kept in INBOX", mailbox, where)
                if any(t.folder == INBOX for t in result.deliveries):
                    continue  # INBOX gets its copy anyway
                landed = await self._store_one(mailbox, data, INBOX, target.flags, quota)
            first = first or landed
        return first

    async def _store_one(self, mailbox: str, data: bytes, folder: str,
                         flags: frozenset[str], quota: int | None) -> Stored:
        try:
            return await self.store.deliver(mailbox, data, folder=folder, flags=flags,
                                            quota_bytes=quota)
        except InvalidFlag:
            log.info("sieve: %s: flags %s refused by the store, delivered without them",
                     mailbox, sorted(flags))
            return await self.store.deliver(mailbox, data, folder=folder, quota_bytes=quota)

    async def _sieve_mail(self, mailbox: str, result: Result, data: bytes, copy: bytes, *,
                          sender: str, smtputf8: bool, trace_id: str | None
                          ) -> tuple[Forwarded, ...]:
        """Queue the script's redirects (like forwards: within the forwarding depth) and
        its vacation reply (null sender)."""
        queued: list[Forwarded] = []
        if result.redirects:
            if count_delivered_to(data) + 1 > self.limits.max_depth:
                log.warning("sieve: %s: redirect beyond the forwarding depth, not sent",
                            mailbox)
            else:
                queue_id = await self.spool.enqueue(
                    sender=sender, recipients=[NewRecipient(t) for t in result.redirects],
                    data=add_field(copy, COPIES_FIELD, "0"), origin="redirect",
                    smtputf8=smtputf8, parent_trace=trace_id)
                queued.append(Forwarded(queue_id, tuple(result.redirects), "redirect"))
        if result.vacation is not None:
            reply, why = await self.vacations.reply(
                result.vacation, mailbox=mailbox, sender=sender,
                message=SieveMessage(copy))
            log.info("sieve: %s: %s", mailbox, why)
            if reply is not None:
                queue_id = await self.spool.enqueue(
                    sender="", recipients=[NewRecipient(sender)], data=reply,
                    origin="vacation", parent_trace=trace_id)
                queued.append(Forwarded(queue_id, (sender,), "vacation"))
        return tuple(queued)

    async def _forward(self, recipient: str, targets: list[str], data: bytes, copy: bytes,
                       *, sender: str, smtputf8: bool, kind: str, trace_id: str | None
                       ) -> tuple[Forwarded, ...] | str:
        """Queue a copy to each target within the caps (the copies queued); else why not
        (nothing queued)."""
        limits = self.limits
        hops = count_delivered_to(data)  # forwarders this message has passed already
        if hops + 1 > limits.max_depth:
            return (f"not forwarded by {recipient}: it would be forwarder {hops + 1} in a "
                    f"chain, beyond the forwarding depth {limits.max_depth}")
        allowance = _allowance(data, limits.max_copies)
        if len(targets) > allowance:
            return (f"not forwarded by {recipient}: {len(targets)} copies, but this message "
                    f"may become only {allowance} more (limit {limits.max_copies} copies)")
        left = limits.max_depth - hops - 1  # forwarders still allowed below this one
        seen = delivered_to(data) | {recipient.lower()}
        async with self.db.session() as session:
            graph = await load_graph(session, targets, levels=left)
        spare = allowance - len(targets)
        shares: dict[int, list[str]] = {}
        for target in targets:  # each gets what its own forwarding needs, while it lasts
            need = expand(graph, target.lower(), stop_after=spare, max_depth=left,
                          exclude=seen).copies
            share = min(need, spare)
            spare -= share
            shares.setdefault(share, []).append(target)
        queued: list[Forwarded] = []
        for share, group in shares.items():
            queue_id = await self.spool.enqueue(
                sender=sender,
                recipients=[NewRecipient(t) for t in group],
                data=add_field(copy, COPIES_FIELD, str(share)),
                origin="forward",
                smtputf8=smtputf8,
                parent_trace=trace_id,
            )
            queued.append(Forwarded(queue_id, tuple(group), kind))
        return tuple(queued)

    async def _index(self, mailbox: str, landed: Stored, data: bytes) -> None:
        """Add the message to the search index; a failure is logged, never the delivery's
        (a search indexes what is missing when it next looks at the folder)."""
        try:
            await self.search_index.add(mailbox, landed, data)
        except Exception:
            log.warning("search index: %s %s/%d not indexed at delivery", mailbox,
                        landed.folder, landed.uid, exc_info=True)

    async def _record_usage(self, address_id: int, mailbox: str) -> None:
        """Keep the directory's usage figure (panel, RCPT-time quota check) current."""
        await self.recipients.record_usage(address_id, await self.store.usage(mailbox))
