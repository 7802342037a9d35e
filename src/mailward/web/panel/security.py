"""``/panel/security``: the user's own password (changed with the current one) and
two-factor login (on with a code from the phone that scanned the QR code, off with a
current code)."""

from __future__ import annotations

from typing import Annotated, Any

import segno
from litestar import Request, get, post
from litestar.exceptions import NotFoundException
from litestar.response import Redirect, Template

from mailward.directory import ServiceError, TwoFactorService
from mailward.web.errors import http_status
from mailward.web.panel.common import (
    Form,
    keep_session_after_password_change,
    page,
    redirect,
    user_of,
    web_of,
)

MAX_FORM = 16 * 1024
ENROL_KEY = "two_factor_secret"  # the secret being enrolled, until a code proves it


async def _page(request: Request[Any, Any, Any], *, status: int = 200,
                error: str | None = None, form: str = "two-factor") -> Template:
    user = user_of(request)
    if user.mailbox is not None or user.actor.user_id is None:
        raise NotFoundException("no such page")  # two-factor login is for panel users
    enabled = await web_of(request).services.two_factor.enabled(user.actor.user_id)
    context: dict[str, Any] = {"enabled": enabled, "error": error, "form": form}
    if not enabled:
        secret = request.session.get(ENROL_KEY)
        if not isinstance(secret, str):
            new = TwoFactorService.new_secret(user.login)
            secret = new.secret
            request.session[ENROL_KEY] = secret
        uri = TwoFactorService.uri(secret, user.login)
        context.update(secret=secret, uri=uri,
                       qr=segno.make(uri, error="m").svg_data_uri(scale=4))
    return page(request, "security.html", status=status, **context)


@get("/security", include_in_schema=False)
async def security(request: Request[Any, Any, Any]) -> Template:
    return await _page(request)


@post("/security/two-factor", include_in_schema=False, request_max_body_size=MAX_FORM)
async def two_factor(request: Request[Any, Any, Any],
                     data: Annotated[dict[str, str], Form]) -> Template | Redirect:
    user = user_of(request)
    if user.mailbox is not None:
        raise NotFoundException("no such page")
    service = web_of(request).services.two_factor
    try:
        if data.get("action") == "on":
            secret = request.session.get(ENROL_KEY)
            if not isinstance(secret, str):
                return redirect(request, "/panel/security", "start again: scan the new code",
                                "error")
            await service.enable(user.actor, secret, data.get("code", ""))
            request.session.pop(ENROL_KEY, None)
            return redirect(request, "/panel/security",
                            "two-factor login is on: every login now asks for a code")
        await service.disable(user.actor, data.get("code", ""))
        return redirect(request, "/panel/security", "two-factor login is off")
    except ServiceError as exc:
        return await _page(request, status=http_status(exc), error=str(exc))


@post("/security/password", include_in_schema=False, request_max_body_size=MAX_FORM)
async def password(request: Request[Any, Any, Any],
                   data: Annotated[dict[str, str], Form]) -> Template | Redirect:
    user = user_of(request)
    if user.mailbox is not None or user.actor.user_id is None:
        raise NotFoundException("no such page")  # mailbox users have /panel/me
    services = web_of(request).services
    try:
        await services.users.set_password(
            user.actor, user.login, data.get("password", ""), repeat=data.get("repeat", ""),
            current=data.get("current", ""))
    except ServiceError as exc:
        return await _page(request, status=http_status(exc), error=str(exc), form="password")
    keep_session_after_password_change(
        request, await services.accounts.credential_of(user.actor.user_id))
    return redirect(request, "/panel/security",
                    "password changed: your other sessions are logged out")


HANDLERS = [security, two_factor, password]
