"""The recorder: stores event groups, logs them, counts them.

Two ways in:

* :meth:`Trace.add` — inside a transaction the caller already has (the spool's commit,
  the worker's outcome transaction): one executemany insert per group — or, inside
  :func:`batched` (a group commit), one for all groups of the transaction — committed or
  rolled back with the caller's work. Logging, metrics and counters follow the commit.
* :meth:`Trace.submit` / :meth:`Trace.write` — outside any transaction (refusals): groups
  wait in a bounded buffer and are written together, one transaction per flush, within
  ``FLUSH_DELAY`` (``write`` flushes at once and returns once committed).

Counters (:mod:`mailward.trace.counters`) are kept in memory and written at most every
``COUNTER_INTERVAL`` seconds, or by :meth:`Trace.flush`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, event, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from mailward.config import Settings
from mailward.db import Database
from mailward.db.models import TraceEventRow
from mailward.obs import metrics
from mailward.trace.counters import PendingCounts
from mailward.trace.events import EventGroup, Kind, Outcome, TraceEvent

log = logging.getLogger("mailward.trace")

FLUSH_DELAY = 0.2  # seconds a submitted group may wait for others to share its insert
COUNTER_INTERVAL = 10.0
MAX_PENDING_EVENTS = 20_000  # buffered events beyond this are dropped (oldest first)
MAX_DETAIL = 8192  # characters of JSON detail kept per event
EVENTS: Table = TraceEventRow.__table__  # type: ignore[assignment]
_LIMITS = {"sender": 320, "recipient": 320, "domain": 253, "mailbox": 320, "peer": 64,
           "subject": 200, "message_id": 250, "queue_id": 32}
_SESSION_KEY = "mailward.trace.pending"  # groups added in a session's open transaction
_LISTENING = "mailward.trace.listening"
_BATCH = "mailward.trace.batch"  # rows added inside ``batched``, inserted at its end


def _clip(value: str | None, limit: int) -> str | None:
    return None if value is None else value[:limit]


def _detail(detail: object) -> str:
    text = json.dumps(detail, default=str, separators=(",", ":"), ensure_ascii=False)
    if len(text) > MAX_DETAIL:  # keep it valid JSON: say what was cut
        text = json.dumps({"truncated": True, "start": text[:MAX_DETAIL // 2]})
    return text


@asynccontextmanager
async def batched(session: AsyncSession) -> AsyncIterator[None]:
    """Within this block, the groups :meth:`Trace.add` puts into ``session`` are inserted
    with one statement at its end (a group commit's many messages: one round trip)."""
    sync = session.sync_session
    if sync.info.get(_BATCH) is not None:  # nested: the outer block inserts
        yield
        return
    rows: list[dict[str, Any]] = []
    sync.info[_BATCH] = rows
    try:
        yield
    finally:
        del sync.info[_BATCH]
    if rows:
        await session.execute(insert(EVENTS), rows)


class Trace:
    """This process's trace recorder over one database."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.node = settings.lease_owner
        self._lock = threading.Lock()  # tests run roles on loops in several threads
        self._pending: list[tuple[EventGroup, list[dict[str, Any]]]] = []
        self._pending_events = 0
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._flush_scheduled = False
        self._counts = PendingCounts()
        self._counts_due = time.monotonic() + COUNTER_INTERVAL
        self._counts_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._inflight: set[asyncio.Future[None]] = set()  # flushes writing now

    # -- rows ------------------------------------------------------------------------

    def rows(self, group: EventGroup) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        rows = []
        for item in group.events:
            row: dict[str, Any] = {
                "at": item.at or now, "node": self.node, "trace_id": group.trace_id,
                "session_id": group.session_id, "kind": item.kind.value,
                "outcome": item.outcome.value, "detail": _detail(dict(item.detail)),
            }
            for name, limit in _LIMITS.items():
                row[name] = _clip(getattr(item, name), limit)
            for name in ("sender", "recipient", "mailbox"):  # searched as typed, any case
                if row[name] is not None:
                    row[name] = row[name].lower()
            rows.append(row)
        return rows

    # -- in the caller's transaction ---------------------------------------------------

    async def add(self, session: AsyncSession, group: EventGroup) -> None:
        """Insert ``group`` in ``session``'s open transaction (one statement); it is
        logged and counted once that transaction commits."""
        if not group.events:
            return
        rows = self.rows(group)
        sync = session.sync_session
        batch = sync.info.get(_BATCH)
        if batch is not None:  # inside ``batched``: one insert for every group at its end
            batch.extend(rows)
        else:
            await session.execute(insert(EVENTS), rows)
        if not sync.info.get(_LISTENING):  # once per session: it may run many transactions
            sync.info[_LISTENING] = True
            event.listen(sync, "after_commit", self._committed)
            event.listen(sync, "after_rollback", self._rolled_back)
        sync.info.setdefault(_SESSION_KEY, []).append((group, rows))

    def _committed(self, sync: Session) -> None:
        self._observe(sync.info.pop(_SESSION_KEY, []))

    @staticmethod
    def _rolled_back(sync: Session) -> None:
        sync.info.pop(_SESSION_KEY, None)

    # -- buffered --------------------------------------------------------------------

    def submit(self, group: EventGroup) -> None:
        """Write ``group`` soon, with whatever else is waiting (never raises)."""
        if group.events:
            self._enqueue(group, None)

    async def write(self, group: EventGroup) -> None:
        """Write ``group`` now (with whatever else is waiting); returns once committed or
        once the write failed (logged: a trace never fails the mail it describes)."""
        if not group.events:
            return
        done = asyncio.get_running_loop().create_future()
        self._enqueue(group, done, delay=0.0)
        await done

    async def flush(self) -> None:
        """Write every waiting group and the pending counters; returns once they, and
        any write already under way in this loop, are committed (or failed, logged)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            under_way = [done for done in self._inflight if done.get_loop() is loop]
        await self._flush(counts=True)
        if under_way:
            await asyncio.gather(*under_way)

    def _enqueue(self, group: EventGroup, done: asyncio.Future[None] | None, *,
                 delay: float = FLUSH_DELAY) -> None:
        rows = self.rows(group)
        with self._lock:
            self._pending.append((group, rows))
            self._pending_events += len(rows)
            if done is not None:
                self._waiters.append((done.get_loop(), done))
            while self._pending_events > MAX_PENDING_EVENTS and len(self._pending) > 1:
                _, dropped = self._pending.pop(0)
                self._pending_events -= len(dropped)
                metrics.TRACE_DROPPED.inc(len(dropped))
            schedule = not self._flush_scheduled or delay == 0.0
            self._flush_scheduled = True
        if schedule:
            self._spawn(self._flush_after(delay))

    def _spawn(self, work: Any) -> None:
        try:
            task = asyncio.get_running_loop().create_task(work)
        except RuntimeError:  # no loop here: the next flush takes it
            work.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush_after(self, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        await self._flush(counts=time.monotonic() >= self._counts_due)

    async def _flush(self, *, counts: bool) -> None:
        finished = asyncio.get_running_loop().create_future()
        with self._lock:
            self._inflight.add(finished)
            pending, self._pending, self._pending_events = self._pending, [], 0
            waiters, self._waiters = self._waiters, []
            self._flush_scheduled = False
            taken = PendingCounts()
            if counts and self._counts:
                taken, self._counts = self._counts, PendingCounts()
            if counts:
                self._counts_due = time.monotonic() + COUNTER_INTERVAL
        # the groups' own counts commit with them
        written = PendingCounts()
        for group, rows in pending:
            for item, row in zip(group.events, rows, strict=True):
                written.add(item, row["at"])
        written.merge(taken)
        try:
            if pending or written:
                async with self.db.session() as session, session.begin():
                    rows = [row for _, group_rows in pending for row in group_rows]
                    if rows:
                        await session.execute(insert(EVENTS), rows)
                    await written.write(session)
                self._observe(pending, count=False)
        except Exception:
            log.exception("writing %d trace groups failed", len(pending))
            metrics.TRACE_DROPPED.inc(sum(len(rows) for _, rows in pending))
            with self._lock:
                self._counts.merge(taken)
        finally:
            for loop, done in waiters:
                loop.call_soon_threadsafe(_resolve, done)
            with self._lock:
                self._inflight.discard(finished)
            finished.set_result(None)

    # -- after commit ----------------------------------------------------------------

    def _observe(self, groups: Iterable[tuple[EventGroup, list[dict[str, Any]]]], *,
                 count: bool = True) -> None:
        """Log and measure committed groups, and count them (unless already counted)."""
        with self._lock:
            for group, rows in groups:
                for item, row in zip(group.events, rows, strict=True):
                    if count:
                        self._counts.add(item, row["at"])
                    _measure(item)
                    _log(group, item, row)
            schedule = bool(self._counts) and not self._counts_scheduled
            self._counts_scheduled = self._counts_scheduled or schedule
        if schedule:
            self._spawn(self._counts_later())

    async def _counts_later(self) -> None:
        await asyncio.sleep(max(0.0, self._counts_due - time.monotonic()))
        with self._lock:
            self._counts_scheduled = False
        await self._flush(counts=True)

    async def close(self) -> None:
        """Write what is pending (at shutdown); then nothing is left for the timers."""
        await self.flush()
        for task in list(self._tasks):
            task.cancel()


def _resolve(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)


def _measure(item: TraceEvent) -> None:
    metrics.TRACE_EVENTS.inc()
    if item.counted:
        metrics.MESSAGES.labels(item.outcome.value).inc()
    detail = item.detail
    if item.kind is Kind.VERDICT and detail.get("filtered"):
        metrics.FILTER_VERDICTS.labels("spam" if detail.get("spam") else "clean").inc()
        score = detail.get("score")
        if isinstance(score, int | float):
            metrics.FILTER_SCORE.observe(score)
    if item.kind is Kind.ATTEMPT or (item.kind is Kind.MAILBOX
                                     and item.outcome is Outcome.DELIVERED):
        local = item.kind is Kind.MAILBOX or detail.get("server") == "local"
        metrics.DELIVERY_ATTEMPTS.labels(item.outcome.value,
                                         "local" if local else "relay").inc()
    latency = detail.get("latency_ms")
    if item.outcome is Outcome.DELIVERED and isinstance(latency, int | float):
        metrics.DELIVERY_LATENCY.observe(latency / 1000)


_LOGGED_DETAIL = ("reply", "reason", "score", "server", "ip", "duration_ms", "latency_ms",
                  "attempt", "folder", "helo", "tls", "size", "copy_queue_id",
                  "dsn_queue_id", "by", "action")


def _log(group: EventGroup, item: TraceEvent, row: dict[str, Any]) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    fields: dict[str, object] = {"event": item.kind.value, "outcome": item.outcome.value,
                                 "trace": group.trace_id}
    if group.session_id:
        fields["session"] = group.session_id
    for name, key in (("queue_id", "queue"), ("sender", "from"), ("recipient", "to"),
                      ("peer", "client"), ("message_id", "message_id")):
        if row[name] is not None:
            fields[key] = row[name]
    for key in _LOGGED_DETAIL:
        if key in item.detail:
            fields[key] = item.detail[key]
    log.info("%s %s", item.kind.value, item.outcome.value, extra={"fields": fields})
