"""``/queue``: the mail queue — list, show, retry now, delete (without a bounce).

An account sees and touches only the queued recipients of its own domains; an operator
sees everything, including mail leaving us (forwards and bounces).
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, delete, get, post
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.status_codes import HTTP_200_OK

from mailward.queue.admin import MAX_PER_PAGE, STATUSES, QueueEntry, QueueMessageView
from mailward.web.api.schemas import errors, out
from mailward.web.context import ActorDep, ServicesDep


class QueuePage(msgspec.Struct):
    items: list[QueueEntry]
    total: int
    page: int
    per_page: int
    pages: int


class QueueController(Controller):
    path = "/queue"
    tags = ["queue"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get(
        summary="Queued recipients, oldest message first, a page at a time",
        description="One item per recipient of each queued message. `status` is `queued` "
        "(not tried yet), `deferred` (failed temporarily, retried at `next_attempt_at`), "
        "`active` (being delivered) or `held` (deferred because the domain has no mail "
        "server settings).",
        responses=errors(),
    )
    async def list_queue(
        self,
        actor: ActorDep,
        services: ServicesDep,
        domain: FromQuery[str | None] = None,
        status: Annotated[
            str | None,
            QueryParameter(description="only recipients in this state", enum=list(STATUSES)),
        ] = None,
        page: Annotated[int, QueryParameter(ge=1)] = 1,
        per_page: Annotated[int, QueryParameter(ge=1, le=MAX_PER_PAGE)] = 50,
    ) -> QueuePage:
        found = await services.queue.list(
            actor, domain=domain, status=status, page=page, per_page=per_page
        )
        return out(found, QueuePage)

    @get("/{queue_id:str}", summary="One queued message and its recipients",
         responses=errors(404))
    async def get_message(
        self, queue_id: FromPath[str], actor: ActorDep, services: ServicesDep
    ) -> QueueMessageView:
        return await services.queue.show(actor, queue_id)

    @post(
        "/{queue_id:str}/retry",
        status_code=HTTP_200_OK,
        summary="Make the message's waiting recipients due now",
        description="Queued, deferred and held recipients are tried at once; `active` ones "
        "are being delivered already and are left alone.",
        responses=errors(404),
    )
    async def retry_message(
        self, queue_id: FromPath[str], actor: ActorDep, services: ServicesDep
    ) -> QueueMessageView:
        return await services.queue.retry(actor, queue_id)

    @delete(
        "/{queue_id:str}",
        status_code=HTTP_200_OK,
        summary="Remove the message's recipients from the queue (no bounce is sent)",
        description="Answers the message as it was before; an account removes only the "
        "recipients of its own domains.",
        responses=errors(404),
    )
    async def delete_message(
        self, queue_id: FromPath[str], actor: ActorDep, services: ServicesDep
    ) -> QueueMessageView:
        return await services.queue.delete(actor, queue_id)
