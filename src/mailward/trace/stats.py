"""The dashboard's numbers, read from the aggregated tables only (never ``trace_events``).

``trace_counts`` gives the mail volume per metric and hour, ``trace_top`` the refused
senders and recipients, ``trace_gauges`` the sampled queue depth. A period is a row of
points: 24 hourly ones (``24h``), 28 of six hours (``7d``) or 30 days (``30d``), the last
one holding now; every point is summed over the caller's domains (``*``: all of them).
Latency percentiles are interpolated within the delivery latency buckets of each point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Integer, cast, extract, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailward.core.errors import InvalidInput
from mailward.db.models import TraceCount, TraceGauge, TraceTop
from mailward.trace.counters import ALL, LATENCY_BUCKETS_MS

__all__ = ["ALL", "METRICS", "PERIODS", "QUEUE_GAUGES", "Dashboard", "TopEntry",
           "dashboard", "percentile", "period_points"]

METRICS = ("accepted", "refused", "quarantined", "delivered", "deferred", "bounced")
QUEUE_GAUGES = ("queue_queued", "queue_deferred", "queue_active")
PERCENTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}
TOP_N = 10
PERIODS: dict[str, tuple[int, timedelta]] = {  # name: (points, step)
    "24h": (24, timedelta(hours=1)),
    "7d": (28, timedelta(hours=6)),
    "30d": (30, timedelta(days=1)),
}
LATENCY_PREFIX = "latency_le_"
BUCKETS: tuple[tuple[str, float], ...] = (
    *((f"{LATENCY_PREFIX}{ms}", float(ms)) for ms in LATENCY_BUCKETS_MS),
    (f"{LATENCY_PREFIX}inf", math.inf),
)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class TopEntry:
    value: str
    count: int


@dataclass(frozen=True, slots=True)
class Dashboard:
    """A period's charts. Lists run along ``points`` (each point's start, UTC); ``queue``
    holds the highest sampled depth of each point (0 without samples), ``latency`` the
    delivery latency percentiles in milliseconds (None without deliveries)."""

    period: str
    step_seconds: int
    points: list[datetime]
    series: dict[str, list[int]]
    totals: dict[str, int]
    spam_ratio: float | None  # spam / filtered over the period (None: nothing filtered)
    spam_ratio_series: list[float | None]
    top_refused_senders: list[TopEntry]
    top_refused_recipients: list[TopEntry]
    queue: dict[str, list[int]]
    latency: dict[str, list[float | None]]


def period_points(period: str, now: datetime) -> tuple[list[datetime], timedelta]:
    """The starts of the period's points (the last holds ``now``) and their length."""
    if period not in PERIODS:
        raise InvalidInput(f"period must be one of {', '.join(PERIODS)}")
    count, step = PERIODS[period]
    seconds = int(step.total_seconds())
    now = now.astimezone(UTC)
    last = EPOCH + timedelta(seconds=int((now - EPOCH).total_seconds()) // seconds * seconds)
    return [last - step * (count - 1 - i) for i in range(count)], step


def percentile(buckets: Sequence[tuple[float, int]], q: float) -> float | None:
    """The ``q`` quantile of observations counted per bucket (``(upper bound, count)``,
    bounds ascending, each observation in its smallest bucket), interpolated linearly
    within its bucket; the last finite bound when it falls in the open-ended one."""
    total = sum(n for _, n in buckets)
    if total <= 0:
        return None
    rank = q * total
    lower, seen = 0.0, 0
    for bound, n in buckets:
        if n and seen + n >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - seen) / n
        seen += n
        if not math.isinf(bound):
            lower = bound
    return lower


