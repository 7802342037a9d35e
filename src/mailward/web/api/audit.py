"""``/audit``: the audit log — who changed what, when, and from where."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.params import QueryParameter

from mailward.core.audit import AuditView
from mailward.directory.audit_log import MAX_PER_PAGE
from mailward.web.api.schemas import errors, out
from mailward.web.context import ActorDep, ServicesDep


class AuditPage(msgspec.Struct):
    items: list[AuditView]
    total: int
    page: int
    per_page: int
    pages: int


class AuditController(Controller):
    path = "/audit"
    tags = ["audit"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get(
        summary="The audit log, newest first, a page at a time",
        description="Every change made through the panel, the API or the CLI: when (`at`), "
        "the account it belongs to (`null`: operator-wide, e.g. a new account), who "
        "(`actor`, `role`), from where (`source`: `web IP`, `api IP` or `cli`), the "
        "`action` (e.g. `address.set-password`), its `target` and a `detail`. An account "
        "admin sees its own account's entries only. Passwords and tokens are never logged.",
        responses=errors(),
    )
    async def list_audit(
        self,
        actor: ActorDep,
        services: ServicesDep,
        action: Annotated[
            str | None, QueryParameter(description="action prefix, e.g. `address.`")
        ] = None,
        who: Annotated[str | None, QueryParameter(description="part of the actor's login")] = None,
        target: Annotated[str | None, QueryParameter(description="part of the target")] = None,
        since: Annotated[
            datetime | None, QueryParameter(description="ISO 8601; entries at or after it")
        ] = None,
        until: Annotated[
            datetime | None, QueryParameter(description="ISO 8601; entries at or before it")
        ] = None,
        page: Annotated[int, QueryParameter(ge=1)] = 1,
        per_page: Annotated[int, QueryParameter(ge=1, le=MAX_PER_PAGE)] = 50,
    ) -> AuditPage:
        found = await services.audit.search(
            actor, action=action, who=who, target=target, since=since, until=until,
            page=page, per_page=per_page,
        )
        return out(found, AuditPage)
