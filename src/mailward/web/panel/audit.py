"""``/panel/accounts/{account}/audit``: the account's audit log — who changed what, when
and from where — filtered by action, person, target and date range."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, get
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Template

from mailward.directory import InvalidInput
from mailward.web.panel.common import account_url, page, scoped, web_of

PER_PAGE = 50


def _day(text: str, end: bool) -> datetime | None:
    """``YYYY-MM-DD`` → the start (or end) of that day, UTC; '' → None."""
    if not text.strip():
        return None
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"{text!r} is not a date (YYYY-MM-DD)") from None
    return datetime.combine(day, time.max if end else time.min, tzinfo=UTC)


@get("/accounts/{account:str}/audit", include_in_schema=False)
async def audit(
    request: Request[Any, Any, Any],
    account: FromPath[str],
    action: FromQuery[str] = "",
    who: FromQuery[str] = "",
    target: FromQuery[str] = "",
    since: FromQuery[str] = "",
    until: FromQuery[str] = "",
    page_number: Annotated[int, QueryParameter(name="page")] = 1,
) -> Template:
    view, actor = await scoped(request, account)
    filters = {"action": action, "who": who, "target": target, "since": since, "until": until}
    error, found = None, None
    try:
        found = await web_of(request).services.audit.search(
            actor, action=action.strip() or None, who=who.strip() or None,
            target=target.strip() or None, since=_day(since, False), until=_day(until, True),
            page=max(page_number, 1), per_page=PER_PAGE)
    except InvalidInput as exc:
        error = str(exc)
    return page(request, "audit.html", status=400 if error else 200, account=view,
                account_base=account_url(view.name), found=found, error=error,
                filters=filters, query=urlencode({k: v for k, v in filters.items() if v}))


HANDLERS = [audit]
