"""Webmail login and logout: the full address and the mailbox password (the mail
protocols' login, sharing their lockout), then the authenticator code when the mailbox
has two-factor login on. A fresh session ID at every step (no fixation)."""

from __future__ import annotations

import time
from typing import Annotated, Any
from urllib.parse import quote

from litestar import Request, get, post
from litestar.params import FromQuery
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from mailward.web.context import context_of
from mailward.web.sessions import new_session_id
from mailward.web.webmail.common import (
    CREDENTIAL_KEY,
    MAILBOX_KEY,
    Form,
    client_of,
    safe_target,
)

__all__ = ["HANDLERS", "PROTOCOL", "throttled_text"]

PROTOCOL = "webmail"  # MailLogin's protocol name: refused where hosting is off
MAX_FORM = 16 * 1024
HOME = "/mail/box?f=INBOX"
PENDING_KEY = "password_ok_mailbox"  # the password was right; the code is still to come
PENDING_AT_KEY = "password_ok_at"
PENDING_SECONDS = 300  # the code must follow the password within this
WRONG = "Wrong address or password."


def throttled_text(seconds: int) -> str:
    """The answer to a locked login, with the wait in words."""
    wait = f"{-(-seconds // 60)} minutes" if seconds >= 120 else f"{seconds} seconds"
    return f"Too many failed logins. Try again in {wait}."


def _login_page(request: Request[Any, Any, Any], *, status: int = 200, error: str | None = None,
                address: str = "", next_: str = HOME) -> Template:
    return Template(template_name="mail/login.html", status_code=status, context={
        "error": error, "address": address, "next": next_, "theme": "auto",
        "retry": status == 429})


def _logged_in(request: Request[Any, Any, Any]) -> bool:
    return isinstance(request.session.get(MAILBOX_KEY), str)


@get("/mail", include_in_schema=False)
async def mail_home(request: Request[Any, Any, Any]) -> Template | Redirect:
    """The inbox when logged in, else the login page."""
    if _logged_in(request):
        return Redirect(HOME, status_code=HTTP_303_SEE_OTHER)
    return _login_page(request)


@get("/mail/login", include_in_schema=False)
async def login_form(request: Request[Any, Any, Any],
                     next: FromQuery[str | None] = None) -> Template | Redirect:
    if _logged_in(request):
        return Redirect(safe_target(next, HOME), status_code=HTTP_303_SEE_OTHER)
    return _login_page(request, next_=safe_target(next, HOME))


@post("/mail/login", include_in_schema=False, request_max_body_size=MAX_FORM)
async def login(request: Request[Any, Any, Any],
                data: Annotated[dict[str, str], Form]) -> Template | Redirect:
    address = data.get("address", "").strip()
    target = safe_target(data.get("next"), HOME)
    services = context_of(request).services
    result = await services.mail_login.authenticate(
        address, data.get("password", ""), client_of(request), PROTOCOL)
    if result.retry_after:
        return _login_page(request, status=429, error=throttled_text(result.retry_after),
                           address=address, next_=target)
    if result.mailbox is None:
        return _login_page(request, status=401, error=WRONG, address=address, next_=target)
    mailbox = result.mailbox
    new_session_id(request)  # a fresh session for the new login (no fixation)
    if await services.mailbox_two_factor.enabled(mailbox):
        request.set_session({PENDING_KEY: mailbox, PENDING_AT_KEY: time.time()})
        return Template(template_name="mail/login_code.html", context={
            "error": None, "next": target, "theme": "auto", "address": mailbox})
    request.set_session({MAILBOX_KEY: mailbox,
                         CREDENTIAL_KEY: await services.mailbox_self.credential_of(mailbox)})
    return Redirect(target, status_code=HTTP_303_SEE_OTHER)


def _pending(request: Request[Any, Any, Any]) -> str | None:
    mailbox, at = request.session.get(PENDING_KEY), request.session.get(PENDING_AT_KEY)
    if not isinstance(mailbox, str) or not isinstance(at, (int, float)):
        return None
    return mailbox if 0 <= time.time() - at <= PENDING_SECONDS else None


@post("/mail/login/code", include_in_schema=False, request_max_body_size=MAX_FORM)
async def code(request: Request[Any, Any, Any],
               data: Annotated[dict[str, str], Form]) -> Template | Redirect:
    """The second step: the authenticator's code of the mailbox whose password was
    right. Wrong codes count against the same limits as wrong passwords."""
    target = safe_target(data.get("next"), HOME)
    services = context_of(request).services
    mailbox = _pending(request)
    if mailbox is None:
        request.clear_session()
        return Redirect(f"/mail/login?next={quote(target, safe='')}",
                        status_code=HTTP_303_SEE_OTHER)
    mail_login, client = services.mail_login, client_of(request)

    def again(status: int, error: str) -> Template:
        return Template(template_name="mail/login_code.html", status_code=status, context={
            "error": error, "next": target, "theme": "auto", "address": mailbox})

    wait = await mail_login.retry_after(mailbox, client)
    if wait:
        return again(429, throttled_text(wait))
    if not await services.mailbox_two_factor.verify(mailbox, data.get("code", "").strip()):
        await mail_login.fail(mailbox, client)
        return again(401, "Wrong or used code.")
    new_session_id(request)
    request.set_session({MAILBOX_KEY: mailbox,
                         CREDENTIAL_KEY: await services.mailbox_self.credential_of(mailbox)})
    return Redirect(target, status_code=HTTP_303_SEE_OTHER)


@post("/mail/logout", include_in_schema=False)
async def logout(request: Request[Any, Any, Any]) -> Redirect:
    """End the session (its row and the cookie)."""
    request.clear_session()
    return Redirect("/mail/login", status_code=HTTP_303_SEE_OTHER)


HANDLERS = [mail_home, login_form, login, code, logout]
"""Public: no login needed (``MAIL_GUARD`` is not on these)."""
