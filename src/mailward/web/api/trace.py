"""``/trace``: the message trace — search, and one message's story; ``/dashboard``: the
mail-flow charts' numbers.

An operator sees every trace; an account admin (or a reseller) only traces of mail for or
from their domains, and in them only their own events and the message-level ones. A
trace outside the caller's scope answers 404, as one that does not exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from litestar import Controller, get
from litestar.params import FromPath, QueryParameter

from mailward.core.errors import NotFound
from mailward.trace.search import (
    DEFAULT_DAYS,
    DEFAULT_LIMIT,
    MAX_LIMIT,
    OUTCOMES,
    TraceQuery,
    TraceStory,
    TraceSummary,
)
from mailward.trace.stats import Dashboard
from mailward.web.api.schemas import errors
from mailward.web.context import ActorDep, ServicesDep


class TracePage(msgspec.Struct):
    items: list[TraceSummary]
    next: str | None  # pass as `after` for the next (older) page; null: nothing more


def _text(description: str) -> QueryParameter:
    return QueryParameter(description=description)


class TraceController(Controller):
    path = "/trace"
    tags = ["trace"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get(
        summary="Traces matching every given field, newest first",
        description="Each item is one message's trace as the caller may see it: the "
        "envelope, the recipients, subject, Message-ID, the client's IP, the queue ids of "
        "its copies and its final `outcome`. Without `since`, the last "
        f"{DEFAULT_DAYS} days before `until` (default: now) are searched. Pages are a "
        "keyset: pass `next` as `after` for the following page.",
        responses=errors(),
    )
    async def search_traces(
        self,
        actor: ActorDep,
        services: ServicesDep,
        sender: Annotated[str | None, _text("envelope sender")] = None,
        recipient: Annotated[str | None, _text("envelope recipient")] = None,
        subject: Annotated[str | None, _text("part of the subject, any case")] = None,
        message_id: Annotated[str | None, _text("the Message-ID header")] = None,
        queue_id: Annotated[str | None, _text("the trace id or any copy's queue id")] = None,
        ip: Annotated[str | None, _text("the sending client's IP address")] = None,
        since: Annotated[datetime | None, _text("ISO 8601; events at or after it")] = None,
        until: Annotated[datetime | None, _text("ISO 8601; events at or before it")] = None,
        outcome: Annotated[
            str | None, QueryParameter(description="the trace's final outcome",
                                       enum=list(OUTCOMES))
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
        after: Annotated[str | None, _text("`next` of the previous page")] = None,
    ) -> TracePage:
        query = TraceQuery(sender=sender, recipient=recipient, subject=subject,
                           message_id=message_id, queue_id=queue_id, peer=ip, since=since,
                           until=until, outcome=outcome, limit=limit)
        found = await services.tracing.search(actor, query, after)
        return TracePage(found, found[-1].cursor if len(found) == limit else None)

    @get("/{trace_id:str}", summary="One message's story: its events in order",
         description="`trace_id` may also be the queue id of any copy of the message.",
         responses=errors(404))
    async def get_trace(self, trace_id: FromPath[str], actor: ActorDep,
                        services: ServicesDep) -> TraceStory:
        story = await services.tracing.story(actor, trace_id)
        if story is None:
            raise NotFound(f"no trace {trace_id.strip()!r}")
        return story


class DashboardController(Controller):
    path = "/dashboard"
    tags = ["trace"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get(
        summary="The mail-flow charts' numbers for the last 24 hours, 7 or 30 days",
        description="Per point (hourly, six-hourly, daily): messages by outcome, the spam "
        "ratio, delivery latency percentiles (ms) and the queue depth; the top refused "
        "senders and recipients of the period. An operator sees every domain, a reseller "
        "its accounts and an account admin its own; `account` narrows to one account.",
        responses=errors(404),
    )
    async def get_dashboard(
        self,
        actor: ActorDep,
        services: ServicesDep,
        period: Annotated[
            Literal["24h", "7d", "30d"],
            QueryParameter(description="hourly, six-hourly or daily points"),
        ] = "24h",
        account: Annotated[str | None, _text("one account (its name)")] = None,
    ) -> Dashboard:
        account_id = None
        if account is not None:
            account_id = (await services.accounts.get(actor, account)).id
        return await services.tracing.dashboard(actor, period, account_id)
