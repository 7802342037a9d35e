"""``/quarantine``: mail the spam filter held — list, show, download, release, delete.

An account sees and touches only the held copies of its own addresses (another account's
id is a 404); an operator sees everything.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import Controller, Response, delete, get, post
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK

from mailward.quarantine.service import (
    MAX_PER_PAGE,
    QuarantineDetail,
    QuarantineView,
    Released,
)
from mailward.web.api.schemas import Request, errors, out
from mailward.web.context import ActorDep, ServicesDep

RFC822 = "message/rfc822"


class QuarantinePage(msgspec.Struct):
    items: list[QuarantineView]
    total: int
    page: int
    per_page: int
    pages: int


class ReleaseRequest(Request):
    allow_sender: bool = False


class QuarantineController(Controller):
    path = "/quarantine"
    tags = ["quarantine"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get(
        summary="Held mail, newest first, a page at a time",
        description="One item per recipient whose copy was held. `status` is `held` "
        "(waiting; the default), `released` or `all`.",
        responses=errors(),
    )
    async def list_quarantine(
        self,
        actor: ActorDep,
        services: ServicesDep,
        address: FromQuery[str | None] = None,
        domain: FromQuery[str | None] = None,
        status: Annotated[
            Literal["held", "released", "all"],
            QueryParameter(description="held (waiting), released, or all"),
        ] = "held",
        page: Annotated[int, QueryParameter(ge=1)] = 1,
        per_page: Annotated[int, QueryParameter(ge=1, le=MAX_PER_PAGE)] = 50,
    ) -> QuarantinePage:
        found = await services.quarantine.list(
            actor, address=address, domain=domain, status=None if status == "all" else status,
            page=page, per_page=per_page)
        return out(found, QuarantinePage)

    @get("/{entry_id:int}",
         summary="One held message: its entry, the filter's findings, its header block",
         responses=errors(404))
    async def get_entry(self, entry_id: FromPath[int], actor: ActorDep,
                        services: ServicesDep) -> QuarantineDetail:
        return await services.quarantine.show(actor, entry_id)

    @get(
        "/{entry_id:int}/raw",
        summary="Download the held message as it arrived (message/rfc822)",
        media_type=RFC822,
        responses={**errors(404),
                   200: ResponseSpec(data_container=bytes, media_type=RFC822,
                                     description="the raw message")},
    )
    async def get_raw(self, entry_id: FromPath[int], actor: ActorDep,
                      services: ServicesDep) -> Response[bytes]:
        data = await services.quarantine.content(actor, entry_id)
        return Response(data, media_type=RFC822, headers={
            "Content-Disposition": f'attachment; filename="quarantine-{entry_id}.eml"'})

    @post(
        "/{entry_id:int}/release",
        status_code=HTTP_200_OK,
        summary="Deliver a held message to its recipient",
        description="Queues the message for its recipient alone and teaches the domain's "
        "model it is not spam; `allow_sender` also puts its From address on the "
        "recipient's allow list (`allowed`, `null` when the message has no single From "
        "address). A message released already is a 400.",
        responses=errors(404),
    )
    async def release(self, entry_id: FromPath[int], actor: ActorDep, services: ServicesDep,
                      data: JSONBody[ReleaseRequest | None] = None) -> Released:
        allow = data.allow_sender if data is not None else False
        return await services.quarantine.release(actor, entry_id, allow_sender=allow)

    @delete(
        "/{entry_id:int}",
        status_code=HTTP_200_OK,
        summary="Delete a held message for its recipient, without delivering it",
        description="Answers the entry as it was before.",
        responses=errors(404),
    )
    async def delete_entry(self, entry_id: FromPath[int], actor: ActorDep,
                           services: ServicesDep) -> QuarantineView:
        return await services.quarantine.delete(actor, entry_id)
