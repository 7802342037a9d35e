"""Reading a message: the read view (headers, actions, text, the HTML body in a
sandboxed iframe, attachments, the conversation, the delivery trace of sent mail), the
iframe's document, attachment and source downloads, the image proxy and the consent to
remote images.

The HTML body is served by its own route with its own Content-Security-Policy (no
script, nothing remote but through the image proxy, framed only by our pages); the iframe
is sandboxed without ``allow-scripts`` and ``allow-same-origin``. A sandboxed document
has an opaque origin, so the browser does not send our SameSite cookie with its image
requests: its inline (``cid:``) images come from ``/mail/msg/inline`` by a signed,
short-lived URL, and its proxied remote images (``/mail/img``, signed by the image proxy)
carry a short-lived grant (``e``, ``t``) that only a logged-in body request hands out.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from litestar import Request, Response, get, post
from litestar.datastructures import ResponseHeader
from litestar.exceptions import NotFoundException
from litestar.params import FromQuery
from litestar.response import Redirect, Template
from markupsafe import Markup, escape

from mailward.config.secret import web_secret
from mailward.web.context import context_of
from mailward.web.sessions import READ_ONLY
from mailward.web.webmail.common import (
    Form,
    MailLoginRequired,
    back,
    flash,
    mail_page,
    mailbox_of,
    require_mailbox,
    webmail_of,
)
from mailward.webmail import Webmail
from mailward.webmail.images import ImageRefused

__all__ = [
    "BODY_CSP",
    "DOWNLOAD_HEADERS",
    "HANDLERS",
    "PUBLIC_HANDLERS",
    "content_disposition",
    "linkify",
    "message_url",
]

BODY_CSP = ("default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
            "font-src 'none'; form-action 'none'; base-uri 'none'; "
            "sandbox allow-popups allow-popups-to-escape-sandbox; frame-ancestors 'self'")
DOWNLOAD_CSP = "default-src 'none'; sandbox"
DOWNLOAD_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": DOWNLOAD_CSP,
                    "Cache-Control": "private, no-store"}
IMAGES_KEY = "images_ok"  # messages ("folder\0uid") whose remote images were allowed
IMAGES_REMEMBERED = 50
INLINE_SECONDS = 3600  # how long a signed inline-part URL works
MAX_FORM = 16 * 1024
SEEN = "\\Seen"
FLAGGED = "\\Flagged"
STATE_WORDS = {"delivered": "Delivered", "waiting": "Waiting to be sent",
               "deferred": "Delayed, still trying", "bounced": "Could not be delivered",
               "held": "Not sent yet (you can still undo)"}

_PROXIED = re.compile(r"/mail/img\?u=[^&\"'\s<>()]*(&(?:amp;)?)s=[0-9a-f]{64}")
_URL = re.compile(r"\bhttps?://[^\s<>\"'`]+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}'\""


def message_url(folder: str, uid: int, **params: Any) -> str:
    return "/mail/msg?" + urlencode({"f": folder, "uid": uid, **params})


def linkify(text: str) -> Markup:
    """``text`` escaped for HTML, its http(s) URLs as links opening in a new tab without
    a referrer or an opener."""
    out: list[str] = []
    last = 0
    for match in _URL.finditer(text):
        url = match.group(0)
        trimmed = url.rstrip(_TRAILING)
        end = match.start() + len(trimmed)
        out.append(str(escape(text[last:match.start()])))
        out.append(f'<a href="{escape(trimmed)}" target="_blank" '
                   f'rel="noopener noreferrer nofollow">{escape(trimmed)}</a>')
        last = end
    out.append(str(escape(text[last:])))
    return Markup("".join(out))


def content_disposition(filename: str, disposition: str = "attachment") -> str:
    """RFC 6266: an ASCII fallback ``filename`` and the exact UTF-8 ``filename*``."""
    name = filename.replace("\r", " ").replace("\n", " ") or "attachment"
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\%' else "_" for c in name)
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _inline_signature(secret: str, mailbox: str, folder: str, uid: int, part: str,
                      expires: int) -> str:
    message = "\0".join([mailbox, folder, str(uid), part, str(expires)]).encode()
    return hmac.new(secret.encode(), b"mail-inline\0" + message, hashlib.sha256).hexdigest()


def _inline_url(request: Request[Any, Any, Any], mailbox: str, folder: str,
                uid: int) -> Any:
    secret = web_secret(context_of(request).settings)
    expires = int(time.time()) + INLINE_SECONDS

    def part_url(part: str) -> str:
        signature = _inline_signature(secret, mailbox, folder, uid, part, expires)
        return "/mail/msg/inline?" + urlencode({"m": mailbox, "f": folder, "uid": uid,
                                                "part": part, "e": expires, "s": signature})
    return part_url


def _image_grant(secret: str, expires: int) -> str:
    return hmac.new(secret.encode(), b"mail-img\0%d" % expires, hashlib.sha256).hexdigest()


def _grant_images(request: Request[Any, Any, Any], document: str) -> str:
    """``document`` with a short-lived grant on every image proxy URL in it (see the
    module docstring)."""
    secret = web_secret(context_of(request).settings)
    expires = int(time.time()) + INLINE_SECONDS
    grant = _image_grant(secret, expires)

    def add(match: re.Match[str]) -> str:
        amp = match.group(1)
        return f"{match.group(0)}{amp}e={expires}{amp}t={grant}"
    return _PROXIED.sub(add, document)


def _image_key(folder: str, uid: int) -> str:
    return f"{folder}\0{uid}"


def _allowed_by_session(request: Request[Any, Any, Any], folder: str, uid: int) -> bool:
    allowed = request.session.get(IMAGES_KEY)
    return isinstance(allowed, list) and _image_key(folder, uid) in allowed


def _remember_images(request: Request[Any, Any, Any], folder: str, uid: int) -> None:
    allowed = request.session.get(IMAGES_KEY)
    kept = [k for k in allowed if isinstance(k, str)] if isinstance(allowed, list) else []
    key = _image_key(folder, uid)
    if key not in kept:
        kept = [*kept, key][-IMAGES_REMEMBERED:]
        request.set_session({**request.session, IMAGES_KEY: kept})


async def _view(request: Request[Any, Any, Any], webmail: Webmail, mailbox: str,
                folder: str, uid: int, prefs: Any) -> tuple[Any, bool]:
    """The message, with remote images when this message, its sender or the preference
    allows them; and whether they were allowed."""
    part_url = _inline_url(request, mailbox, folder, uid)
    allowed = prefs.show_images == "always" or _allowed_by_session(request, folder, uid)
    view = await webmail.reader.view(mailbox, folder, uid, allow_images=allowed,
                                     part_url=part_url)
    if not allowed and view.remote_images and prefs.show_images != "never":
        senders = {s.lower() for s in prefs.allowed_image_senders}
        if view.sender_address.lower() in senders:
            allowed = True
            view = await webmail.reader.view(mailbox, folder, uid, allow_images=True,
                                             part_url=part_url)
    return view, allowed


@get("/mail/msg", include_in_schema=False)
async def read(request: Request[Any, Any, Any], f: FromQuery[str], uid: FromQuery[int],
               images: FromQuery[str | None] = None,
               threads: FromQuery[str | None] = None) -> Template:
    """The read view; marks the message read when the preference says so."""
    webmail, mailbox = webmail_of(request), mailbox_of(request)
    prefs = await webmail.prefs.get(mailbox)
    if images == "1":
        _remember_images(request, f, uid)
    view, allowed = await _view(request, webmail, mailbox, f, uid, prefs)
    flags = set(view.flags)
    if prefs.mark_read_on_open and SEEN not in flags:
        await webmail.mailboxes.set_flag(mailbox, f, [uid], SEEN, True)
        flags.add(SEEN)
    conversations = prefs.threads if threads not in ("0", "1") else threads == "1"
    conversation = await webmail.mailboxes.conversation(mailbox, f, uid) \
        if conversations else []
    sent = await webmail.mailboxes.special(mailbox, "sent")
    junk = await webmail.mailboxes.special(mailbox, "junk")
    trace = await webmail.outbox.trace(mailbox, f, uid) if f == sent else None
    body_url = "/mail/msg/body?" + urlencode(
        {"f": f, "uid": uid, **({"images": 1} if allowed else {})})
    return await mail_page(
        request, "mail/message.html", prefs=prefs, current_folder=f, view=view,
        flags=flags, seen=SEEN in flags, flagged=FLAGGED in flags, attachments=[
            a for a in view.attachments if not (a.inline and a.content_id)],  # not cid: images
        text=linkify(view.text) if view.text is not None else None, body_url=body_url,
        images_allowed=allowed, in_junk=f == junk, conversation=conversation if len(
            conversation) > 1 else [], trace=trace, state_words=STATE_WORDS,
        here=message_url(f, uid), list_url="/mail/box?" + urlencode({"f": f}),
        compose_url=lambda mode: "/mail/compose?" + urlencode(
            {"mode": mode, "f": f, "uid": uid}),
        show_images_url=message_url(f, uid, images=1))


@get("/mail/msg/body", include_in_schema=False, response_headers=[
    ResponseHeader(name="Content-Security-Policy", value=BODY_CSP),
    ResponseHeader(name="X-Frame-Options", value="SAMEORIGIN"),
    ResponseHeader(name="X-Content-Type-Options", value="nosniff"),
    ResponseHeader(name="Cache-Control", value="private, no-store"),
    ResponseHeader(name="Referrer-Policy", value="no-referrer")])
async def body(request: Request[Any, Any, Any], f: FromQuery[str], uid: FromQuery[int],
               images: FromQuery[str | None] = None) -> Response[bytes]:
    """The sanitised HTML of a message: the read view's iframe document (framed only by
    our own pages: ``frame-ancestors 'self'`` instead of the app's ``'none'``)."""
    webmail, mailbox = webmail_of(request), mailbox_of(request)
    prefs = await webmail.prefs.get(mailbox)
    view, _ = await _view(request, webmail, mailbox, f, uid, prefs)
    if view.html is None:
        raise NotFoundException("this message has no HTML part")
    return Response(content=_grant_images(request, view.html).encode(),
                    media_type="text/html; charset=utf-8")