async def dashboard(session: AsyncSession, period: str, domains: Sequence[str],
                    accounts: Sequence[int] | None, now: datetime | None = None) -> Dashboard:
    """The charts of ``period`` summed over ``domains`` (``[ALL]``: everything), the queue
    depth summed over ``accounts`` (None: the whole platform's samples)."""
    points, step = period_points(period, now or datetime.now(UTC))
    start, end = points[0], points[-1] + step
    index = {point: i for i, point in enumerate(points)}
    seconds = int(step.total_seconds())
    counts: dict[str, list[int]] = {}
    if domains:
        rows = await session.execute(
            select(TraceCount.hour, TraceCount.metric, func.sum(TraceCount.n))
            .where(TraceCount.domain.in_(sorted(set(domains))), TraceCount.hour >= start,
                   TraceCount.hour < end)
            .group_by(TraceCount.hour, TraceCount.metric))
        for hour, metric, n in rows:
            i = index.get(_point_of(hour, seconds))
            if i is not None:
                counts.setdefault(metric, [0] * len(points))[i] += int(n or 0)
    zero = [0] * len(points)
    series = {metric: counts.get(metric, zero)[:] for metric in METRICS}
    totals = {metric: sum(values) for metric, values in counts.items()}
    filtered, spam = counts.get("filtered", zero), counts.get("spam", zero)
    latency: dict[str, list[float | None]] = {name: [] for name in PERCENTILES}
    for i in range(len(points)):
        buckets = [(bound, counts.get(metric, zero)[i]) for metric, bound in BUCKETS]
        for name, q in PERCENTILES.items():
            latency[name].append(percentile(buckets, q))
    return Dashboard(
        period=period, step_seconds=seconds, points=points, series=series, totals=totals,
        spam_ratio=_ratio(sum(spam), sum(filtered)),
        spam_ratio_series=[_ratio(s, f) for s, f in zip(spam, filtered, strict=True)],
        top_refused_senders=await _top(session, domains, "sender", start, end),
        top_refused_recipients=await _top(session, domains, "recipient", start, end),
        queue=await _queue(session, accounts, start, end, seconds, len(points)),
        latency=latency)


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _point_of(at: datetime, seconds: int) -> datetime:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return EPOCH + timedelta(seconds=int((at - EPOCH).total_seconds()) // seconds * seconds)


async def _top(session: AsyncSession, domains: Sequence[str], field: str, start: datetime,
               end: datetime) -> list[TopEntry]:
    if not domains:
        return []
    total = func.sum(TraceTop.n)
    rows = await session.execute(
        select(TraceTop.value, total)
        .where(TraceTop.domain.in_(sorted(set(domains))), TraceTop.hour >= start,
               TraceTop.hour < end, TraceTop.field == field)
        .group_by(TraceTop.value).order_by(total.desc(), TraceTop.value).limit(TOP_N))
    return [TopEntry(value, int(n)) for value, n in rows]


def _epoch(session: AsyncSession, column: Any) -> Any:
    """``column`` (a timestamp) as whole seconds since 1970, in SQL."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(extract("epoch", column), BigInteger)
    return cast(func.strftime("%s", column), Integer)


async def _queue(session: AsyncSession, accounts: Sequence[int] | None, start: datetime,
                 end: datetime, seconds: int, count: int) -> dict[str, list[int]]:
    """Per queue gauge, the highest sample of each point, summed over ``accounts``."""
    values = {name: [0] * count for name in QUEUE_GAUGES}
    if accounts is not None and not accounts:
        return values
    base = int((start - EPOCH).total_seconds())
    bucket = (_epoch(session, TraceGauge.at) - base) // seconds
    owner = (TraceGauge.account_id.is_(None) if accounts is None
             else TraceGauge.account_id.in_(sorted(set(accounts))))
    rows = await session.execute(
        select(TraceGauge.name, cast(bucket, Integer).label("bucket"),
               func.max(TraceGauge.value))
        .where(owner, TraceGauge.name.in_(QUEUE_GAUGES), TraceGauge.at >= start,
               TraceGauge.at < end)
        .group_by(TraceGauge.account_id, TraceGauge.name, "bucket"))
    for name, i, peak in rows:
        if 0 <= int(i) < count:
            values[name][int(i)] += int(peak or 0)
    return values
