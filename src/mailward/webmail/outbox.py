"""Composing and sending from webmail: drafts, send (with undo send and send later),
the mail held back, and each recipient's delivery trace.

Sending takes the submission path (:meth:`SubmissionIntake.submit`): the same sender
rules (``MailLogin.may_send_as`` for the envelope sender, From: and Sender:), header
checks, DKIM signing and spool as SMTP submission, with queue origin ``webmail``. Held
mail is held *in the queue*: it is spooled at once, durable, its recipients' rows not due
before the end of the undo window (or the send-later time), so any delivery worker takes
it then by itself (its idle wait already looks at the earliest due row). Undo deletes the
message only while no worker has claimed it (:meth:`Spool.cancel_unclaimed`).

``webmail_outbox`` names each sent message's mailbox (every query here is scoped by it),
its Message-ID and its Sent copy; the delivery worker writes how each recipient finished
into ``webmail_deliveries`` (finished rows leave the queue); deferred recipients are read
live from their queue rows.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

from sqlalchemy import delete, exists, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailward.app import Services
from mailward.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from mailward.db import QueuedMessage, QueuedRecipient, QueueStatus
from mailward.db.models import WEBMAIL_ORIGIN, WebmailDelivery, WebmailOutbox, utcnow
from mailward.imap.listing import SPECIAL_USE
from mailward.imap.mailboxes import ensure_special_folders
from mailward.inbound.submission import SubmissionIntake, dkim_signer
from mailward.queue.spool import NewRecipient, new_queue_id
from mailward.store import DELETED, DRAFT, SEEN, MailStore, NoSuchFolder, NoSuchMessage
from mailward.store.interface import ANSWERED
from mailward.webmail.compose import (
    BUILD_POLICY,
    DRAFT_HEADER,
    Built,
    ComposeForm,
    Upload,
    attachment_parts,
    build,
    describe,
    draft_form,
    draft_state,
    format_addresses,
    forward_form,
    header,
    parse,
    reply_form,
    with_signature,
)
from mailward.webmail.identities import Identities
from mailward.webmail.prefs import Prefs

__all__ = ["ComposeForm", "HeldMail", "Outbox", "RecipientStatus", "Upload"]

FORWARDED = "$Forwarded"
MODES = ("new", "reply", "replyall", "forward", "forward-attach", "draft")


@dataclass(frozen=True, slots=True)
class HeldMail:
    """Sent mail the queue still holds back: ``undo`` for the undo window, False for
    send later."""

    queue_id: str
    subject: str
    recipients: list[str]
    release_at: datetime
    undo: bool


@dataclass(frozen=True, slots=True)
class RecipientStatus:
    """Where one recipient of a sent message stands, in plain words."""

    recipient: str
    state: str  # delivered | waiting | deferred | bounced | held
    words: str
    at: datetime | None


def _clock(when: datetime, now: datetime) -> str:
    when = when.astimezone(UTC)
    return when.strftime("%H:%M UTC" if when.date() == now.date() else "%d %b %Y %H:%M UTC")


def _reason(last_error: str | None) -> str:
    """A queue row's last error (``"4.7.1 451 4.7.1 try later (mx.example)"``) in words."""
    status, _, detail = (last_error or "").partition(" ")
    if detail.endswith(")") and " (" in detail:
        detail = detail.rsplit(" (", 1)[0]
    detail = detail or status or "no reason given"
    if detail[:3].isdigit():
        return f"the receiving server said {detail}"
    return detail


