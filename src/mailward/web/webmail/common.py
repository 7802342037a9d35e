"""What every webmail page shares: the logged-in mailbox (``MAIL_GUARD``), the
:class:`~mailward.webmail.Webmail` services, rendering with the layout's context
(``mail_page``), see-other redirects back to where a form came from, flash messages, and
the HTML error pages of ``/mail``.

The webmail has its own session (cookie ``mailward_mail``, see ``web.sessions``), apart
from the panel's: its data are the mailbox (``MAILBOX_KEY``) and the password's
fingerprint at login (``CREDENTIAL_KEY``): a password changed elsewhere ends the session.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException
from litestar.handlers import BaseRouteHandler
from litestar.params import Body
from litestar.plugins.flash import flash as _flash
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from mailward.core.errors import NotFound, ServiceError
from mailward.store import FolderExists, FolderHasChildren, NoSuchFolder, NoSuchMessage, StoreError
from mailward.web.context import context_of
from mailward.web.errors import http_status
from mailward.webmail import Webmail

__all__ = [
    "CREDENTIAL_KEY",
    "MAILBOX_KEY",
    "MAIL_GUARD",
    "Form",
    "MailLoginRequired",
    "back",
    "client_of",
    "error_page",
    "flash",
    "keep_session_after_password_change",
    "mail_error_handlers",
    "mail_page",
    "mailbox_of",
    "require_mailbox",
    "safe_target",
    "webmail_of",
]

Form = Body(media_type=RequestEncodingType.URL_ENCODED)
MAILBOX_KEY = "mailbox"
CREDENTIAL_KEY = "credential"  # the password's fingerprint at login: a change ends the session
_STATE_KEY = "mail_mailbox"


class MailLoginRequired(HTTPException):
    """No (valid) webmail session: the login page, then back here."""

    status_code = 401


def client_of(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    return connection.client.host if connection.client else "unknown"


def webmail_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Webmail:
    """The webmail services the app was built with."""
    webmail = context_of(connection).webmail
    assert webmail is not None, "the app was built without a mail store"
    return webmail


async def require_mailbox(
    connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler
) -> None:
    """Guard: the session's mailbox, re-checked on every request (a deleted mailbox or a
    changed password logs out). Running it twice on one request costs nothing."""
    if isinstance(getattr(connection.state, _STATE_KEY, None), str):
        return
    session = connection.session or {}
    mailbox, credential = session.get(MAILBOX_KEY), session.get(CREDENTIAL_KEY)
    if not isinstance(mailbox, str) or not isinstance(credential, str):
        raise MailLoginRequired("log in first")
    try:
        view = await context_of(connection).services.mailbox_self.view(mailbox, credential)
    except NotFound:
        connection.scope["session"] = {}
        raise MailLoginRequired("log in first") from None
    setattr(connection.state, _STATE_KEY, view.email)


MAIL_GUARD = require_mailbox
"""The guard of every logged-in ``/mail`` route."""


def keep_session_after_password_change(request: Request[Any, Any, Any],
                                       credential: str) -> None:
    """The mailbox changed its own password here (``credential``: the new fingerprint,
    ``mailbox_self.credential_of``): this session goes on, every other one ends."""
    request.set_session({**request.session, CREDENTIAL_KEY: credential})


def mailbox_of(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The logged-in mailbox (full lower-case address); only behind ``MAIL_GUARD``."""
    mailbox = getattr(connection.state, _STATE_KEY, None)
    if not isinstance(mailbox, str):
        raise MailLoginRequired("log in first")
    return mailbox


def safe_target(target: str | None, default: str = "/mail") -> str:
    """``target`` if it is a path of this site (no scheme, host or ``//``), else default."""
    if not target:
        return default
    parts = urlsplit(target)
    if (parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//")
            or "\\" in target or any(ord(c) < 32 for c in target)):
        return default
    return target


def back(request: Request[Any, Any, Any], default: str = "/mail", *,
         target: str | None = None) -> Redirect:
    """303 to ``target`` (e.g. the form's ``back`` field) when it is a path of this site,
    else to ``default`` (also checked; ``/mail`` when it is not)."""
    return Redirect(safe_target(target, safe_target(default)), status_code=HTTP_303_SEE_OTHER)


def flash(request: ASGIConnection[Any, Any, Any, Any], text: str,
          category: str = "success") -> None:
    """A message shown on the next page; category ``success`` | ``error`` | ``info``."""
    _flash(request, text, category=category)


async def mail_page(request: Request[Any, Any, Any], template: str, *, status: int = 200,
                    **context: Any) -> Template:
    """Render ``template`` (e.g. ``"mail/box.html"``) with what the layout needs: the
    mailbox, its folders (sidebar, with unread counts), its prefs and the theme.
    A coroutine: ``return await mail_page(request, "mail/x.html", key=value)``."""
    webmail = webmail_of(request)
    mailbox = mailbox_of(request)
    prefs = context.pop("prefs", None)
    if prefs is None:
        prefs = await webmail.prefs.get(mailbox)
    folders = context.pop("folders", None)
    if folders is None:
        folders = await webmail.mailboxes.folders(mailbox)
    return Template(template_name=template, status_code=status, context={
        "mailbox": mailbox, "folders": folders, "prefs": prefs,
        "theme": getattr(prefs, "theme", "auto"), "current_folder": None, "query": "",
        "today": datetime.now(UTC).date(),
        **context})


def _error_status(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, ServiceError):
        status, reason = http_status(exc), str(exc)
        return (404, "no such page") if status == 403 else (status, reason)
    if isinstance(exc, (NoSuchFolder, NoSuchMessage)):
        return 404, "no such folder or message"
    if isinstance(exc, (FolderExists, FolderHasChildren)):
        return 409, str(exc) or "the folder exists or has subfolders"
    if isinstance(exc, StoreError):
        return 400, str(exc) or "the mail store refused"
    assert isinstance(exc, HTTPException)
    return exc.status_code, exc.detail


def error_page(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Webmail errors as pages: the login page for 401, else the status and reason."""
    if isinstance(exc, MailLoginRequired):
        if request.method != "GET":
            return Redirect("/mail/login", status_code=HTTP_303_SEE_OTHER)
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return Redirect(f"/mail/login?next={quote(here, safe='')}",
                        status_code=HTTP_303_SEE_OTHER)
    if isinstance(exc, HTTPException) and exc.status_code >= 500:
        raise exc
    status, reason = _error_status(exc)
    return Template(template_name="mail/error.html", status_code=status,
                    context={"status": status, "reason": reason, "theme": "auto",
                             "mailbox": getattr(request.state, _STATE_KEY, None)})


def mail_error_handlers() -> dict[Any, Any]:
    """The exception handlers of every ``/mail`` route."""
    return {ServiceError: error_page, StoreError: error_page, HTTPException: error_page,
            MailLoginRequired: error_page}
