"""``/mail/quarantine``: the mail the spam filter held for the logged-in mailbox, as a
folder-like list; an entry's page says why (score, each finding with its points, the
SPF/DKIM/DMARC results) with a plain-text preview, and releases or deletes it. Another
mailbox's entry is 404 (``MailFiltering`` looks entries up within the mailbox only)."""

from __future__ import annotations

import asyncio
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from litestar import Request, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from mailward.core.errors import ServiceError
from mailward.web.webmail.common import MAIL_GUARD, back, flash, mail_page, mailbox_of, webmail_of
from mailward.webmail.sanitize import html_to_text

__all__ = ["HANDLERS", "plain_preview"]

MAX_FORM = 16 * 1024
PREVIEW_CHARS = 20_000  # the preview shows at most this much text
PARSE_BYTES = 2 * 1024 * 1024  # and parses at most this much of the message
ACTIONS = {"release", "release-allow", "delete"}


def plain_preview(data: bytes) -> str:
    """The message's text as plain text (its text part, else its HTML part's text; never
    markup), at most ``PREVIEW_CHARS``; a malformed message previews as what it can."""
    try:
        message = BytesParser(policy=policy.default).parsebytes(data[:PARSE_BYTES])
        assert isinstance(message, EmailMessage)
        part = message.get_body(preferencelist=("plain", "html"))
        if part is None:
            return ""
        content = part.get_content()
        if not isinstance(content, str):
            return ""
        text = html_to_text(content) if part.get_content_subtype() == "html" else content
    except Exception:  # malformed MIME or charset: stdlib email can raise on anything
        return "(the message could not be read as text)"
    return text[:PREVIEW_CHARS]


@get("/mail/quarantine", include_in_schema=False, guards=[MAIL_GUARD])
async def held_list(request: Request[Any, Any, Any],
                    page: FromQuery[int] = 1) -> Template:
    mailbox = mailbox_of(request)
    held = await webmail_of(request).filtering.held(mailbox, page=max(page, 1))
    return await mail_page(request, "mail/quarantine.html", held=held)


@get("/mail/quarantine/{entry:int}", include_in_schema=False, guards=[MAIL_GUARD])
async def held_entry(request: Request[Any, Any, Any], entry: FromPath[int]) -> Template:
    mailbox = mailbox_of(request)
    filtering = webmail_of(request).filtering
    detail = await filtering.held_detail(mailbox, entry)
    content = await filtering.held_content(mailbox, entry)
    preview = await asyncio.to_thread(plain_preview, content)
    return await mail_page(request, "mail/quarantine_entry.html", detail=detail,
                           entry=detail.entry, auth=detail.auth, preview=preview)


@post("/mail/quarantine/{entry:int}/{action:str}", include_in_schema=False,
      guards=[MAIL_GUARD], request_max_body_size=MAX_FORM)
async def held_action(request: Request[Any, Any, Any], entry: FromPath[int],
                      action: FromPath[str]) -> Redirect:
    """Release (optionally allowing the sender from now on) or delete a held message."""
    if action not in ACTIONS:
        raise NotFoundException("no such page")
    mailbox = mailbox_of(request)
    filtering = webmail_of(request).filtering
    detail = await filtering.held_detail(mailbox, entry)  # 404 unless the mailbox's own
    subject = detail.entry.subject or "(no subject)"
    try:
        if action == "delete":
            await filtering.delete_held(mailbox, entry)
            flash(request, f"Deleted the held message {subject!r}.")
        else:
            await filtering.release(mailbox, entry, always_allow=action == "release-allow")
            allowed = (f" Mail from {detail.entry.sender} is always accepted from now on."
                       if action == "release-allow" and detail.entry.sender else "")
            flash(request, f"Released {subject!r}: it is on its way to your inbox.{allowed}")
    except ServiceError as exc:
        flash(request, str(exc), "error")
        return back(request, f"/mail/quarantine/{entry}")
    return back(request, "/mail/quarantine")


HANDLERS = [held_list, held_entry, held_action]