class Outbox:
    """Compose, drafts, send, undo, held mail and traces of one mailbox at a time."""

    def __init__(self, services: Services, store: MailStore) -> None:
        self.services = services
        self.settings = services.settings
        self.db = services.db
        self.store = store
        self.spool = services.spool
        self.intake = SubmissionIntake(services.mail_login, services.spool,
                                       dkim_signer(services.dkim), trace=services.trace)
        self.identities = Identities(services)
        self.prefs = Prefs(services.db, services.settings.webmail_undo_seconds)

    # -- folders and identities -----------------------------------------------------------

    async def _special(self, mailbox: str, name: str) -> str:
        """The special-use folder ``name`` ("Drafts", "Sent"), made if missing."""
        assert name in SPECIAL_USE
        try:
            await self.store.folder_status(mailbox, name)
        except NoSuchFolder:
            await ensure_special_folders(self.store, mailbox)
        return name

    async def _fetch(self, mailbox: str, folder: str | None, uid: int | None) -> bytes:
        if folder is None or uid is None:
            raise InvalidInput("which message? (folder and uid)")
        try:
            return await self.store.fetch(mailbox, folder, uid)
        except (NoSuchFolder, NoSuchMessage):
            raise NotFound("no such message") from None

    async def _sender(self, mailbox: str, form: ComposeForm) -> tuple[str, str | None, str]:
        """(From:, Reply-To or None, signature) of the form's identity, or its sender."""
        if form.identity_id is not None:
            for identity in await self.identities.list(mailbox):
                if identity.id == form.identity_id:
                    value = format_addresses([(identity.name, identity.address)])
                    return (value, identity.reply_to or None,
                            identity.signature_text or "")
            raise InvalidInput("that identity no longer exists")
        return form.sender.strip() or mailbox, None, ""

    async def _own(self, mailbox: str) -> set[str]:
        return {mailbox} | {i.address.lower() for i in await self.identities.list(mailbox)}

    # -- compose --------------------------------------------------------------------------

    async def compose(self, mailbox: str, mode: str, folder: str | None = None,
                      uid: int | None = None) -> ComposeForm:
        """A form to start from: new, a reply (to all), a forward (inline or attached),
        or a saved draft reopened (``folder`` = Drafts)."""
        if mode not in MODES:
            raise InvalidInput(f"mode must be one of {', '.join(MODES)}")
        if mode == "draft":
            return draft_form(await self._fetch(mailbox, folder, uid), uid or 0)
        identity = await self.identities.default(mailbox)
        sender = format_addresses([(identity.name, identity.address)])
        signature = identity.signature_text
        if mode == "new":
            return ComposeForm(sender=sender, text=with_signature("", signature),
                               identity_id=identity.id)
        original = await self._fetch(mailbox, folder, uid)
        assert folder is not None and uid is not None
        if mode in ("reply", "replyall"):
            form = reply_form(original, await self._own(mailbox), all_=mode == "replyall",
                              sender=sender, signature=signature, identity_id=identity.id)
            form.source = (folder, uid)
            return form
        form = forward_form(original, attach=mode == "forward-attach", sender=sender,
                            signature=signature, identity_id=identity.id,
                            source=(folder, uid))
        carried = [part for part in parse(original).iter_attachments()
                   if isinstance(part, EmailMessage)]
        if mode == "forward" and carried:  # the original's files go along: in a draft
            form.draft_uid = await self._store_draft(mailbox, form, kept=carried)
            drafts = await self._special(mailbox, "Drafts")
            form.attachments = draft_form(
                await self.store.fetch(mailbox, drafts, form.draft_uid),
                form.draft_uid).attachments
        return form

    # -- drafts ---------------------------------------------------------------------------

    async def _kept(self, mailbox: str, form: ComposeForm,
                    drop: list[str]) -> list[EmailMessage]:
        """The attachments of the form's previous draft, less ``drop``."""
        if form.draft_uid is None:
            return []
        drafts = await self._special(mailbox, "Drafts")
        try:
            previous = parse(await self.store.fetch(mailbox, drafts, form.draft_uid))
        except NoSuchMessage:
            return []
        return [part for section, part in attachment_parts(previous) if section not in drop]

    def _check_size(self, uploads: list[Upload], kept: list[EmailMessage]) -> None:
        total = sum(len(u.data) for u in uploads) + sum(describe("", p).size for p in kept)
        if total > self.settings.webmail_max_upload_bytes:
            limit = self.settings.webmail_max_upload_bytes // (1024 * 1024)
            raise InvalidInput(f"attachments are too large (at most {limit} MiB in all)")

    async def _build(self, mailbox: str, form: ComposeForm, uploads: list[Upload],
                     kept: list[EmailMessage], *, draft: bool) -> Built:
        self._check_size(uploads, kept)
        from_header, reply_to, _ = await self._sender(mailbox, form)
        forwarded = None
        if form.forward is not None and form.draft_uid is None:  # a draft already has it
            forwarded = await self._fetch(mailbox, *form.forward)
        return build(form, from_header=from_header, reply_to=reply_to,
                     host=self.settings.hosting_host,
                     attachments=[(u.filename, u.content_type, u.data) for u in uploads],
                     kept=kept, forwarded=forwarded, draft=draft)

    async def _store_draft(self, mailbox: str, form: ComposeForm, *,
                           uploads: list[Upload] | None = None,
                           kept: list[EmailMessage] | None = None) -> int:
        built = await self._build(mailbox, form, uploads or [], kept or [], draft=True)
        drafts = await self._special(mailbox, "Drafts")
        stored = await self.store.deliver(mailbox, built.with_bcc(), folder=drafts,
                                          flags=frozenset({DRAFT, SEEN}))
        return stored.uid

    async def _remove(self, mailbox: str, folder: str, uid: int) -> None:
        with contextlib.suppress(NoSuchMessage, NoSuchFolder):
            await self.store.set_flags(mailbox, folder, uid, {DELETED})
            await self.store.expunge(mailbox, folder, [uid])

    async def save_draft(self, mailbox: str, form: ComposeForm,
                         uploads: list[Upload] | None = None,
                         drop: list[str] | None = None) -> int:
        """Write the form as a new draft (``\\Draft \\Seen``) with the previous draft's
        attachments (less ``drop``) and ``uploads``; the previous draft is removed.
        Returns the new draft's uid (its attachments have new part numbers: reopen it)."""
        kept = await self._kept(mailbox, form, drop or [])
        uid = await self._store_draft(mailbox, form, uploads=uploads, kept=kept)
        if form.draft_uid is not None:
            await self._remove(mailbox, await self._special(mailbox, "Drafts"), form.draft_uid)
        return uid

    # -- sending --------------------------------------------------------------------------

    async def send(self, mailbox: str, form: ComposeForm, uploads: list[Upload] | None = None,
                   *, send_at: datetime | None = None,
                   undo_seconds: int | None = None) -> HeldMail:
        """Send the form through the submission path, held in the queue for the undo window
        (``undo_seconds``, default the mailbox's preference) or until ``send_at``; a copy
        (with Bcc) goes to Sent, the draft is removed, the original marked answered or
        forwarded. Forbidden/InvalidInput with the reason when it may not be sent."""
        now = utcnow()
        if send_at is not None:
            send_at = send_at if send_at.tzinfo else send_at.replace(tzinfo=UTC)
            if send_at > now + timedelta(days=self.settings.webmail_send_later_max_days):
                raise InvalidInput(f"send later works up to "
                                   f"{self.settings.webmail_send_later_max_days} days ahead")
            release, undo = max(send_at, now), False
        else:
            if undo_seconds is None:
                undo_seconds = (await self.prefs.get(mailbox)).undo_seconds
            release, undo = now + timedelta(seconds=max(0, min(undo_seconds, 60))), True
        kept = await self._kept(mailbox, form, [])
        built = await self._build(mailbox, form, uploads or [], kept, draft=False)
        if len(built.recipients) > self.settings.max_recipients:
            raise InvalidInput(f"too many recipients (at most {self.settings.max_recipients})")
        wire = built.to_send()
        if len(wire) > self.settings.max_message_size:
            raise InvalidInput("the message is too large to send")
        refused, who = await self.intake.refusal(mailbox, wire)
        if refused is not None:  # said in plain words; submit() checks again
            raise (Forbidden(f"you may not send as {who}") if refused.code == 553
                   else InvalidInput(refused.text))
        if not await self.services.mail_login.may_send_as(mailbox, built.from_address):
            raise Forbidden(f"you may not send as {built.from_address}")
        mark = await self._source_flag(mailbox, form)
        state = draft_state(form) + ("; flagged=1" if mark else "")
        sent = await self._special(mailbox, "Sent")
        copy = await self.store.deliver(mailbox, built.with_bcc(), folder=sent,
                                        flags=frozenset({SEEN}))
        queue_id = new_queue_id()
        subject = header(built.message, "subject")[:200]

        async def remember(session: AsyncSession) -> None:
            await session.execute(insert(WebmailOutbox).values(
                queue_id=queue_id, mailbox=mailbox, message_id=built.message_id,
                subject=subject, recipients=",".join(built.recipients), sent_folder=sent,
                sent_uid=copy.uid, release_at=release, undo=undo, draft_state=state,
                created_at=now))

        try:
            reply = await self.intake.submit(
                mailbox, built.from_address, [NewRecipient(r) for r in built.recipients],
                wire, origin=WEBMAIL_ORIGIN, not_before=release, queue_id=queue_id,
                also=remember)
        except BaseException:
            await self._remove(mailbox, sent, copy.uid)
            raise
        if not reply.ok:
            await self._remove(mailbox, sent, copy.uid)
            raise InvalidInput(reply.text)
        if form.draft_uid is not None:
            await self._remove(mailbox, await self._special(mailbox, "Drafts"), form.draft_uid)
        if mark is not None:
            await self._flag(mailbox, *mark, on=True)
        return HeldMail(queue_id, subject, built.recipients, release, undo)

    async def _source_flag(self, mailbox: str, form: ComposeForm
                           ) -> tuple[str, int, str] | None:
        """The original replied to (``\\Answered``) or forwarded (``$Forwarded``) and its
        flag, if the flag is not set yet (undo takes it off again)."""
        flag = {"reply": ANSWERED, "replyall": ANSWERED, "forward": FORWARDED,
                "forward-attach": FORWARDED}.get(form.mode)
        source = form.source or form.forward
        if flag is None or source is None:
            return None
        with contextlib.suppress(NoSuchMessage, NoSuchFolder):
            flags = {m.uid: m.flags for m in await self.store.messages(mailbox, source[0])}
            if source[1] in flags and flag not in flags[source[1]]:
                return source[0], source[1], flag
        return None

    async def _flag(self, mailbox: str, folder: str, uid: int, flag: str, *, on: bool) -> None:
        with contextlib.suppress(NoSuchMessage, NoSuchFolder):
            flags = {m.uid: m.flags for m in await self.store.messages(mailbox, folder)}
            if uid in flags:
                await self.store.set_flags(mailbox, folder, uid, flags[uid] | {flag} if on
                                           else flags[uid] - {flag})

    # -- held mail ------------------------------------------------------------------------

    async def _row(self, mailbox: str, queue_id: str) -> WebmailOutbox:
        async with self.db.session() as session:
            row = await session.scalar(select(WebmailOutbox).where(
                WebmailOutbox.mailbox == mailbox,
                WebmailOutbox.queue_id == queue_id.strip().upper()))
        if row is None:
            raise NotFound("no such sent message")
        return row

    async def undo(self, mailbox: str, queue_id: str) -> int:
        """Cancel a message no worker has taken yet: it goes back to Drafts (its uid) and
        its Sent copy is removed; Conflict when it is already being sent."""
        row = await self._row(mailbox, queue_id)
        data: bytes | None = None
        if row.sent_folder and row.sent_uid:
            with contextlib.suppress(NoSuchMessage, NoSuchFolder):
                data = await self.store.fetch(mailbox, row.sent_folder, row.sent_uid)
        if data is None:  # the Sent copy was deleted: the queued bytes, unsigned
            async with self.db.session() as session:
                queued = await session.scalar(
                    select(QueuedMessage).where(QueuedMessage.queue_id == row.queue_id))
                if queued is not None:
                    with contextlib.suppress(OSError):
                        message = parse(await self.spool.read(queued))
                        del message["dkim-signature"]
                        data = message.as_bytes()

        async def forget(session: AsyncSession) -> None:
            await session.execute(delete(WebmailOutbox).where(WebmailOutbox.id == row.id))

        if not await self.spool.cancel_unclaimed(row.queue_id, forget, by=mailbox):
            raise Conflict("too late to undo: the message is already being sent")
        if row.sent_folder and row.sent_uid:
            await self._remove(mailbox, row.sent_folder, row.sent_uid)
        restored = parse(data or b"Subject: \r\n\r\n")
        state = dict(item.strip().partition("=")[::2]
                     for item in (row.draft_state or "").split(";") if "=" in item)
        del restored[DRAFT_HEADER]
        restored[DRAFT_HEADER] = "; ".join(f"{k}={v}" for k, v in state.items()
                                           if k != "flagged")
        drafts = await self._special(mailbox, "Drafts")
        stored = await self.store.deliver(mailbox, restored.as_bytes(policy=BUILD_POLICY),
                                          folder=drafts, flags=frozenset({DRAFT, SEEN}))
        flag = {"reply": ANSWERED, "replyall": ANSWERED}.get(state.get("mode", ""), FORWARDED)
        reopened = draft_form(restored.as_bytes(), stored.uid)
        if state.get("flagged") == "1" and reopened.source is not None:  # we set it
            await self._flag(mailbox, *reopened.source, flag, on=False)
        return stored.uid

    async def held(self, mailbox: str) -> list[HeldMail]:
        """The mailbox's sent mail still held back (undo window or send later)."""
        async with self.db.session() as session:
            rows = list(await session.scalars(
                select(WebmailOutbox).where(
                    WebmailOutbox.mailbox == mailbox, WebmailOutbox.release_at > utcnow(),
                    exists().where(QueuedMessage.queue_id == WebmailOutbox.queue_id))
                .order_by(WebmailOutbox.release_at)))
        return [HeldMail(r.queue_id, r.subject, r.recipients.split(","), r.release_at, r.undo)
                for r in rows]

    # -- delivery trace -------------------------------------------------------------------

    async def trace(self, mailbox: str, folder: str, uid: int) -> list[RecipientStatus] | None:
        """Per recipient of a message this mailbox sent from webmail, where it stands;
        None for any other message."""
        try:
            data = await self.store.fetch(mailbox, folder, uid)
        except (NoSuchFolder, NoSuchMessage):
            raise NotFound("no such message") from None
        message_id = header(parse(data), "message-id")
        if not message_id:
            return None
        now = utcnow()
        async with self.db.session() as session:
            row = await session.scalar(select(WebmailOutbox).where(
                WebmailOutbox.mailbox == mailbox, WebmailOutbox.message_id == message_id)
                .order_by(WebmailOutbox.id.desc()).limit(1))
            if row is None:
                return None
            finished = {d.recipient: d for d in await session.scalars(
                select(WebmailDelivery).where(WebmailDelivery.queue_id == row.queue_id)
                .order_by(WebmailDelivery.id))}
            live = {r.recipient: r for r in await session.scalars(
                select(QueuedRecipient).join(QueuedRecipient.message)
                .where(QueuedMessage.queue_id == row.queue_id))}
        return [self._status(r, finished.get(r), live.get(r), row, now)
                for r in row.recipients.split(",") if r]

    @staticmethod
    def _status(recipient: str, done: WebmailDelivery | None, queued: QueuedRecipient | None,
                row: WebmailOutbox, now: datetime) -> RecipientStatus:
        if done is not None:
            if done.result == "bounced":
                return RecipientStatus(recipient, "bounced", f"Bounced: {done.detail}", done.at)
            if done.remote_mta:
                words = f"Delivered to {done.remote_mta}: {done.detail}"
            else:
                words = "Delivered to the recipient's mailbox here"
            return RecipientStatus(recipient, "delivered", words, done.at)
        if queued is None:
            return RecipientStatus(recipient, "waiting",
                                   "No longer queued, and no delivery report for it", None)
        if queued.status is QueueStatus.DEFERRED:
            return RecipientStatus(
                recipient, "deferred",
                f"Not delivered yet: {_reason(queued.last_error)}; next try at "
                f"{_clock(queued.next_attempt_at, now)}", queued.last_attempt_at)
        if queued.status is QueueStatus.QUEUED and queued.next_attempt_at > now:
            words = ("Waiting to be sent (you can still undo)" if row.undo else
                     f"Scheduled to be sent at {_clock(queued.next_attempt_at, now)} "
                     "(you can still cancel)")
            return RecipientStatus(recipient, "held", words, queued.next_attempt_at)
        words = ("Being sent now" if queued.status is QueueStatus.ACTIVE
                 else "Waiting to be sent")
        return RecipientStatus(recipient, "waiting", words, None)

