"""Writing mail: ``/mail/compose`` (new, reply, reply all, forward, forward as attachment,
reopen a draft), sending with an undo window, sending later, saving drafts (by hand, by
the page's autosave and with each XHR upload), and ``/mail/outbox``: the mail still held
(the undo window or a later sending time), each with a cancel that puts it back into
Drafts. Every error shows the form again with what was typed (uploads kept in the draft).

HTML written in the editor is sanitised here (``webmail.sanitize``, images blocked)
before it reaches the outbox."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from litestar import Request, Response, get, post
from litestar.datastructures import FormMultiDict, UploadFile
from litestar.exceptions import ValidationException
from litestar.params import FromQuery
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from mailward.config import Settings
from mailward.core.errors import Conflict, NotFound, ServiceError
from mailward.store import StoreError
from mailward.web.context import context_of
from mailward.web.webmail.common import (
    MAIL_GUARD,
    back,
    flash,
    mail_page,
    mailbox_of,
    safe_target,
    webmail_of,
)
from mailward.webmail.compose import ComposeForm, Upload
from mailward.webmail.outbox import HeldMail
from mailward.webmail.sanitize import sanitize_html

__all__ = ["HANDLERS", "UNDO_KEY", "max_upload"]

MODES = ("new", "reply", "replyall", "forward", "forward-attach", "draft")
FORM_OVERHEAD = 1024 * 1024  # the text fields of a compose form, beside its files
DEFAULT_UPLOAD = 25 * 1024 * 1024
# The static body limit of the upload routes: the default upload allowance plus the form.
# A smaller ``webmail_max_upload_bytes`` is enforced on the files themselves.
MAX_COMPOSE_BODY = DEFAULT_UPLOAD + FORM_OVERHEAD
MAX_FIELDS = 4 * FORM_OVERHEAD  # autosave: the text fields only (an HTML body may be long)
UNDO_KEY = "mail_undo"  # session: the last sent mail's queue id and the end of its window
_SPLIT = re.compile(r"\s+")


def max_upload(settings: Settings) -> int:
    """The attachments one message may carry in total (bytes)."""
    return settings.webmail_max_upload_bytes


def _text(form: FormMultiDict, name: str, limit: int = 100_000) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def _int(value: Any) -> int | None:
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _body_of(document: str) -> str:
    """The inside of ``<body>`` of a sanitised document (the editor's HTML again)."""
    found = re.search(r"<body[^>]*>(.*)</body>", document, re.S | re.I)
    return found.group(1) if found else document


def clean_html(html: str) -> str | None:
    """The editor's HTML made safe (no scripts, no remote images); None when empty."""
    if not html.strip():
        return None
    safe = sanitize_html(html, allow_images=False, image_url=lambda _url: "",
                         cid_url=lambda _cid: None)
    return _body_of(safe.html)


async def _uploads(form: FormMultiDict, limit: int) -> list[Upload]:
    files: list[Upload] = []
    total = 0
    for value in form.getall("files", []):
        if not isinstance(value, UploadFile) or not value.filename:
            continue
        data = await value.read()
        total += len(data)
        if total > limit:
            raise ValidationException(
                f"the attachments are too large (at most {limit // (1024 * 1024)} MiB)")
        name = value.filename.replace("\\", "/").rsplit("/", 1)[-1][:200] or "attachment"
        files.append(Upload(name, value.content_type or "application/octet-stream", data))
    return files


async def _form_of(request: Request[Any, Any, Any], mailbox: str,
                   form: FormMultiDict) -> tuple[ComposeForm, list[str]]:
    """The compose form as posted, and the attachment parts to drop from the draft.
    The identity must be one of the mailbox's (else the default one); the attachments
    kept are the stored draft's (the outbox reads them), never named by the form."""
    webmail = webmail_of(request)
    identities = await webmail.identities.list(mailbox)
    chosen = _int(form.get("identity"))
    identity = next((i for i in identities if i.id == chosen), None)
    if identity is None:
        identity = await webmail.identities.default(mailbox)
    draft_uid = _int(form.get("draft_uid"))
    drop = [str(p) for p in form.getall("drop", []) if isinstance(p, str)]
    forward = _ref(form, "fwd")
    mode = _text(form, "mode", 20)
    html = _text(form, "html", 2_000_000) if form.get("html_mode") == "1" else ""
    composed = ComposeForm(
        sender=identity.address, to=_text(form, "to", 20_000), cc=_text(form, "cc", 20_000),
        bcc=_text(form, "bcc", 20_000), subject=_text(form, "subject", 2000),
        text=_text(form, "body", 2_000_000), html=clean_html(html),
        identity_id=identity.id or None,
        in_reply_to=_text(form, "in_reply_to", 1000) or None,
        references=[r for r in _SPLIT.split(_text(form, "references", 20_000)) if r][:100],
        forward=forward, attachments=[], draft_uid=draft_uid,
        mode=mode if mode in MODES and mode != "draft" else "new", source=_ref(form, "src"))
    return composed, drop


def _ref(form: FormMultiDict, prefix: str) -> tuple[str, int] | None:
    """A message named by the hidden fields ``<prefix>_f`` and ``<prefix>_uid``."""
    folder, uid = _text(form, f"{prefix}_f", 1000), _int(form.get(f"{prefix}_uid"))
    return (folder, uid) if folder and uid is not None else None


def _send_at(form: FormMultiDict) -> datetime | None:
    """The "send later" time: ``send_at`` (a datetime-local value) in the browser's zone
    (``tz``: minutes east of UTC, set by compose.js; UTC without it)."""
    value = _text(form, "send_at", 40)
    if not value:
        raise ValidationException("choose when to send it")
    try:
        local = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationException("the sending time is not a date and time") from None
    offset = _int(str(form.get("tz") or "").lstrip("-")) or 0
    if str(form.get("tz") or "").startswith("-"):
        offset = -offset
    if local.tzinfo is None:
        local = local.replace(tzinfo=UTC) - timedelta(minutes=offset)
    return local.astimezone(UTC)


async def _page(request: Request[Any, Any, Any], mailbox: str, form: ComposeForm, *,
                status: int = 200, error: str | None = None, back_to: str = "",
                send_at: str = "") -> Template:
    webmail = webmail_of(request)
    if form.draft_uid is not None and not form.attachments:
        form = await _with_attachments(request, mailbox, form)
    if form.html:
        form = replace(form, html=clean_html(form.html))
    identities = await webmail.identities.list(mailbox)
    default = await webmail.identities.default(mailbox)
    if not identities:
        identities = [default]
    return await mail_page(
        request, "mail/compose.html", status=status, form=form, identities=identities,
        selected=form.identity_id or default.id, error=error, back=back_to,
        send_at=send_at, max_upload=max_upload(context_of(request).settings))


@get("/mail/compose", include_in_schema=False, guards=[MAIL_GUARD])
async def compose(request: Request[Any, Any, Any], mode: FromQuery[str] = "new",
                  f: FromQuery[str | None] = None, uid: FromQuery[int | None] = None,
                  to: FromQuery[str | None] = None) -> Template:
    """A new message, or one answering/forwarding ``f``/``uid``, or the draft ``uid``."""
    if mode not in MODES:
        raise ValidationException("unknown compose mode")
    mailbox = mailbox_of(request)
    webmail = webmail_of(request)
    if mode != "new" and (f is None or uid is None):
        raise ValidationException("which message?")
    form = await webmail.outbox.compose(mailbox, mode, f, uid)
    if mode == "new" and to:
        form = replace(form, to=to[:2000])  # mailto-style links: /mail/compose?to=...
    back_to = f"/mail/box?f={quote(f, safe='')}" if f and mode != "draft" else ""
    return await _page(request, mailbox, form, back_to=back_to)


async def _with_attachments(request: Request[Any, Any, Any], mailbox: str,
                            form: ComposeForm) -> ComposeForm:
    """The form with the attachments of its stored draft (none when it is gone)."""
    webmail = webmail_of(request)
    assert form.draft_uid is not None
    try:
        drafts = await webmail.mailboxes.special(mailbox, "drafts")
        stored = await webmail.outbox.compose(mailbox, "draft", drafts, form.draft_uid)
    except (NotFound, StoreError):
        return replace(form, draft_uid=None)
    return replace(form, attachments=stored.attachments)


def _sent_to(request: Request[Any, Any, Any], form: FormMultiDict) -> str:
    return safe_target(_text(form, "back", 2000) or None, "/mail/box?f=INBOX")


async def _keep(request: Request[Any, Any, Any], mailbox: str, form: ComposeForm,
                uploads: list[Any], drop: list[str]) -> ComposeForm:
    """After a refused send: the message (with its new uploads) saved as a draft, so
    nothing typed or attached is lost; the form as it is now."""
    outbox = webmail_of(request).outbox
    try:
        uid = await outbox.save_draft(mailbox, form, uploads, drop)
    except (ServiceError, StoreError):
        return form
    return await _with_attachments(request, mailbox, replace(form, draft_uid=uid,
                                                             attachments=[]))


def _remember_undo(request: Request[Any, Any, Any], held: HeldMail) -> None:
    request.session[UNDO_KEY] = {"queue_id": held.queue_id,
                                 "until": held.release_at.astimezone(UTC).isoformat()}


@post("/mail/compose", include_in_schema=False, guards=[MAIL_GUARD],
      request_max_body_size=MAX_COMPOSE_BODY)
async def compose_post(request: Request[Any, Any, Any]) -> Template | Redirect:
    """``submit``: send (held for the undo window), later (at ``send_at``) or draft."""
    mailbox = mailbox_of(request)
    webmail = webmail_of(request)
    data = await request.form()
    submit = _text(data, "submit", 10) or "send"
    form, drop = await _form_of(request, mailbox, data)
    uploads: list[Upload] = []
    try:
        uploads = await _uploads(data, max_upload(context_of(request).settings))
        if submit == "draft":
            uid = await webmail.outbox.save_draft(mailbox, form, uploads, drop)
            drafts = await webmail.mailboxes.special(mailbox, "drafts")
            flash(request, "Draft saved.")
            return Redirect(f"/mail/compose?mode=draft&f={quote(drafts, safe='')}&uid={uid}",
                            status_code=HTTP_303_SEE_OTHER)
        if drop and form.draft_uid is not None:  # removed attachments go before sending
            form = replace(form, draft_uid=await webmail.outbox.save_draft(
                mailbox, form, [], drop))
        send_at = _send_at(data) if submit == "later" else None
        prefs = await webmail.prefs.get(mailbox)
        held = await webmail.outbox.send(mailbox, form, uploads, send_at=send_at,
                                         undo_seconds=prefs.undo_seconds)
    except (ServiceError, StoreError, ValidationException) as exc:
        reason = exc.detail if isinstance(exc, ValidationException) else str(exc)
        kept = await _keep(request, mailbox, form, uploads, drop)
        return await _page(request, mailbox, kept, status=400, error=reason or "not sent",
                           back_to=_text(data, "back", 2000),
                           send_at=_text(data, "send_at", 40))
    if not held.undo:
        flash(request, f"Scheduled: it goes out at {held.release_at:%Y-%m-%d %H:%M} UTC. "
                       "Cancel it in the Outbox before then.")
        return Redirect("/mail/outbox", status_code=HTTP_303_SEE_OTHER)
    _remember_undo(request, held)
    flash(request, "Sent.", "undo")
    return Redirect(_sent_to(request, data), status_code=HTTP_303_SEE_OTHER)


@post("/mail/compose/autosave", include_in_schema=False, guards=[MAIL_GUARD],
      request_max_body_size=MAX_FIELDS)
async def autosave(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """The page's autosave (the form without its files): ``{"draft_uid": n}``."""
    mailbox = mailbox_of(request)
    data = await request.form()
    form, drop = await _form_of(request, mailbox, data)
    try:
        uid = await webmail_of(request).outbox.save_draft(mailbox, form, [], drop)
    except (ServiceError, StoreError) as exc:
        return Response({"error": str(exc) or "not saved"}, status_code=400)
    return Response({"draft_uid": uid}, status_code=200)


@post("/mail/compose/upload", include_in_schema=False, guards=[MAIL_GUARD],
      request_max_body_size=MAX_COMPOSE_BODY)
async def upload(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """XHR upload: the form and its new files saved as the draft;
    ``{"draft_uid": n, "attachments": [{"part", "filename", "content_type", "size"}]}``."""
    mailbox = mailbox_of(request)
    webmail = webmail_of(request)
    data = await request.form()
    form, drop = await _form_of(request, mailbox, data)
    try:
        uploads = await _uploads(data, max_upload(context_of(request).settings))
        uid = await webmail.outbox.save_draft(mailbox, form, uploads, drop)
        drafts = await webmail.mailboxes.special(mailbox, "drafts")
        saved = await webmail.outbox.compose(mailbox, "draft", drafts, uid)
    except (ServiceError, StoreError, ValidationException) as exc:
        reason = exc.detail if isinstance(exc, ValidationException) else str(exc)
        return Response({"error": reason or "not saved"}, status_code=400)
    return Response({"draft_uid": uid, "attachments": [
        {"part": a.part, "filename": a.filename, "content_type": a.content_type,
         "size": a.size} for a in saved.attachments if not a.inline]}, status_code=200)


@get("/mail/outbox", include_in_schema=False, guards=[MAIL_GUARD])
async def outbox(request: Request[Any, Any, Any]) -> Template:
    """The mailbox's mail still held: in its undo window or waiting for its time."""
    mailbox = mailbox_of(request)
    held = await webmail_of(request).outbox.held(mailbox)
    return await mail_page(request, "mail/outbox.html", held=held,
                           now=datetime.now(UTC))


@post("/mail/outbox/undo", include_in_schema=False, guards=[MAIL_GUARD],
      request_max_body_size=16 * 1024)
async def undo(request: Request[Any, Any, Any]) -> Redirect:
    """Cancel held mail (undo send, or a "send later" message): back into Drafts and
    opened there; "too late" once it has left."""
    mailbox = mailbox_of(request)
    webmail = webmail_of(request)
    data = await request.form()
    queue_id = _text(data, "queue_id", 200)
    if not queue_id:
        raise ValidationException("which message?")
    request.session.pop(UNDO_KEY, None)
    try:
        uid = await webmail.outbox.undo(mailbox, queue_id)  # NotFound: not theirs (404)
    except Conflict:
        flash(request, "Too late: the message has already been sent.", "error")
        return back(request, "/mail/outbox", target=_text(data, "back", 2000) or None)
    drafts = await webmail.mailboxes.special(mailbox, "drafts")
    flash(request, "Sending cancelled: the message is back in Drafts.")
    return Redirect(f"/mail/compose?mode=draft&f={quote(drafts, safe='')}&uid={uid}",
                    status_code=HTTP_303_SEE_OTHER)


HANDLERS = [compose, compose_post, autosave, upload, outbox, undo]
