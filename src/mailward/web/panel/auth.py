"""``/login`` and ``/logout`` (panel sessions), and ``/panel``: where a user lands."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from litestar import Request, get, post
from litestar.params import FromQuery
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from mailward.web.context import context_of
from mailward.web.login import (
    LoginFailed,
    LoginThrottled,
    code_login,
    needs_code,
    panel_login,
)
from mailward.web.panel.common import (
    CREDENTIAL_KEY,
    MAILBOX_KEY,
    USER_KEY,
    Form,
    account_url,
    client_of,
    page,
    redirect,
    user_of,
)
from mailward.web.sessions import DatabaseStore, new_session_id

MAX_FORM = 16 * 1024
PENDING_KEY = "password_ok_user_id"  # the password was right; the code is still to come


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no host, no ``//``) may be the next page."""
    if not target:
        return "/panel"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/panel"
    return target


@get("/login", include_in_schema=False)
async def login_form(
    request: Request[Any, Any, Any], next: FromQuery[str | None] = None
) -> Template:
    return page(request, "login.html", next=_safe_next(next), login="", error=None)


@post("/login", include_in_schema=False, request_max_body_size=MAX_FORM)
async def login(
    request: Request[Any, Any, Any], data: Annotated[dict[str, str], Form]
) -> Template | Redirect:
    login_name = data.get("login", "").strip()
    target = _safe_next(data.get("next"))
    try:
        actor = await panel_login(
            context_of(request), login_name, data.get("password", ""), client_of(request)
        )
    except (LoginFailed, LoginThrottled) as exc:
        status = 429 if isinstance(exc, LoginThrottled) else 401
        return page(
            request, "login.html", status=status, next=target, login=login_name, error=str(exc)
        )
    new_session_id(request)  # a fresh session for the new login (no fixation)
    await DatabaseStore(context_of(request).services.db).delete_expired()  # housekeeping
    services = context_of(request).services
    if isinstance(actor, str):  # a mailbox user: their own page only
        request.set_session({MAILBOX_KEY: actor,
                             CREDENTIAL_KEY: await services.mailbox_self.credential_of(actor)})
        return Redirect("/panel/me", status_code=HTTP_303_SEE_OTHER)
    if await needs_code(context_of(request), actor):
        request.set_session({PENDING_KEY: actor.user_id})
        return Redirect(f"/login/code?next={quote(target, safe='')}",
                        status_code=HTTP_303_SEE_OTHER)
    assert actor.user_id is not None
    request.set_session({USER_KEY: actor.user_id,
                         CREDENTIAL_KEY: await services.accounts.credential_of(actor.user_id)})
    return Redirect(target, status_code=HTTP_303_SEE_OTHER)


@get("/login/code", include_in_schema=False)
async def code_form(request: Request[Any, Any, Any],
                    next: FromQuery[str | None] = None) -> Template | Redirect:
    if not isinstance(request.session.get(PENDING_KEY), int):
        return Redirect("/login", status_code=HTTP_303_SEE_OTHER)
    return page(request, "login_code.html", next=_safe_next(next), error=None)


@post("/login/code", include_in_schema=False, request_max_body_size=MAX_FORM)
async def code(request: Request[Any, Any, Any],
               data: Annotated[dict[str, str], Form]) -> Template | Redirect:
    """The second step: the authenticator's code for the user whose password was right."""
    target = _safe_next(data.get("next"))
    web = context_of(request)
    pending = request.session.get(PENDING_KEY)
    actor = await web.services.accounts.actor_by_id(pending) if isinstance(pending, int) \
        else None
    if actor is None:
        return Redirect("/login", status_code=HTTP_303_SEE_OTHER)
    try:
        await code_login(web, actor, data.get("code", ""), client_of(request))
    except (LoginFailed, LoginThrottled) as exc:
        status = 429 if isinstance(exc, LoginThrottled) else 401
        return page(request, "login_code.html", status=status, next=target, error=str(exc))
    new_session_id(request)
    assert actor.user_id is not None
    request.set_session({USER_KEY: actor.user_id,
                         CREDENTIAL_KEY: await web.services.accounts.credential_of(
                             actor.user_id)})
    return Redirect(target, status_code=HTTP_303_SEE_OTHER)


@post("/logout", include_in_schema=False)
async def logout(request: Request[Any, Any, Any]) -> Redirect:
    request.clear_session()
    return redirect(request, "/login")


@get("/", include_in_schema=False)
async def home(request: Request[Any, Any, Any]) -> Redirect:
    """Operators start at the accounts; an account admin at their account's dashboard."""
    user = user_of(request)
    if user.mailbox is not None:
        return Redirect("/panel/me", status_code=HTTP_303_SEE_OTHER)
    if user.manages_accounts:
        return Redirect("/panel/accounts", status_code=HTTP_303_SEE_OTHER)
    accounts = await context_of(request).services.accounts.list(user.actor)
    return Redirect(account_url(accounts[0].name), status_code=HTTP_303_SEE_OTHER)
