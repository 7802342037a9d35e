"""``/mail/settings``: the mailbox's webmail settings (``Prefs``), its sender identities
(address limited to what the mailbox may send as; ``Identities.save`` refuses others
too), two-factor login (enrol with the QR code of a new secret, kept in the session until
a code proves it; off with a current code) and its password (the current one first; this
session goes on, others end)."""

from __future__ import annotations

from typing import Any

import segno
from litestar import Request, get, post
from litestar.datastructures import FormMultiDict
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from mailward.core.errors import NotFound, ServiceError
from mailward.directory.mailbox_two_factor import MailboxTwoFactor
from mailward.web.context import context_of
from mailward.web.errors import http_status
from mailward.web.webmail.common import (
    CREDENTIAL_KEY,
    MAIL_GUARD,
    client_of,
    flash,
    mail_page,
    mailbox_of,
    webmail_of,
)
from mailward.webmail.identities import Identity, IdentityIn
from mailward.webmail.prefs import CHOICES, PER_PAGE, UNDO_MAX

__all__ = ["HANDLERS"]

MAX_FORM = 64 * 1024
ENROL_KEY = "mail_two_factor_secret"  # the secret being enrolled, until a code proves it
HOME = "/mail/settings"
BOOLS = ("threads", "compose_html", "reply_above", "mark_read_on_open")
VALUES = ("per_page", "show_images", "undo_seconds", "theme", "allowed_image_senders")


