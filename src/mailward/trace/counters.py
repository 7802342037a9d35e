"""The charts' counters, added up in memory and written now and then.

Every recorded event that counts (:data:`~mailward.trace.events.COUNTED`) adds one to its
domain's hourly counter and to the ``*`` total; refusals also count their sender and
recipient for the "top refused" lists, and deliveries their latency bucket. A flush adds
the pending increments to ``trace_counts``/``trace_top`` with one upsert each (sorted, so
two processes never lock rows in opposite orders).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from mailward.db.models import TraceCount, TraceTop
from mailward.trace.events import Kind, Outcome, TraceEvent

ALL = "*"  # the domain of the all-domains totals
LATENCY_BUCKETS_MS = (100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 900000,
                      3600000)
MAX_TOP_KEYS = 5000  # distinct refused senders/recipients kept between two flushes
COUNTS: Table = TraceCount.__table__  # type: ignore[assignment]
TOP: Table = TraceTop.__table__  # type: ignore[assignment]


def latency_metric(latency_ms: float) -> str:
    for bound in LATENCY_BUCKETS_MS:
        if latency_ms <= bound:
            return f"latency_le_{bound}"
    return "latency_le_inf"


def hour_of(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


class PendingCounts:
    """Increments not yet written."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, datetime, str]] = Counter()
        self.top: Counter[tuple[str, datetime, str, str]] = Counter()
        self.dropped = 0  # top keys not kept (more distinct values than MAX_TOP_KEYS)

    def __bool__(self) -> bool:
        return bool(self.counts or self.top)

    def add(self, event: TraceEvent, at: datetime) -> None:
        if not event.counted:
            return
        hour = hour_of(at)
        metrics = [event.outcome.value]
        if event.kind is Kind.VERDICT and event.detail.get("filtered"):
            metrics.append("filtered")
            if event.detail.get("spam"):
                metrics.append("spam")
        latency = event.detail.get("latency_ms")
        if event.outcome is Outcome.DELIVERED and isinstance(latency, int | float):
            metrics.append(latency_metric(latency))
        domains = (ALL, event.domain) if event.domain else (ALL,)
        for domain in domains:
            for metric in metrics:
                self.counts[(domain, hour, metric)] += 1
        if event.outcome is Outcome.REFUSED:
            for name, value in (("sender", event.sender), ("recipient", event.recipient)):
                if value is None:
                    continue
                for domain in domains:
                    key = (domain, hour, name, value.lower()[:320] or "<>")
                    if key in self.top or len(self.top) < MAX_TOP_KEYS:
                        self.top[key] += 1
                    else:
                        self.dropped += 1

    def merge(self, other: PendingCounts) -> None:
        """Take back increments whose write failed (they are tried again next time)."""
        self.counts.update(other.counts)
        for key, n in other.top.items():
            if key in self.top or len(self.top) < MAX_TOP_KEYS:
                self.top[key] += n

    async def write(self, session: AsyncSession) -> None:
        """Add the increments to the tables, in the caller's transaction."""
        if self.counts:
            await _upsert(session, COUNTS, ("domain", "hour", "metric"),
                          [{"domain": d, "hour": h, "metric": m, "n": n}
                           for (d, h, m), n in sorted(self.counts.items())])
        if self.top:
            await _upsert(session, TOP, ("domain", "hour", "field", "value"),
                          [{"domain": d, "hour": h, "field": f, "value": v, "n": n}
                           for (d, h, f, v), n in sorted(self.top.items())])


async def _upsert(session: AsyncSession, table: Table, keys: tuple[str, ...],
                  rows: list[dict[str, Any]]) -> None:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=list(keys), set_={"n": table.c.n + statement.excluded.n})
    await session.execute(statement, rows)
