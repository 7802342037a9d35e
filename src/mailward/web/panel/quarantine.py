"""``/panel/accounts/{account}/quarantine``: the account's held mail — list by address and
status, a message's findings and headers, release (optionally allowing the sender) and
delete, each a POST with its CSRF token."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, get, post
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Redirect, Template

from mailward.directory import InvalidInput, ServiceError
from mailward.web.errors import http_status
from mailward.web.panel.common import Form, account_url, page, redirect, scoped, web_of

PER_PAGE = 50
MAX_FORM = 4 * 1024
FormData = Annotated[dict[str, str], Form]


@get("/accounts/{account:str}/quarantine", include_in_schema=False)
async def held(
    request: Request[Any, Any, Any],
    account: FromPath[str],
    address: FromQuery[str] = "",
    status: FromQuery[str] = "held",
    page_number: Annotated[int, QueryParameter(name="page")] = 1,
) -> Template:
    view, actor = await scoped(request, account)
    filters = {"address": address.strip(), "status": status}
    error, found = None, None
    try:
        found = await web_of(request).services.quarantine.list(
            actor, address=filters["address"] or None,
            status=None if status == "all" else status, page=max(page_number, 1),
            per_page=PER_PAGE)
    except InvalidInput as exc:
        error = str(exc)
    return page(request, "quarantine.html", status=400 if error else 200, account=view,
                account_base=account_url(view.name), found=found, error=error,
                filters=filters, query=urlencode({k: v for k, v in filters.items() if v}))


@get("/accounts/{account:str}/quarantine/{entry:int}", include_in_schema=False)
async def detail(request: Request[Any, Any, Any], account: FromPath[str],
                 entry: FromPath[int]) -> Template:
    view, actor = await scoped(request, account)
    found = await web_of(request).services.quarantine.show(actor, entry)
    return page(request, "quarantine_entry.html", account=view,
                account_base=account_url(view.name), detail=found)


@post("/accounts/{account:str}/quarantine/{entry:int}/{action:str}", include_in_schema=False,
      request_max_body_size=MAX_FORM)
async def act(request: Request[Any, Any, Any], account: FromPath[str], entry: FromPath[int],
              action: FromPath[str], data: FormData) -> Redirect:
    """``release`` (``allow_sender=yes`` also allows the sender) or ``delete``."""
    view, actor = await scoped(request, account)
    service = web_of(request).services.quarantine
    back = f"{account_url(view.name)}quarantine"
    try:
        if action == "release":
            allow = data.get("allow_sender") == "yes"
            done = await service.release(actor, entry, allow_sender=allow)
            note = f" and {done.allowed} is on the allow list" if done.allowed else ""
            return redirect(request, back, f"Released to {done.entry.recipient}{note}.")
        if action == "delete":
            gone = await service.delete(actor, entry)
            return redirect(request, back, f"Deleted the message to {gone.recipient}.")
    except ServiceError as exc:
        if http_status(exc) == 404:
            raise
        return redirect(request, f"{back}/{entry}", str(exc), "error")
    return redirect(request, back, f"Unknown action {action!r}.", "error")


HANDLERS = [held, detail, act]
