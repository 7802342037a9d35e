"""``/panel/accounts/{account}/``: the account at a glance — its domains with their DNS
status, addresses by kind, mail waiting in the queue, storage use, and its mail flow in
charts; ``/panel/dashboard``: the charts of everything an operator (or a reseller) sees,
or of one account picked from a list.

The charts (``web.charts``, server-rendered SVG) cover the last 24 hours, 7 days or 30
days (``?period=``) and read the trace service's aggregated counters only: mail received
(accepted, quarantined, refused) and delivered (delivered, deferred, bounced), the spam
ratio, queue depth, delivery latency percentiles and the most refused senders and
recipients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER
from markupsafe import Markup

from mailward.directory import Actor
from mailward.directory.summary import account_summary
from mailward.dns.recheck import stored_statuses
from mailward.queue.admin import STATUSES
from mailward.trace.stats import PERIODS, Dashboard
from mailward.web.charts import (
    Series,
    bar_list,
    count_label,
    ms_label,
    numbers_table,
    percent_label,
    time_chart,
)
from mailward.web.panel.common import account_url, page, scoped, user_of, web_of

__all__ = ["HANDLERS", "Chart", "charts_of"]

DEFAULT_PERIOD = "24h"
PERIOD_NAMES = {"24h": "24 hours", "7d": "7 days", "30d": "30 days"}
HALF = 420  # the width of a chart in half a row (a wide one: the charts' default)
RECEIVED = ("accepted", "quarantined", "refused")
DELIVERY = ("delivered", "deferred", "bounced")
QUEUE = (("queue_queued", "queued", "queued"), ("queue_deferred", "deferred", "deferred"),
         ("queue_active", "being delivered", "active"))


@dataclass(frozen=True, slots=True)
class Chart:
    """A chart of the dashboard: its heading, a sentence under it, the SVG and the same
    numbers as a table (``None``: the SVG's description says it all)."""

    key: str
    title: str
    note: str
    svg: Markup
    table: Markup | None = None
    wide: bool = False


def _per(dash: Dashboard) -> str:
    return {3600: "hour", 21600: "6 hours", 86400: "day"}.get(
        dash.step_seconds, f"{dash.step_seconds // 60} minutes")


def charts_of(dash: Dashboard) -> list[Chart]:
    """The dashboard's charts of ``dash``, in the order the page shows them."""
    per = _per(dash)
    points = dash.points
    received = [Series(m, dash.series.get(m, []), m) for m in RECEIVED]
    delivery = [Series(m, dash.series.get(m, []), m) for m in DELIVERY]
    spam = [Series("spam", [None if r is None else r * 100 for r in dash.spam_ratio_series],
                   "spam")]
    queue = [Series(label, dash.queue.get(name, []), key) for name, label, key in QUEUE]
    latency = [Series(name, dash.latency.get(name, []), name) for name in ("p50", "p90", "p99")]
    ratio = ("nothing was filtered" if dash.spam_ratio is None
             else f"{percent_label(round(dash.spam_ratio * 100, 1))} of the filtered mail "
                  "was spam")
    senders = [(e.value or "<>", float(e.count)) for e in dash.top_refused_senders]
    recipients = [(e.value, float(e.count)) for e in dash.top_refused_recipients]
    return [
        Chart("received", "Mail received", f"Recipients per {per}: accepted, held in the "
              "quarantine or refused (at RCPT, or after the filter's verdict).",
              time_chart("Mail received", points, received, kind="bars",
                         description=f"Recipients per {per}."),
              numbers_table("mail received, numbers", points, received), wide=True),
        Chart("delivery", "Delivery", f"Delivery attempts per {per}: delivered (to another "
              "server or a mailbox), deferred (tried again later) or bounced.",
              time_chart("Delivery", points, delivery, kind="bars",
                         description=f"Delivery attempts per {per}."),
              numbers_table("delivery, numbers", points, delivery), wide=True),
        Chart("spam", "Spam ratio", f"Over the period {ratio}.",
              time_chart("Spam ratio", points, spam, fmt=percent_label, summable=False,
                         y_max=100, integer=False, empty_text="Nothing filtered.",
                         width=HALF,
                         description=f"Share of the filtered mail that was spam, per "
                                     f"{per}; over the period {ratio}."),
              numbers_table("spam ratio, numbers", points, spam, fmt=percent_label)),
        Chart("queue", "Queue depth", f"Recipients waiting in the queue (the highest sample "
              f"of each {per}).",
              time_chart("Queue depth", points, queue, summable=False,
                         empty_text="The queue was empty.", width=HALF,
                         description="Recipients in the queue by state."),
              numbers_table("queue depth, numbers", points, queue)),
        Chart("latency", "Delivery latency", "From queued to delivered: half of the mail "
              "took at most p50, 90 % at most p90, 99 % at most p99.",
              time_chart("Delivery latency", points, latency, fmt=ms_label, summable=False,
                         empty_text="Nothing delivered.",
                         description=f"Delivery latency percentiles per {per}."),
              numbers_table("delivery latency, numbers", points, latency, fmt=ms_label),
              wide=True),
        Chart("senders", "Top refused senders", "The senders whose mail was refused most.",
              bar_list("Top refused senders", senders, width=HALF,
                       empty_text="Nothing refused.",
                       description="Refused recipients by sender.")),
        Chart("recipients", "Top refused recipients",
              "The recipients mail was refused for most.",
              bar_list("Top refused recipients", recipients, width=HALF,
                       empty_text="Nothing refused.",
                       description="Refused mail by recipient.")),
    ]


def _period(period: str) -> str:
    return period if period in PERIODS else DEFAULT_PERIOD


def _totals(dash: Dashboard) -> list[tuple[str, str]]:
    return [(m, count_label(dash.totals.get(m, 0))) for m in (*RECEIVED, *DELIVERY)]


async def _flow(request: Request[Any, Any, Any], actor: Actor, period: str,
                account_id: int | None = None) -> dict[str, Any]:
    """The template context of the charts."""
    dash = await web_of(request).services.tracing.dashboard(actor, period, account_id)
    return {"period": period, "periods": PERIOD_NAMES, "charts": charts_of(dash),
            "totals": _totals(dash)}


@get("/accounts/{account:str}/", include_in_schema=False)
async def dashboard(request: Request[Any, Any, Any], account: FromPath[str],
                    period: FromQuery[str] = DEFAULT_PERIOD) -> Template:
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
        **await _flow(request, actor, _period(period), view.id),
    )


@get("/dashboard", include_in_schema=False)
async def overview(request: Request[Any, Any, Any], period: FromQuery[str] = DEFAULT_PERIOD,
                   account: FromQuery[str] = "") -> Template | Redirect:
    """Operators and resellers: the charts of everything they see, or of ``account``.
    An account admin has theirs on their account's page."""
    user = user_of(request)
    if user.mailbox is not None:
        raise NotFoundException("no such page")
    services = web_of(request).services
    accounts = await services.accounts.list(user.actor)
    if not user.manages_accounts:
        if not accounts:
            raise NotFoundException("no such page")
        return Redirect(f"{account_url(accounts[0].name)}?period={_period(period)}",
                        status_code=HTTP_303_SEE_OTHER)
    chosen = next((a for a in accounts if a.name == account), None) if account else None
    if account and chosen is None:
        raise NotFoundException("no such account")
    return page(request, "dashboard.html", overview=True, accounts=accounts, chosen=chosen,
                **await _flow(request, user.actor, _period(period),
                              chosen.id if chosen else None))


HANDLERS = [dashboard, overview]
