"""Pruning what the trace keeps: events after ``trace_retention_days``, the dashboard's
counters, top lists and gauges after that or 31 days (whichever is longer: the 30-day
charts stay whole), and webmail's sent-mail delivery reports after the retention.

Each batch is its own short transaction (deleting at most ``batch`` rows, found on an
index), so pruning never holds locks long; one run does at most ``max_batches`` batches
per table and the next run (hourly) goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, delete, exists, select

from mailward.db import Database
from mailward.db.models import (
    QueuedMessage,
    TraceCount,
    TraceEventRow,
    TraceGauge,
    TraceTop,
    WebmailDelivery,
    WebmailOutbox,
)

__all__ = ["BATCH", "COUNTER_DAYS", "Pruned", "prune"]

BATCH = 5000
MAX_BATCHES = 200
COUNTER_DAYS = 31  # the counters outlive the events at least this long (the 30-day charts)


@dataclass(frozen=True, slots=True)
class Pruned:
    """How many rows one run deleted, per table."""

    events: int = 0
    counts: int = 0
    top: int = 0
    gauges: int = 0
    outbox: int = 0
    deliveries: int = 0


async def prune(db: Database, retention_days: int, now: datetime, *, batch: int = BATCH,
                max_batches: int = MAX_BATCHES) -> Pruned:
    """Delete what is older than the retention (see the module's docstring)."""
    cutoff = now - timedelta(days=retention_days)
    counters = now - timedelta(days=max(retention_days, COUNTER_DAYS))

    async def batches(table: Any, key: Any, old: Any) -> int:
        """Delete rows matching ``old`` by primary key ``key``, ``batch`` at a time."""
        total = 0
        for _ in range(max_batches):
            async with db.session() as session, session.begin():
                result = await session.execute(delete(table).where(
                    key.in_(select(key).where(old).limit(batch))))
            assert isinstance(result, CursorResult)
            total += result.rowcount
            if result.rowcount < batch:
                break
        return total

    events = await batches(TraceEventRow, TraceEventRow.id, TraceEventRow.at < cutoff)
    async with db.session() as session, session.begin():
        counts = await session.execute(delete(TraceCount).where(TraceCount.hour < counters))
        top = await session.execute(delete(TraceTop).where(TraceTop.hour < counters))
    assert isinstance(counts, CursorResult) and isinstance(top, CursorResult)
    gauges = await batches(TraceGauge, TraceGauge.id, TraceGauge.at < counters)
    outbox, deliveries = await _webmail(db, cutoff, batch, max_batches)
    deliveries += await batches(WebmailDelivery, WebmailDelivery.id,
                                WebmailDelivery.at < cutoff)
    return Pruned(events=events, counts=counts.rowcount, top=top.rowcount, gauges=gauges,
                  outbox=outbox, deliveries=deliveries)


async def _webmail(db: Database, cutoff: datetime, batch: int, max_batches: int
                   ) -> tuple[int, int]:
    """Sent-mail records released before ``cutoff`` whose message left the queue (their
    delivery report is the webmail's trace of a sent message; a message still queued
    keeps its row, which holds it back while ``release_at`` is ahead), with their
    delivery outcomes."""
    outbox = deliveries = 0
    for _ in range(max_batches):
        async with db.session() as session, session.begin():
            rows = (await session.execute(
                select(WebmailOutbox.id, WebmailOutbox.queue_id)
                .where(WebmailOutbox.release_at < cutoff,
                       ~exists().where(QueuedMessage.queue_id == WebmailOutbox.queue_id))
                .order_by(WebmailOutbox.release_at).limit(batch))).all()
            if rows:
                gone = await session.execute(delete(WebmailDelivery).where(
                    WebmailDelivery.queue_id.in_([queue_id for _, queue_id in rows])))
                await session.execute(delete(WebmailOutbox).where(
                    WebmailOutbox.id.in_([row_id for row_id, _ in rows])))
                assert isinstance(gone, CursorResult)
                deliveries += gone.rowcount
        outbox += len(rows)
        if len(rows) < batch:
            break
    return outbox, deliveries
