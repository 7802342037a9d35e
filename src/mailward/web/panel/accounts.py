"""The Accounts page of operators (every account) and resellers (their own): new accounts,
new domains, hosting on/off."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Redirect, Template

from mailward.directory import ServiceError
from mailward.web.errors import http_status
from mailward.web.panel.common import Form, account_url, page, redirect, user_of, web_of

MAX_FORM = 16 * 1024


def _operator(request: Request[Any, Any, Any]) -> None:
    """Operators (every account) and resellers (theirs); account admins never see these."""
    if not user_of(request).manages_accounts:
        raise NotFoundException("no such page")


@get("/accounts", include_in_schema=False)
async def accounts(request: Request[Any, Any, Any]) -> Template:
    _operator(request)
    return await _accounts_page(request)


async def _accounts_page(
    request: Request[Any, Any, Any], *, status: int = 200, error: str | None = None, form: str = ""
) -> Template:
    services = web_of(request).services
    actor = user_of(request).actor
    domains: dict[str, list[Any]] = {}
    for domain in await services.domains.list(actor):
        domains.setdefault(domain.account, []).append(domain)
    return page(
        request,
        "accounts.html",
        status=status,
        accounts=await services.accounts.list(actor),
        domains=domains,
        error=error,
        form=form,
    )


@post("/accounts", include_in_schema=False, request_max_body_size=MAX_FORM)
async def create_account(
    request: Request[Any, Any, Any], data: Annotated[dict[str, str], Form]
) -> Template | Redirect:
    _operator(request)
    name = data.get("name", "")
    try:
        view = await web_of(request).services.accounts.create(user_of(request).actor, name)
    except ServiceError as exc:
        return await _accounts_page(request, status=http_status(exc), error=str(exc),
                                    form="account")
    return redirect(request, account_url(view.name), f"account {view.name} created")


@post("/accounts/{account:str}/domains", include_in_schema=False, request_max_body_size=MAX_FORM)
async def create_domain(
    request: Request[Any, Any, Any], account: FromPath[str], data: Annotated[dict[str, str], Form]
) -> Template | Redirect:
    _operator(request)
    services = web_of(request).services
    try:
        view = await services.domains.create(
            user_of(request).actor, data.get("name", ""), account=account, hosting="hosting" in data
        )
    except ServiceError as exc:
        if http_status(exc) == 404:  # not one of the caller's accounts
            raise
        return await _accounts_page(request, status=http_status(exc), error=str(exc), form=account)
    hosting = " with hosting" if view.hosting else ""
    return redirect(
        request, "/panel/accounts", f"domain {view.name} added to {view.account}{hosting}"
    )


@post(
    "/accounts/{account:str}/domains/{domain:str}/hosting",
    include_in_schema=False,
    request_max_body_size=MAX_FORM,
)
async def set_hosting(
    request: Request[Any, Any, Any],
    account: FromPath[str],
    domain: FromPath[str],
    data: Annotated[dict[str, str], Form],
) -> Redirect:
    _operator(request)
    services = web_of(request).services
    actor = user_of(request).actor
    current = await services.domains.get(actor, domain)
    if current.account != account:
        raise NotFoundException("no such page")
    on = data.get("hosting") == "on"
    view = await services.domains.set_hosting(actor, domain, on)
    state = "on" if view.hosting else "off"
    return redirect(request, "/panel/accounts", f"hosting for {view.name} is {state}")


HANDLERS = [accounts, create_account, create_domain, set_hosting]