def _download(filename: str, content_type: str, data: bytes) -> Response[bytes]:
    return Response(content=data, media_type=content_type, headers={
        **DOWNLOAD_HEADERS, "Content-Disposition": content_disposition(filename)})


@get("/mail/msg/part", include_in_schema=False, response_headers=[
    ResponseHeader(name="Content-Security-Policy", value=DOWNLOAD_CSP)])
async def part(request: Request[Any, Any, Any], f: FromQuery[str], uid: FromQuery[int],
               part: FromQuery[str]) -> Response[bytes]:
    """An attachment, always as a download."""
    filename, content_type, data = await webmail_of(request).reader.attachment(
        mailbox_of(request), f, uid, part)
    return _download(filename, content_type, data)


@get("/mail/msg/inline", include_in_schema=False, opt={READ_ONLY: True}, response_headers=[
    ResponseHeader(name="Content-Security-Policy", value=DOWNLOAD_CSP)])
async def inline(request: Request[Any, Any, Any], m: FromQuery[str], f: FromQuery[str],
                 uid: FromQuery[int], part: FromQuery[str], e: FromQuery[int],
                 s: FromQuery[str]) -> Response[bytes]:
    """An inline part of a message body (a ``cid:`` image) by a signed URL the read view
    made for the logged-in mailbox ``m``; refused when forged or expired."""
    web = context_of(request)
    expected = _inline_signature(web_secret(web.settings), m, f, uid, part, e)
    if e < time.time() or not hmac.compare_digest(expected, s):
        raise NotFoundException("no such part")
    webmail = web.webmail
    assert webmail is not None
    filename, content_type, data = await webmail.reader.attachment(m, f, uid, part)
    return Response(content=data, media_type=content_type, headers={
        **DOWNLOAD_HEADERS, "Cache-Control": "private, max-age=3600",
        "Content-Disposition": content_disposition(filename, "inline")})


