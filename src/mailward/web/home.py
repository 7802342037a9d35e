"""``GET /``: the public home page naming the service and the operator's hosts."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Template

from mailward.web.context import context_of


@get("/", include_in_schema=False)
async def index(request: Request[Any, Any, Any]) -> Template:
    settings = context_of(request).settings
    return Template(
        template_name="index.html",
        context={
            "mx_hosts": settings.mx_hosts,
            "hosting_host": settings.hosting_host,
            "webmail_host": settings.webmail_host,
            "openapi_url": "/api/v1/openapi.json",
        },
    )
