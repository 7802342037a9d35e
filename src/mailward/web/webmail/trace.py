"""``/mail/trace``: the logged-in mailbox's own message trace — what happened to the mail
sent to or by this address (accepted, refused and why, held in the quarantine, delivered,
forwarded), searched as in the panel and told in the same plain words
(``web.panel.trace.describe``). Only this address's events show; any other trace is 404."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from litestar import Request, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Template

from mailward.directory import InvalidInput
from mailward.trace.search import OUTCOMES
from mailward.web.panel.trace import (
    FIELDS,
    form_of,
    form_query,
    more_cursor,
    parse_query,
    quarantine_ids,
    tell,
)
from mailward.web.webmail.common import MAIL_GUARD, mail_page, mailbox_of, webmail_of

__all__ = ["HANDLERS"]

BASE = "/mail/trace"
MAIL_FIELDS = tuple(f for f in FIELDS if f[0] != "peer")  # a client's IP is the operator's


def _trace_href(queue_id: str) -> str:
    return f"{BASE}/{quote(queue_id, safe='')}"


@get(BASE, include_in_schema=False, guards=[MAIL_GUARD])
async def search(request: Request[Any, Any, Any],
                 page_cursor: Annotated[str, QueryParameter(name="page")] = "") -> Template:
    mailbox = mailbox_of(request)
    form = {k: v for k, v in form_of(request).items() if k != "peer"}
    error, results = None, None
    try:
        results = await webmail_of(request).services.tracing.search_mailbox(
            mailbox, parse_query(form), page_cursor or None)
    except InvalidInput as exc:
        error = str(exc)
    return await mail_page(request, "mail/trace.html", status=400 if error else 200,
                           form=form, fields=MAIL_FIELDS, outcomes=OUTCOMES, results=results,
                           error=error, query=form_query(form), more=more_cursor(results),
                           paged=bool(page_cursor))


@get(f"{BASE}/{{trace_id:str}}", include_in_schema=False, guards=[MAIL_GUARD])
async def story(request: Request[Any, Any, Any], trace_id: FromPath[str],
                back: FromQuery[str] = "") -> Template:
    mailbox = mailbox_of(request)
    found = await webmail_of(request).services.tracing.story_mailbox(mailbox, trace_id)
    if found is None:
        raise NotFoundException("no such trace")
    mine = {e.detail.get("quarantine_id") for e in found.events if e.mailbox == mailbox}
    links = {q: f"/mail/quarantine/{q}" for q, _ in quarantine_ids(found.events)
             if q.isdigit() and (q in mine or int(q) in mine)}
    told = tell(found, trace_link=_trace_href, quarantine_links=links)
    return await mail_page(request, "mail/trace.html", story=found, told=told,
                           back_query=back)


HANDLERS = [search, story]
