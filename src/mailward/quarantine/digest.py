"""The quarantine digest: a mail per address listing its newly held messages, each with a
signed one-click release link (:mod:`mailward.quarantine.links`), plus the retention
purge; both run in the delivery role.

Several nodes may run the digester over one database: an address is claimed by moving its
``quarantine_digests.next_digest_at`` forward in one conditional UPDATE (as the DNS
re-check does), so each address gets one digest per interval however many nodes run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from typing import TYPE_CHECKING
from urllib.parse import quote

from sqlalchemy import exists, insert, literal, select, update
from sqlalchemy.exc import IntegrityError

from mailward.config import Settings
from mailward.core.actor import Q
from mailward.db import Database
from mailward.db.models import (
    QuarantineDigest,
    QuarantinedMessage,
    QuarantineEntry,
    UTCDateTime,
    utcnow,
)
from mailward.filter.virus import is_virus_reason
from mailward.quarantine.links import LINK_DAYS, link_expiry, link_secret, release_token
from mailward.quarantine.service import HELD, Quarantine, QuarantineView
from mailward.queue.spool import NewRecipient, Spool

if TYPE_CHECKING:
    from mailward.trace.recorder import Trace

__all__ = ["DigestItem", "QuarantineDigester", "build_digest"]

log = logging.getLogger(__name__)

TICK_SECONDS = 60.0  # how often due addresses are looked for (and expired mail purged)
BATCH = 100  # addresses claimed per round trip
MAX_LISTED = 200  # entries listed in one digest (the newest); the rest are counted


@dataclass(frozen=True, slots=True)
class DigestItem:
    entry: QuarantineView
    link: str


class QuarantineDigester:
    """Sends each address with newly held mail its digest; purges expired mail."""

    def __init__(self, db: Database, settings: Settings, spool: Spool, *,
                 clock: Callable[[], datetime] = utcnow, trace: Trace | None = None) -> None:
        self.db = db
        self.settings = settings
        self.spool = spool
        self.clock = clock
        self.enabled = settings.quarantine_digest_interval_seconds > 0
        # 0 turns the digest off; a round run by hand still needs to move the claim on
        self.interval = timedelta(seconds=max(settings.quarantine_digest_interval_seconds, 1))
        self.quarantine = Quarantine(db, settings, trace=trace)  # expiry: ``discard``
        self._secret: bytes | None = None

    async def run(self) -> None:
        """Every TICK_SECONDS until cancelled: purge expired mail, send due digests."""
        while True:
            now = self.clock()
            try:
                await self.quarantine.purge(now)
            except Exception:  # the database may be away for a moment: next tick
                log.exception("quarantine purge failed")
            if self.enabled:
                try:
                    await self.run_once(now)
                except Exception:
                    log.exception("quarantine digest round failed")
            await asyncio.sleep(TICK_SECONDS)

    async def run_once(self, now: datetime | None = None) -> list[str]:
        """Send the digests due now (claimed by this node); the recipients sent to."""
        now = now or self.clock()
        await self._add_new_recipients(now)
        sent: list[str] = []
        seen: set[str] = set()
        while claimed := [r for r in await self._claim(now) if r not in seen]:
            seen.update(claimed)
            for recipient in claimed:
                try:
                    if await self._send(recipient, now):
                        sent.append(recipient)
                except Exception:
                    log.exception("quarantine digest to %s failed", recipient)
                    await self._unclaim(recipient, now)
        return sorted(sent)

    @staticmethod
    def _pending(query: Q, now: datetime) -> Q:
        """``query`` narrowed to entries not yet in a digest: held, unlisted, their
        message not expired."""
        return (query.join(QuarantinedMessage,
                           QuarantinedMessage.id == QuarantineEntry.message_id)
                .where(QuarantineEntry.status == HELD, QuarantineEntry.digest_sent_at.is_(None),
                       QuarantinedMessage.expires_at > now))

    async def _add_new_recipients(self, now: datetime) -> None:
        """A claim row, due now, for every address with pending entries and no row."""
        missing = ~exists().where(QuarantineDigest.recipient == QuarantineEntry.recipient)
        async with self.db.session() as session:
            try:
                await session.execute(insert(QuarantineDigest).from_select(
                    ["recipient", "next_digest_at"],
                    self._pending(select(QuarantineEntry.recipient,
                                         literal(now, UTCDateTime())), now)
                    .where(missing).distinct()))
                await session.commit()
            except IntegrityError:  # another node added them first
                await session.rollback()

    async def _claim(self, now: datetime) -> list[str]:
        """Take up to BATCH due addresses with pending entries: each moved to its next
        digest time, if still due."""
        table = QuarantineDigest
        pending = self._pending(select(QuarantineEntry.id), now).where(
            QuarantineEntry.recipient == table.recipient)
        async with self.db.session() as session:
            due = list(await session.scalars(
                select(table.recipient).where(table.next_digest_at <= now,
                                              pending.exists())
                .order_by(table.next_digest_at, table.recipient).limit(BATCH)))
            claimed = []
            for recipient in due:
                moved = await session.execute(
                    update(table).where(table.recipient == recipient,
                                        table.next_digest_at <= now)
                    .values(next_digest_at=now + self.interval))
                await session.commit()
                if moved.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append(recipient)
        return claimed

    async def _unclaim(self, recipient: str, now: datetime) -> None:
        """The digest could not be sent: due again at the next tick."""
        try:
            async with self.db.session() as session, session.begin():
                await session.execute(update(QuarantineDigest).where(
                    QuarantineDigest.recipient == recipient).values(next_digest_at=now))
        except Exception:
            log.exception("could not put back the digest claim of %s", recipient)

    async def _send(self, recipient: str, now: datetime) -> bool:
        """Queue ``recipient``'s digest and mark its entries listed; False if none."""
        async with self.db.session() as session:
            rows = (await session.execute(
                self._pending(select(QuarantineEntry, QuarantinedMessage), now)
                .where(QuarantineEntry.recipient == recipient)
                .order_by(QuarantineEntry.created_at.desc(), QuarantineEntry.id.desc()))).all()
            entries = [QuarantineView.of(entry, message) for entry, message in rows]
        if not entries:
            return False
        if self._secret is None:
            self._secret = link_secret(self.settings)
        base = f"{self.settings.web_url}/quarantine/release?t="
        items = [DigestItem(e, "" if is_virus_reason(e.reason) else base + quote(release_token(
            self._secret, e.id, link_expiry(e.expires_at, now)))) for e in entries[:MAX_LISTED]]
        data = build_digest(
            sender=self.settings.notice_sender, recipient=recipient, items=items,
            omitted=len(entries) - len(items), now=now, node=self.settings.node_name,
            retention_days=self.settings.quarantine_retention_days)
        await self.spool.enqueue(
            sender="", recipients=[NewRecipient(recipient)], data=data, origin="notice")
        async with self.db.session() as session, session.begin():
            await session.execute(update(QuarantineEntry).where(
                QuarantineEntry.id.in_([e.id for e in entries]),
                QuarantineEntry.digest_sent_at.is_(None)).values(digest_sent_at=now))
        log.info("quarantine digest of %d message(s) sent to %s", len(entries), recipient)
        return True


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def build_digest(*, sender: str, recipient: str, items: Sequence[DigestItem], omitted: int,
                 now: datetime, node: str, retention_days: int) -> bytes:
    """The digest mail to ``recipient`` listing ``items`` (and counting ``omitted`` more):
    RFC 5322 bytes, ``Auto-Submitted: auto-generated`` so responders stay quiet."""
    count = len(items) + omitted
    plural = "" if count == 1 else "s"
    message = EmailMessage(policy=SMTP)
    message["From"] = f"mailward quarantine <{sender}>"
    message["To"] = recipient
    message["Subject"] = f"Quarantine: {count} new message{plural} held for {recipient}"
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid("quarantine-digest", domain=node)
    message["Auto-Submitted"] = "auto-generated"
    lines = [
        f"{count} new message{plural} to {recipient} {'was' if count == 1 else 'were'} "
        "held in the quarantine as probable spam.",
        f"Held mail is kept for {retention_days} days, then deleted.",
        "To receive one of them after all, open its release link and press Release.",
        "",
    ]
    for number, item in enumerate(items, 1):
        entry = item.entry
        lines += [
            f"{number}. From:     {entry.from_header or entry.sender or '<>'}",
            f"   Subject:  {entry.subject or '(no subject)'}",
            f"   Score:    {entry.score:.1f} ({entry.reason or 'spam'})",
            f"   Received: {_when(entry.received_at)}; deleted after {_when(entry.expires_at)}",
            f"   Release:  {item.link}" if item.link else
            "   Release:  held for a virus: only your administrator can release it",
            "",
        ]
    if omitted:
        lines += [f"{omitted} older message{'' if omitted == 1 else 's'} not listed here "
                  "can be released in the control panel.", ""]
    lines += [
        f"A release link works once and expires after {LINK_DAYS} days or when the message "
        "is deleted, whichever is first.",
        "Do not forward this mail: anyone with a link can release that message.",
    ]
    text = "\n".join(lines) + "\n"
    # unwrapped, so the links stay whole for every reader (lines stay far below 998)
    message.set_content(text, cte="7bit" if text.isascii() else "8bit")
    return message.as_bytes()
