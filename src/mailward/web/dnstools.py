"""Public DNS lookup pages ("MX lookup", "A lookup": docs/procedures.md): no login.

``GET /tools/dns?type=MX&name=example.com`` shows every record with the doc's columns
(Name, TTL, Class, Type, Priority, Answer), or says why there is none (NXDOMAIN, no
records of the type, timeout, server failure). Only the configured resolvers are asked:
a public page must not make us query servers a visitor names. Rate-limited per client
address, since each lookup costs us DNS queries.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Router, get
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.params import FromQuery, QueryParameter
from litestar.response import Template

from mailward.dns.lookup import DnsTools
from mailward.dns.model import Lookup, Outcome, outcome_message
from mailward.web.context import WebDep

__all__ = ["LOOKUP_TYPES", "RATE_LIMIT", "RATE_LIMIT_STORE", "tools_router"]

LOOKUP_TYPES = ("MX", "A", "AAAA", "CNAME", "TXT", "NS", "SOA")
RATE_LIMIT = ("minute", 30)  # lookups per client address
RATE_LIMIT_STORE = "tools_rate_limit"  # the app's store of the counters (shared by nodes)
_FAILED = (Outcome.TIMEOUT, Outcome.SERVFAIL)


@get("/dns", include_in_schema=False, name="dns-lookup")
async def dns_lookup(
    web: WebDep,
    name: FromQuery[str] = "",
    type_: Annotated[str, QueryParameter(name="type")] = "MX",
) -> Template:
    rdtype = type_.strip().upper()
    context: dict[str, object] = {"name": name.strip(), "rdtype": rdtype,
                                  "types": LOOKUP_TYPES, "lookup": None, "error": None}
    status = 200
    if rdtype not in LOOKUP_TYPES:
        context["rdtype"] = "MX"
        context["error"] = (f"unsupported record type {type_!r}: "
                            f"use one of {', '.join(LOOKUP_TYPES)}")
        status = 400
    elif name.strip():
        try:
            lookup: Lookup = await DnsTools(web.settings).lookup(name.strip(), rdtype)
        except ValueError as exc:  # not a DNS name
            context["error"] = str(exc)
            status = 400
        else:
            context["lookup"] = lookup
            context["message"] = ("" if lookup.outcome is Outcome.ANSWER
                                  else outcome_message(lookup))
            context["message_kind"] = "error" if lookup.outcome in _FAILED else "info"
    return Template(template_name="dns_lookup.html", context=context, status_code=status)


def tools_router() -> Router:
    """``/tools``: the public pages, behind a per-address rate limit."""
    limit = RateLimitConfig(rate_limit=RATE_LIMIT, store=RATE_LIMIT_STORE)  # type: ignore[arg-type]
    return Router(path="/tools", route_handlers=[dns_lookup], middleware=[limit.middleware])