@get("/mail/msg/raw", include_in_schema=False, response_headers=[
    ResponseHeader(name="Content-Security-Policy", value=DOWNLOAD_CSP)])
async def raw(request: Request[Any, Any, Any], f: FromQuery[str],
              uid: FromQuery[int]) -> Response[bytes]:
    """The message source, as a download."""
    data = await webmail_of(request).mailboxes.raw(mailbox_of(request), f, uid)
    return _download(f"message-{uid}.eml", "message/rfc822", data)


@get("/mail/img", include_in_schema=False, opt={READ_ONLY: True},
     response_headers=[ResponseHeader(name="Content-Security-Policy", value=DOWNLOAD_CSP)])
async def image(request: Request[Any, Any, Any], u: FromQuery[str], s: FromQuery[str],
                e: FromQuery[int | None] = None,
                t: FromQuery[str | None] = None) -> Response[bytes]:
    """A remote image through the proxy: only URLs the proxy signed, only for a logged-in
    session (its cookie, or the grant of a body it was served). The answer sets no
    cookie and may be cached by this browser only."""
    web = context_of(request)
    granted = e is not None and t is not None and e >= time.time() and hmac.compare_digest(
        _image_grant(web_secret(web.settings), e), t)
    if not granted:
        try:
            await require_mailbox(request, request.route_handler)
        except MailLoginRequired:
            return _refused(403, "log in first")
    webmail = webmail_of(request)
    if not webmail.images.verify(u, s):
        return _refused(403, "not a URL of this server")
    try:
        content_type, data = await webmail.images.fetch(u, s)
    except ImageRefused as exc:  # not an image, too large, private address, unreachable
        return _refused(422, exc.reason)
    return Response(content=data, media_type=content_type, headers={
        "X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=86400"})


