"""``/panel/accounts/A/users``: the account's admins — add one, reset a forgotten password,
lift a login lock, delete one (after a confirmation page). One's own password is changed
on the Security page, with the current one."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from mailward.directory import ServiceError
from mailward.directory.users import login_key
from mailward.web.errors import http_status
from mailward.web.panel.common import Form, account_url, page, redirect, scoped, user_of, web_of

MAX_FORM = 16 * 1024
FormData = Annotated[dict[str, str], Form]


async def _page(request: Request[Any, Any, Any], account: str, *, status: int = 200,
                error: str | None = None, form: str = "", login: str = "") -> Template:
    view, actor = await scoped(request, account)
    users = web_of(request).services.users
    # the list is scoped to the actor already: the lock is one lookup per row
    admins = [(user, await users.limiter.retry_after(login_key(user.login)))
              for user in await users.list(actor, view.name)]
    return page(request, "users.html", status=status, account=view,
                account_base=account_url(view.name), admins=admins,
                me=user_of(request).login, error=error, form=form, login=login)


@get("/accounts/{account:str}/users", include_in_schema=False)
async def users(request: Request[Any, Any, Any], account: FromPath[str]) -> Template:
    return await _page(request, account)


@post("/accounts/{account:str}/users/add", include_in_schema=False,
      request_max_body_size=MAX_FORM)
async def add(request: Request[Any, Any, Any], account: FromPath[str],
              data: FormData) -> Template | Redirect:
    view, actor = await scoped(request, account)
    try:
        added = await web_of(request).services.accounts.create_user(
            actor, data.get("login", ""), data.get("password", ""), account=view.name,
            repeat=data.get("repeat", ""))
    except ServiceError as exc:
        return await _page(request, account, status=http_status(exc), error=str(exc), form="add")
    return redirect(request, f"{account_url(view.name)}users",
                    f"added {added.login}: they log in at /login with this password")


@post("/accounts/{account:str}/users/{login:str}/{action:str}", include_in_schema=False,
      request_max_body_size=MAX_FORM)
async def change(request: Request[Any, Any, Any], account: FromPath[str], login: FromPath[str],
                 action: FromPath[str], data: FormData) -> Template | Redirect:
    """``password`` (reset), ``unlock`` or ``delete`` (confirmed on a page first)."""
    view, actor = await scoped(request, account)
    service = web_of(request).services.users
    here = f"{account_url(view.name)}users"
    try:
        if action == "password":
            done = await service.set_password(actor, login, data.get("password", ""),
                                              repeat=data.get("repeat", ""))
            message = (f"password of {done.login} changed: tell them the new one safely; "
                       f"{done.tokens_revoked} API token(s) revoked")
        elif action == "unlock":
            message = f"logins of {(await service.unlock(actor, login)).login} unlocked"
        elif action == "delete" and data.get("confirm") != "yes":
            target = await service.lock_state(actor, login)  # 404 unless theirs to delete
            return page(request, "confirm_user_delete.html", account=view,
                        account_base=account_url(view.name), login=target.login)
        elif action == "delete":
            message = f"deleted {(await service.delete(actor, login)).login}"
        else:
            return await _page(request, account, status=404, error=f"unknown action {action!r}")
    except ServiceError as exc:
        if http_status(exc) == 404:
            raise
        return await _page(request, account, status=http_status(exc), error=str(exc), form=action,
                           login=login)
    return redirect(request, here, message)


HANDLERS = [users, add, change]
