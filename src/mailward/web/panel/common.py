"""What every panel page shares: who is logged in, the account a page belongs to, rendering
with the layout's context, messages, and the HTML error pages.

A page of account ``A`` lives under ``/panel/accounts/A/``. Its handlers act through an
actor scoped to ``A``: for an account admin that is themselves (another account's URL is
404, as if it did not exist); an operator (any account) or a reseller (its own accounts)
acts as ``A``'s admin, with their own login kept for the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException, NotFoundException
from litestar.handlers import BaseRouteHandler
from litestar.params import Body
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from mailward.directory import Actor, NotFound, ServiceError
from mailward.directory.views import AccountView
from mailward.web.context import WebContext, context_of
from mailward.web.errors import http_status

__all__ = [
    "Category",
    "LoginRequired",
    "PanelUser",
    "client_of",
    "error_page",
    "page",
    "redirect",
    "require_login",
    "scoped",
]

Category = str  # "success" | "error" | "info"
Form = Body(media_type=RequestEncodingType.URL_ENCODED)
USER_KEY = "user_id"
MAILBOX_KEY = "mailbox"
CREDENTIAL_KEY = "credential"  # the password's fingerprint at login: a change ends the session


class LoginRequired(HTTPException):
    status_code = 401


@dataclass(frozen=True, slots=True)
class PanelUser:
    """The logged-in panel user: a user of the directory (``actor``), or a mailbox user
    (``mailbox``, logged in with the mailbox password; they reach only their own page)."""

    actor: Actor
    login: str
    mailbox: str | None = None

    @property
    def is_operator(self) -> bool:
        return self.mailbox is None and self.actor.is_operator

    @property
    def manages_accounts(self) -> bool:
        """Operators and resellers: the Accounts page, acting inside their accounts."""
        return self.mailbox is None and self.actor.manages_accounts


def client_of(request: ASGIConnection[Any, Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


async def require_login(
    connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler
) -> None:
    """Guard: the session's user (re-read each time: a deleted user is logged out)."""
    session = connection.session or {}
    source = f"web {client_of(connection)}"
    mailbox = session.get(MAILBOX_KEY)
    if isinstance(mailbox, str):
        try:
            view = await context_of(connection).services.mailbox_self.view(
                mailbox, _credential(session))
        except NotFound:  # deleted, no longer a mailbox, or a new password: logged out
            raise LoginRequired("log in first") from None
        # an actor that can see nothing: mailbox users only reach their own page
        nobody = Actor.for_account(-1, view.email).via(source)
        connection.state.panel_user = PanelUser(nobody, view.email, view.email)
        return
    user_id = session.get(USER_KEY)
    actor = None
    if isinstance(user_id, int):
        actor = await context_of(connection).services.accounts.actor_by_id(
            user_id, _credential(session))
    if actor is None:
        raise LoginRequired("log in first")
    connection.state.panel_user = PanelUser(actor.via(source), actor.name)


def _credential(session: dict[str, Any]) -> str:
    value = session.get(CREDENTIAL_KEY)
    return value if isinstance(value, str) else ""  # none: a session from before it counted


def keep_session_after_password_change(request: Request[Any, Any, Any],
                                       credential: str) -> None:
    """The user changed their own password here: this session goes on (others end)."""
    request.set_session({**request.session, CREDENTIAL_KEY: credential})


def user_of(request: Request[Any, Any, Any]) -> PanelUser:
    return request.state.panel_user


async def scoped(request: Request[Any, Any, Any], account: str) -> tuple[AccountView, Actor]:
    """Account ``account`` and the actor to act on it with; 404 unless the user may."""
    user = user_of(request)
    if user.mailbox is not None:
        raise NotFoundException("no such page")
    web = context_of(request)
    try:
        view = await web.services.accounts.get(user.actor, account)
    except NotFound:
        raise NotFoundException("no such page") from None
    if user.manages_accounts:  # acts as the account's admin; the log says who it was
        actor = Actor.for_account(view.id, user.login, user.actor.user_id).via(
            f"{user.actor.source} ({user.actor.role.value})"
        )
    else:
        actor = user.actor
    return view, actor


def page(
    request: Request[Any, Any, Any], template: str, *, status: int = 200, **context: Any
) -> Template:
    """Render ``panel/<template>`` with the user and (if given) the account in context."""
    user = getattr(request.state, "panel_user", None)
    return Template(
        template_name=f"panel/{template}", status_code=status, context={"user": user, **context}
    )


def redirect(
    request: Request[Any, Any, Any],
    to: str,
    message: str | None = None,
    category: Category = "success",
) -> Redirect:
    """See-other redirect (after a POST), with a message shown on the next page."""
    if message:
        flash(request, message, category=category)
    return Redirect(to, status_code=HTTP_303_SEE_OTHER)


def account_url(account: str, *parts: str) -> str:
    path = "/".join(quote(p, safe="@") for p in parts)
    return f"/panel/accounts/{quote(account, safe='')}/" + path


def web_of(request: Request[Any, Any, Any]) -> WebContext:
    return context_of(request)


def error_page(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Panel errors as pages: a login page for 401, else the status and its reason."""
    if isinstance(exc, LoginRequired):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return Redirect(f"/login?next={quote(target, safe='')}", status_code=HTTP_303_SEE_OTHER)
    if isinstance(exc, ServiceError):
        status, reason = http_status(exc), str(exc)
    elif isinstance(exc, HTTPException):
        status, reason = exc.status_code, exc.detail
    else:
        raise exc
    if isinstance(exc, ServiceError) and status == 403:  # as if it did not exist
        status, reason = 404, "no such page"
    return Template(
        template_name="panel/error.html",
        status_code=status,
        context={
            "user": getattr(request.state, "panel_user", None),
            "status": status,
            "reason": reason,
        },
    )
