"""``/panel/accounts/{account}/``: the account at a glance — its domains with their DNS
status, addresses by kind, mail waiting in the queue, storage use."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.params import FromPath
from litestar.response import Template

from mailward.directory.summary import account_summary
from mailward.dns.recheck import stored_statuses
from mailward.queue.admin import STATUSES
from mailward.web.panel.common import account_url, page, scoped, web_of


@get("/accounts/{account:str}/", include_in_schema=False)
async def dashboard(request: Request[Any, Any, Any], account: FromPath[str]) -> Template:
    view, actor = await scoped(request, account)
    services = web_of(request).services
    queue = {
        status: (await services.queue.list(actor, status=status, per_page=1)).total
        for status in STATUSES
    }
    return page(
        request,
        "dashboard.html",
        account=view,
        account_base=account_url(view.name),
        domains=await services.domains.list(actor),
        dns={s.domain: s for s in await stored_statuses(services.directory, actor)},
        summary=await account_summary(services.db, actor),
        queue=queue,
    )


HANDLERS = [dashboard]
