"""``/quarantine/release``: the page behind the release links of the quarantine digest.

No login: the link's signed token is the authority (:mod:`mailward.quarantine.links`).
``GET`` only shows the message and a Release button; the ``POST`` of that button (with the
token and the CSRF token) releases it. Never a release on GET: the link scanners of mail
security gateways fetch every link in a mail, and would release the spam themselves.
A link works once; an expired, altered or malformed one is a 400 page saying why, and so
is every other refusal here (a POST failing the CSRF check, too many requests): a page for
the person who clicked, never the API's JSON.
Rate-limited per client address, like the public DNS tools.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Router, get, post
from litestar.exceptions import HTTPException
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.params import FromQuery
from litestar.response import Template

from mailward.directory import ServiceError
from mailward.quarantine.links import AlreadyReleased, ReleaseLinks
from mailward.web.context import WebDep
from mailward.web.errors import http_status
from mailward.web.panel.common import Form, client_of

__all__ = ["RATE_LIMIT", "RATE_LIMIT_STORE", "quarantine_router"]

RATE_LIMIT = ("minute", 30)  # requests per client address
RATE_LIMIT_STORE = "quarantine_rate_limit"  # its own counters, not the DNS tools'
MAX_FORM = 4 * 1024
TEMPLATE = "quarantine_release.html"
NO_STORE = {"Cache-Control": "no-store"}  # the pages name a message and hold a token


def _page(state: str, *, status: int = 200, **context: Any) -> Template:
    """The one page in one of its states: confirm, released, already, error."""
    return Template(template_name=TEMPLATE, status_code=status, headers=NO_STORE,
                    context={"state": state, **context})


def _refused(exc: ServiceError) -> Template:
    """A link that cannot release: already used (200), deleted (404), bad (400)."""
    if isinstance(exc, AlreadyReleased):
        return _page("already", reason=str(exc))
    return _page("error", status=http_status(exc), reason=str(exc))


# what a refusal means to the person who clicked (Litestar's own details are terse):
# the page's heading and its reason
REFUSALS = {
    403: ("This page has expired", "this page was not sent from the release link (or it "
          "was open too long): open the link from the digest again"),
    429: ("Too many requests", "too many requests from your address: try again in a minute"),
}


def _http_refusal(_request: Request[Any, Any, Any], exc: HTTPException) -> Template:
    """Litestar's own refusals (CSRF 403, rate limit 429, bad form 400) as the page."""
    title, reason = REFUSALS.get(exc.status_code, ("", exc.detail))
    page = _page("error", status=exc.status_code, title=title, reason=reason)
    page.headers.update(exc.headers or {})  # a 429 keeps its RateLimit-* fields
    return page


@get("/release", include_in_schema=False, name="quarantine-release-form")
async def release_form(web: WebDep, t: FromQuery[str] = "") -> Template:
    """Show the message the link names and a Release button (nothing changes here)."""
    try:
        target = await ReleaseLinks(web.services.quarantine, web.settings).check(t)
    except ServiceError as exc:
        return _refused(exc)
    if target.entry.status != "held":
        return _page("already", reason=f"this message was already released to "
                                       f"{target.entry.recipient}", entry=target.entry)
    return _page("confirm", entry=target.entry, token=t)


@post("/release", include_in_schema=False, name="quarantine-release",
      request_max_body_size=MAX_FORM)
async def release(request: Request[Any, Any, Any], web: WebDep,
                  data: Annotated[dict[str, str], Form]) -> Template:
    """Release the message the posted token names, once."""
    try:
        released = await ReleaseLinks(web.services.quarantine, web.settings).release(
            data.get("t", ""), client_of(request))
    except ServiceError as exc:
        return _refused(exc)
    return _page("released", entry=released.entry)


def quarantine_router() -> Router:
    """``/quarantine``: the release page, behind a per-address rate limit (its own
    counter, not shared with the DNS tools)."""
    limit = RateLimitConfig(rate_limit=RATE_LIMIT, store=RATE_LIMIT_STORE)  # type: ignore[arg-type]
    return Router(path="/quarantine", route_handlers=[release_form, release],
                  middleware=[limit.middleware],
                  exception_handlers={HTTPException: _http_refusal})
