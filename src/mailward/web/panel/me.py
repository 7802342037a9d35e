"""``/panel/me``: a mailbox user's own page — their mailbox, its quota, their password, and
the mail the spam filter held for them (release or delete)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Redirect, Template

from mailward.directory import ServiceError
from mailward.web.errors import http_status
from mailward.web.panel.common import (
    Form,
    PanelUser,
    keep_session_after_password_change,
    page,
    redirect,
    user_of,
    web_of,
)

MAX_FORM = 16 * 1024


def _mailbox_user(request: Request[Any, Any, Any]) -> PanelUser:
    user = user_of(request)
    if user.mailbox is None:
        raise NotFoundException("no such page")  # panel users manage mailboxes elsewhere
    return user


async def _page(request: Request[Any, Any, Any], *, status: int = 200,
                error: str | None = None) -> Template:
    user = _mailbox_user(request)
    assert user.mailbox is not None
    services = web_of(request).services
    mailbox = await services.mailbox_self.view(user.mailbox)
    actor = await services.mailbox_self.actor(user.mailbox, user.actor.source)
    held = await services.quarantine.list(actor, address=user.mailbox, per_page=100)
    return page(request, "me.html", status=status, mailbox=mailbox, error=error, held=held)


@get("/me", include_in_schema=False)
async def me(request: Request[Any, Any, Any]) -> Template:
    return await _page(request)


@post("/me/password", include_in_schema=False, request_max_body_size=MAX_FORM)
async def password(request: Request[Any, Any, Any],
                   data: Annotated[dict[str, str], Form]) -> Template | Redirect:
    user = _mailbox_user(request)
    assert user.mailbox is not None
    mailboxes = web_of(request).services.mailbox_self
    try:
        await mailboxes.change_password(
            user.mailbox, data.get("current", ""), data.get("password", ""),
            data.get("repeat", ""), source=user.actor.source)
    except ServiceError as exc:
        return await _page(request, status=http_status(exc), error=str(exc))
    keep_session_after_password_change(request, await mailboxes.credential_of(user.mailbox))
    return redirect(request, "/panel/me",
                    "password changed: use the new one in your mail programs too")


@post("/me/quarantine/{entry:int}/{action:str}", include_in_schema=False,
      request_max_body_size=MAX_FORM)
async def held_mail(request: Request[Any, Any, Any], entry: FromPath[int],
                    action: FromPath[str]) -> Redirect:
    """Release or delete one of the user's own held messages."""
    user = _mailbox_user(request)
    assert user.mailbox is not None
    services = web_of(request).services
    actor = await services.mailbox_self.actor(user.mailbox, user.actor.source)
    found = await services.quarantine.show(actor, entry)
    if found.entry.recipient != user.mailbox or action not in ("release", "delete"):
        raise NotFoundException("no such page")  # a colleague's mail is not theirs to see
    try:
        if action == "release":
            await services.quarantine.release(actor, entry)
            return redirect(request, "/panel/me", f"Released: {found.entry.subject!r} is "
                                                  "on its way to your mailbox.")
        await services.quarantine.delete(actor, entry)
    except ServiceError as exc:
        return redirect(request, "/panel/me", str(exc), "error")
    return redirect(request, "/panel/me", f"Deleted {found.entry.subject!r}.")


HANDLERS = [me, password, held_mail]