def _refused(status: int, reason: str) -> Response[bytes]:
    return Response(content=f"image refused: {reason}".encode(), status_code=status,
                    media_type="text/plain; charset=utf-8",
                    headers={"X-Content-Type-Options": "nosniff",
                             "Cache-Control": "private, max-age=300"})


@post("/mail/images/allow", include_in_schema=False, request_max_body_size=MAX_FORM)
async def allow_images(request: Request[Any, Any, Any],
                       data: Annotated[dict[str, str], Form]) -> Redirect:
    """Show a message's remote images: this once (``scope=message``, remembered in the
    session) or always for its sender (``scope=sender``, a preference)."""
    webmail, mailbox = webmail_of(request), mailbox_of(request)
    folder = data.get("f", "")
    try:
        uid = int(data.get("uid", ""))
    except ValueError:
        raise NotFoundException("no such message") from None
    if data.get("scope") == "sender":
        view = await webmail.reader.view(mailbox, folder, uid, allow_images=False,
                                         part_url=lambda _part: "")
        await webmail.prefs.allow_images_from(mailbox, view.sender_address)
        flash(request, f"Images from {view.sender_address} will always be shown.")
    else:
        _remember_images(request, folder, uid)
    return back(request, message_url(folder, uid))


HANDLERS = [read, body, part, raw, allow_images]
"""Behind ``MAIL_GUARD``."""
PUBLIC_HANDLERS = [inline, image]
"""Authorised by signed URLs (no session cookie from the iframe: see the module's
docstring)."""
