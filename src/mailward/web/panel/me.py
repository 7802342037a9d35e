"""``/panel/me``: a mailbox user's own page — their mailbox, its quota, their password."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.exceptions import NotFoundException
from litestar.response import Redirect, Template

from mailward.directory import DirectoryError
from mailward.web.panel.common import Form, PanelUser, page, redirect, user_of, web_of

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
    mailbox = await web_of(request).directory.mailbox_self.view(user.mailbox)
    return page(request, "me.html", status=status, mailbox=mailbox, error=error)


@get("/me", include_in_schema=False)
async def me(request: Request[Any, Any, Any]) -> Template:
    return await _page(request)


@post("/me/password", include_in_schema=False, request_max_body_size=MAX_FORM)
async def password(request: Request[Any, Any, Any],
                   data: Annotated[dict[str, str], Form]) -> Template | Redirect:
    user = _mailbox_user(request)
    assert user.mailbox is not None
    try:
        await web_of(request).directory.mailbox_self.change_password(
            user.mailbox, data.get("current", ""), data.get("password", ""),
            data.get("repeat", ""), source=user.actor.source)
    except DirectoryError as exc:
        return await _page(request, status=exc.status, error=str(exc))
    return redirect(request, "/panel/me",
                    "password changed: use the new one in your mail programs too")


HANDLERS = [me, password]
