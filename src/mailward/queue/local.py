"""The hosting route: deliver into our own mailboxes, expand forwarders and auto-cc.

A mailbox gets the message in its INBOX; a forwarder's copy is queued again to its
destinations (so each destination has its own retries and bounces); an auto-cc does both.
Loops (our own Delivered-To seen again, or too many hops) are bounced, never delivered.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select, update

from mailward.db import Address, AddressKind, Database
from mailward.directory.normalize import subaddress_base
from mailward.queue.loops import add_delivered_to, is_loop
from mailward.queue.outcome import Outcome
from mailward.queue.spool import NewRecipient, Spool
from mailward.store import MailStore, QuotaExceeded

log = logging.getLogger(__name__)


class LocalDelivery:
    def __init__(self, db: Database, store: MailStore, spool: Spool,
                 delimiter: str = "+") -> None:
        self.db = db
        self.store = store
        self.spool = spool
        self.delimiter = delimiter  # sub-addressing, as the MX's recipient lookup

    async def deliver(self, recipient: str, *, sender: str, data: bytes,
                      smtputf8: bool = False) -> Outcome:
        row = await self._address(recipient)
        base = subaddress_base(recipient, self.delimiter)
        if row is None and base is not None:  # e.g. submitted to a local bob+tag@
            recipient, row = base, await self._address(base)
        if row is None:
            return Outcome.failed("5.1.1", f"{recipient}: no such address here")
        address_id, kind, quota, destinations = row
        loop = is_loop(data, recipient)
        if loop:
            return Outcome.failed("5.4.6", loop)
        if kind is AddressKind.PENDING:
            return Outcome.deferred("4.2.1", f"{recipient} is not set up yet (pending setup)")
        copy = add_delivered_to(data, recipient)
        if kind in (AddressKind.MAILBOX, AddressKind.AUTOCC):
            try:
                await self.store.deliver(recipient, copy, quota_bytes=quota)
            except QuotaExceeded:
                return Outcome.deferred("4.2.2", f"mailbox {recipient} is full (over quota)")
            await self._record_usage(address_id, recipient)
        if kind in (AddressKind.FORWARDER, AddressKind.AUTOCC) and destinations:
            targets = [d.strip() for d in destinations.split(",") if d.strip()]
            await self.spool.enqueue(
                sender=sender,
                recipients=[NewRecipient(t) for t in targets],
                data=copy,
                origin="forward",
                smtputf8=smtputf8,
            )
            return Outcome.delivered(f"forwarded to {', '.join(targets)}")
        return Outcome.delivered(f"delivered to mailbox {recipient}")

    async def _address(self, email: str) -> Any:
        async with self.db.session() as session:
            return (await session.execute(
                select(Address.id, Address.kind, Address.quota_bytes, Address.destinations)
                .where(Address.email == email)
            )).first()

    async def _record_usage(self, address_id: int, mailbox: str) -> None:
        """Keep the directory's usage figure (panel, RCPT-time quota check) current."""
        used = await self.store.usage(mailbox)
        async with self.db.session() as session, session.begin():
            await session.execute(
                update(Address).where(Address.id == address_id).values(used_bytes=used)
            )
