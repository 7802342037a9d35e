"""``GET /``: the public home page naming the service and the operator's hosts; on the
webmail host (``settings.webmail_host``), the webmail."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from mailward.web.context import context_of


def _host(request: Request[Any, Any, Any]) -> str:
    """The request's host name, without port or trailing dot, lower case."""
    host = request.headers.get("host", "").strip().lower()
    if host.startswith("["):  # an IPv6 literal
        return host.partition("]")[0] + "]"
    return host.rpartition(":")[0].rstrip(".") if ":" in host else host.rstrip(".")


@get("/", include_in_schema=False)
async def index(request: Request[Any, Any, Any]) -> Template | Redirect:
    settings = context_of(request).settings
    if _host(request) == settings.webmail_host.lower().rstrip("."):
        return Redirect("/mail", status_code=HTTP_303_SEE_OTHER)
    return Template(
        template_name="index.html",
        context={
            "mx_hosts": settings.mx_hosts,
            "hosting_host": settings.hosting_host,
            "webmail_host": settings.webmail_host,
            "openapi_url": "/api/v1/openapi.json",
        },
    )
