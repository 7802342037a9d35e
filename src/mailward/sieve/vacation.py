"""Vacation replies (RFC 5230) that behave (RFC 3834).

:meth:`Vacations.reply` decides whether a ``vacation`` action answers this message and,
if so, records it and returns the reply to queue (local delivery queues it with the null
envelope sender, origin ``vacation``). No reply goes to: the null sender, robot senders
(``MAILER-DAEMON``, ``owner-*``, ``*-request``, ...), messages with ``Auto-Submitted``
other than ``no``, list or bulk mail (``List-*``, ``Precedence: bulk/list/junk``), our own
addresses (the mailbox's and ``:addresses``), messages not addressed to the mailbox in
To/Cc/Bcc (or to one of ``:addresses``); and a sender answered with the same ``:handle``
within ``:days`` (``:seconds``) gets nothing again (``sieve_vacation_sent``). Start and
end dates are the script's: ``currentdate`` tests (``date`` extension) around the action.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.utils import format_datetime, formataddr, make_msgid, parseaddr

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from mailward.db import Database
from mailward.db.models import SieveVacationSent
from mailward.sieve.interpreter import VacationAction
from mailward.sieve.message import SieveMessage

__all__ = ["Signer", "Vacations", "why_not"]

Signer = Callable[[bytes, str], Awaitable[bytes]]  # (message, From: domain) → signed

_ROBOT_LOCALS = ("mailer-daemon", "postmaster", "listserv", "majordomo", "mailman",
                 "noreply", "no-reply", "do-not-reply", "donotreply")
_LIST_FIELDS = ("List-Id", "List-Help", "List-Unsubscribe", "List-Subscribe", "List-Post",
                "List-Owner", "List-Archive")


def why_not(action: VacationAction, *, mailbox: str, sender: str,
            message: SieveMessage) -> str | None:
    """Why this message gets no vacation reply (``None``: it may get one)."""
    sender = sender.strip().lower()
    if not sender or "@" not in sender:
        return "null sender"
    local = sender.rpartition("@")[0]
    if local in _ROBOT_LOCALS or local.startswith("owner-") or local.endswith(
            ("-request", "-owner", "-bounces")):
        return f"robot sender {sender}"
    ours = {mailbox.lower(), *(a.strip().lower() for a in action.addresses)}
    if action.from_:
        ours.add(parseaddr(action.from_)[1].lower())
    if sender in ours:
        return "our own address"
    auto = [v.strip().lower() for v in message.headers("Auto-Submitted")]
    if any(v.split(";")[0].strip() != "no" for v in auto):
        return "Auto-Submitted"
    if any(message.has(name) for name in _LIST_FIELDS):
        return "list mail"
    if any(v.strip().lower() in ("bulk", "list", "junk")
           for v in message.headers("Precedence")):
        return "bulk mail"
    named = {a.lower() for name in ("To", "Cc", "Bcc", "Resent-To", "Resent-Cc")
             for a in message.addresses(name)}
    if not named & ours:
        return "not addressed to the mailbox"
    return None


def _subject(action: VacationAction, message: SieveMessage) -> str:
    if action.subject:
        return action.subject
    original = (message.headers("Subject") or [""])[0].strip()
    return f"Auto: {original}" if original else "Auto: (no subject)"


def compose(action: VacationAction, *, mailbox: str, sender: str,
            message: SieveMessage, now: datetime) -> bytes:
    """The reply (RFC 3834 §3): From the mailbox, In-Reply-To/References the original,
    ``Auto-Submitted: auto-replied``."""
    author = action.from_ or mailbox
    domain = parseaddr(author)[1].rpartition("@")[2] or mailbox.rpartition("@")[2]
    fields = [
        ("From", author if "<" in author else formataddr(("", author))),
        ("To", sender),
        ("Subject", Header(_subject(action, message), "utf-8").encode()),
        ("Date", format_datetime(now)),
        ("Message-ID", make_msgid(domain=domain)),
        ("Auto-Submitted", "auto-replied (vacation)"),
        ("Precedence", "bulk"),
    ]
    original_id = (message.raw_headers("Message-ID") or [""])[0].strip()
    if original_id:
        refs = " ".join(r.strip() for r in message.raw_headers("References"))
        fields.append(("In-Reply-To", original_id))
        fields.append(("References", f"{refs} {original_id}".strip()))
    fields.append(("MIME-Version", "1.0"))
    head = "".join(f"{name}: {value}\r\n" for name, value in fields)
    if action.mime:  # the reason is a MIME entity: its own header fields and body
        body = action.reason.replace("\r\n", "\n").replace("\n", "\r\n")
        return (head + body).encode("utf-8")
    text = action.reason.replace("\r\n", "\n").replace("\n", "\r\n")
    if not text.endswith("\r\n"):
        text += "\r\n"
    return (head + "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n" + text).encode("utf-8")


class Vacations:
    """Decides, records and composes vacation replies; ``signer`` DKIM-signs them as
    submission mail is signed (``None``: unsigned)."""

    def __init__(self, db: Database, signer: Signer | None = None) -> None:
        self.db = db
        self.signer = signer

    async def reply(self, action: VacationAction, *, mailbox: str, sender: str,
                    message: SieveMessage, now: datetime | None = None
                    ) -> tuple[bytes | None, str]:
        """The reply to queue to ``sender`` (``None`` if none) and why (for the log)."""
        reason = why_not(action, mailbox=mailbox, sender=sender, message=message)
        if reason is not None:
            return None, f"no vacation reply: {reason}"
        now = now or datetime.now(UTC)
        sender = sender.strip().lower()
        async with self.db.session() as session:
            row = await session.scalar(select(SieveVacationSent).where(
                SieveVacationSent.mailbox == mailbox, SieveVacationSent.sender == sender,
                SieveVacationSent.handle == action.handle).with_for_update())
            if row is not None and row.sent_at > now - timedelta(seconds=action.seconds):
                return None, f"no vacation reply: {sender} was answered on {row.sent_at}"
            if row is None:
                session.add(SieveVacationSent(mailbox=mailbox, sender=sender,
                                              handle=action.handle, sent_at=now))
            else:
                row.sent_at = now
            try:
                await session.commit()
            except IntegrityError:  # a concurrent delivery answered the same sender
                return None, f"no vacation reply: {sender} is being answered already"
        data = compose(action, mailbox=mailbox, sender=sender, message=message, now=now)
        if self.signer is not None:
            author = parseaddr(action.from_ or mailbox)[1] or mailbox
            data = await self.signer(data, author.rpartition("@")[2])
        return data, f"vacation reply to {sender}"