def _text(form: FormMultiDict, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _redirect(request: Request[Any, Any, Any], text: str, anchor: str = "") -> Redirect:
    flash(request, text)
    return Redirect(HOME + (f"#{anchor}" if anchor else ""), status_code=HTTP_303_SEE_OTHER)


async def _sendable(request: Request[Any, Any, Any], mailbox: str,
                    identities: list[Identity]) -> list[str]:
    """The addresses the identity form offers: what the mailbox may send as, and those
    of its saved identities (one it may no longer use still shows while edited)."""
    allowed = await webmail_of(request).identities.addresses(mailbox)
    return list(dict.fromkeys([*allowed, *(i.address for i in identities)]))


async def _page(request: Request[Any, Any, Any], *, status: int = 200, error: str | None = None,
                section: str = "", identity: int | None = None,
                entered: dict[str, str] | None = None) -> Template:
    mailbox = mailbox_of(request)
    webmail = webmail_of(request)
    two_factor = context_of(request).services.mailbox_two_factor
    identities = await webmail.identities.list(mailbox)
    editing = next((i for i in identities if i.id == identity), None)
    enabled = await two_factor.enabled(mailbox)
    context: dict[str, Any] = {"two_factor_on": enabled}
    if not enabled:
        secret = request.session.get(ENROL_KEY)
        if not isinstance(secret, str):
            secret = MailboxTwoFactor.new_secret(mailbox).secret
            request.session[ENROL_KEY] = secret
        uri = MailboxTwoFactor.uri(secret, mailbox)
        context.update(secret=secret, uri=uri,
                       qr=segno.make(uri, error="m").svg_data_uri(scale=4))
    return await mail_page(
        request, "mail/settings.html", status=status, error=error, section=section,
        identities=identities, editing=editing, entered=entered or {},
        sendable=await _sendable(request, mailbox, identities), choices=CHOICES,
        per_page_range=PER_PAGE, undo_max=UNDO_MAX, **context)


@get("/mail/settings", include_in_schema=False, guards=[MAIL_GUARD])
async def settings_page(request: Request[Any, Any, Any],
                        identity: FromQuery[int | None] = None) -> Template:
    """The settings; ``identity`` opens that identity's form."""
    return await _page(request, identity=identity)


@post("/mail/settings/prefs", include_in_schema=False, guards=[MAIL_GUARD],
      request_max_body_size=MAX_FORM)
async def save_prefs(request: Request[Any, Any, Any]) -> Template | Redirect:
    """Every setting of the form (a checkbox not sent is off)."""
    form = await request.form()
    changes: dict[str, Any] = {key: "1" if form.get(key) else "0" for key in BOOLS}
    changes |= {key: _text(form, key) for key in VALUES if form.get(key) is not None}
    try:
        await webmail_of(request).prefs.save(mailbox_of(request), **changes)
    except ServiceError as exc:
        return await _page(request, status=http_status(exc), error=str(exc), section="prefs")
    return _redirect(request, "Settings saved.")


def _identity_in(form: FormMultiDict) -> IdentityIn:
    html = _text(form, "signature_html")
    return IdentityIn(address=_text(form, "address"), name=_text(form, "name"),
                      reply_to=_text(form, "reply_to") or None,
                      signature_text=_text(form, "signature_text"),
                      signature_html=html or None, default=bool(form.get("default")))


async def _save_identity(request: Request[Any, Any, Any],
                         identity_id: int | None) -> Template | Redirect:
    mailbox = mailbox_of(request)
    identities = webmail_of(request).identities
    form = await request.form()
    if identity_id is not None:
        await identities.get(mailbox, identity_id)  # 404 unless the mailbox's own
    try:
        saved = await identities.save(mailbox, _identity_in(form), id=identity_id)
    except NotFound:
        raise
    except ServiceError as exc:
        entered = {k: _text(form, k) for k in ("address", "name", "reply_to",
                                                "signature_text", "signature_html")}
        return await _page(request, status=http_status(exc), error=str(exc),
                           section="identity", identity=identity_id, entered=entered)
    return _redirect(request, f"Identity {saved.address} saved.", "identities")


@post("/mail/settings/identities", include_in_schema=False, guards=[MAIL_GUARD],
      request_max_body_size=MAX_FORM)
async def identity_add(request: Request[Any, Any, Any]) -> Template | Redirect:
    return await _save_identity(request, None)


@post("/mail/settings/identities/{identity_id:int}", include_in_schema=False,
      guards=[MAIL_GUARD], request_max_body_size=MAX_FORM)
async def identity_update(request: Request[Any, Any, Any],
                          identity_id: FromPath[int]) -> Template | Redirect:
    return await _save_identity(request, identity_id)


@post("/mail/settings/identities/{identity_id:int}/delete", include_in_schema=False,
      guards=[MAIL_GUARD], request_max_body_size=MAX_FORM)
async def identity_delete(request: Request[Any, Any, Any],
                          identity_id: FromPath[int]) -> Redirect:
    mailbox = mailbox_of(request)
    identities = webmail_of(request).identities
    identity = await identities.get(mailbox, identity_id)
    await identities.delete(mailbox, identity.id or identity_id)
    return _redirect(request, f"Identity {identity.address} deleted.", "identities")


@post("/mail/settings/two-factor", include_in_schema=False, guards=[MAIL_GUARD],
      request_max_body_size=MAX_FORM)
async def two_factor(request: Request[Any, Any, Any]) -> Template | Redirect:
    """``action=on`` with the code of the secret shown (kept in the session), or
    ``action=off`` with a current code."""
    mailbox = mailbox_of(request)
    service = context_of(request).services.mailbox_two_factor
    form = await request.form()
    code = _text(form, "code")
    source = f"webmail {client_of(request)}"
    try:
        if form.get("action") == "on":
            secret = request.session.get(ENROL_KEY)
            if not isinstance(secret, str):
                return await _page(request, status=400, section="two-factor",
                                   error="Start again: scan the new code.")
            await service.enable(mailbox, secret, code, source=source)
            request.session.pop(ENROL_KEY, None)
            return _redirect(request, "Two-factor login is on: every login now asks for a "
                                      "code.", "two-factor")
        await service.disable(mailbox, code, source=source)
    except ServiceError as exc:
        return await _page(request, status=http_status(exc), error=str(exc),
                           section="two-factor")
    return _redirect(request, "Two-factor login is off.", "two-factor")


@post("/mail/settings/password", include_in_schema=False, guards=[MAIL_GUARD],
      request_max_body_size=MAX_FORM)
async def password(request: Request[Any, Any, Any]) -> Template | Redirect:
    mailbox = mailbox_of(request)
    mailboxes = context_of(request).services.mailbox_self
    form = await request.form()
    try:
        await mailboxes.change_password(
            mailbox, str(form.get("current") or ""), str(form.get("password") or ""),
            str(form.get("repeat") or ""), source=f"webmail {client_of(request)}")
    except ServiceError as exc:
        return await _page(request, status=http_status(exc), error=str(exc),
                           section="password")
    # this session goes on with the new password's fingerprint; every other one ends
    request.set_session({**request.session,
                         CREDENTIAL_KEY: await mailboxes.credential_of(mailbox)})
    return _redirect(request, "Password changed: use the new one in your mail programs "
                              "too.", "password")


HANDLERS = [settings_page, save_prefs, identity_add, identity_update, identity_delete,
            two_factor, password]
