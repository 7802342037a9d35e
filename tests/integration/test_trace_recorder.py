"""The trace recorder on both backends: groups written in the caller's transaction (and
gone with its rollback), buffered groups sharing one flush, counters added up across
flushes, hostile values clipped."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from sqlalchemy import event, func, select

from mailward.config import Settings
from mailward.db import Database
from mailward.db.models import TraceCount, TraceEventRow, TraceTop
from mailward.trace.counters import ALL
from mailward.trace.events import EventGroup, Kind, Outcome, TraceEvent
from mailward.trace.ids import new_id
from mailward.trace.recorder import Trace, batched

AT = datetime(2026, 12, 7, 10, 15, tzinfo=UTC)
HOUR = AT.replace(minute=0)


def refused(recipient: str, sender: str = "spammer@bad.example") -> TraceEvent:
    return TraceEvent(Kind.RCPT, Outcome.REFUSED, sender=sender, recipient=recipient,
                      domain=recipient.rpartition("@")[2], mailbox=recipient, at=AT,
                      detail={"reply": "550 5.1.1 No such user here"})


def delivered(recipient: str, latency_ms: int) -> TraceEvent:
    return TraceEvent(Kind.MAILBOX, Outcome.DELIVERED, recipient=recipient,
                      domain="acme.example", mailbox=recipient, at=AT,
                      detail={"folder": "INBOX", "latency_ms": latency_ms})


async def rows(db: Database, trace_id: str | None = None) -> list[TraceEventRow]:
    async with db.session() as session:
        query = select(TraceEventRow).order_by(TraceEventRow.id)
        if trace_id is not None:
            query = query.where(TraceEventRow.trace_id == trace_id)
        return list((await session.scalars(query)).all())


async def counts(db: Database) -> dict[tuple[str, str], int]:
    async with db.session() as session:
        found = await session.execute(select(TraceCount.domain, TraceCount.metric,
                                             TraceCount.n).where(TraceCount.hour == HOUR))
        return {(d, m): n for d, m, n in found}


async def test_add_commits_with_the_callers_transaction(settings: Settings) -> None:
    db = Database(settings.db_url)
    trace = Trace(db, settings)
    kept, lost = new_id(), new_id()
    try:
        async with db.session() as session, session.begin():
            await trace.add(session, EventGroup(kept, [
                TraceEvent(Kind.CONNECT, peer="192.0.2.7", detail={"helo": "mx.example"}),
                delivered("bob@acme.example", 1200)], session_id="S1"))
        try:
            async with db.session() as session, session.begin():
                await trace.add(session, EventGroup(lost, [delivered("al@acme.example", 5)]))
                raise RuntimeError("the caller's work failed")
        except RuntimeError:
            pass
        await trace.flush()
        stored = await rows(db)
        assert [(r.trace_id, r.kind, r.outcome) for r in stored] == [
            (kept, "connect", "info"), (kept, "mailbox", "delivered")]
        assert stored[0].session_id == "S1" and stored[0].node == settings.lease_owner
        assert json.loads(stored[0].detail) == {"helo": "mx.example"}
        # only the committed group counted: its domain and the all-domains total
        assert await counts(db) == {
            ("acme.example", "delivered"): 1, (ALL, "delivered"): 1,
            ("acme.example", "latency_le_2500"): 1, (ALL, "latency_le_2500"): 1}
    finally:
        await db.dispose()


async def test_buffered_groups_share_a_flush_and_counters_add_up(settings: Settings) -> None:
    db = Database(settings.db_url)
    trace = Trace(db, settings)
    try:
        first, second = new_id(), new_id()
        trace.submit(EventGroup(first, [refused("nobody@acme.example")]))
        await trace.write(EventGroup(second, [refused("ghost@acme.example"),
                                              refused("x@globex.example")]))
        # write() returned after its flush, which took the group submitted before it too
        assert {r.trace_id for r in await rows(db)} == {first, second}
        await trace.flush()
        trace.submit(EventGroup(new_id(), [refused("nobody@acme.example")]))
        await trace.flush()
        found = await counts(db)
        assert found[("acme.example", "refused")] == 3
        assert found[("globex.example", "refused")] == 1
        assert found[(ALL, "refused")] == 4
        async with db.session() as session:
            top = dict((await session.execute(
                select(TraceTop.value, TraceTop.n).where(
                    TraceTop.domain == "acme.example", TraceTop.field == "recipient"))).all())
        assert top == {"nobody@acme.example": 2, "ghost@acme.example": 1}
    finally:
        await db.dispose()


async def test_hostile_values_are_clipped_and_detail_stays_json(settings: Settings) -> None:
    db = Database(settings.db_url)
    trace = Trace(db, settings)
    try:
        trace_id = new_id()
        await trace.write(EventGroup(trace_id, [TraceEvent(
            Kind.DATA, Outcome.ACCEPTED, subject="S" * 5000, message_id="<" + "m" * 900,
            peer="p" * 300, detail={"reply": "x" * 50_000, "when": AT})]))
        (row,) = await rows(db, trace_id)
        assert len(row.subject or "") == 200 and len(row.message_id or "") == 250
        assert len(row.peer or "") == 64
        assert json.loads(row.detail)["truncated"] is True
    finally:
        await db.dispose()


async def test_concurrent_writers_lose_nothing(settings: Settings) -> None:
    db = Database(settings.db_url)
    trace = Trace(db, settings)
    try:
        ids = [new_id() for _ in range(50)]
        await asyncio.gather(*(trace.write(EventGroup(i, [refused("a@acme.example")]))
                               for i in ids))
        async with db.session() as session:
            n = await session.scalar(select(func.count()).select_from(TraceEventRow))
        assert n == 50
        await trace.flush()
        assert (await counts(db))[(ALL, "refused")] == 50
    finally:
        await db.dispose()


async def test_batched_groups_share_one_insert(settings: Settings) -> None:
    db = Database(settings.db_url)
    trace = Trace(db, settings)
    inserts = 0

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        nonlocal inserts
        inserts += statement.lstrip().upper().startswith("INSERT INTO TRACE_EVENTS")

    event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        ids = [new_id() for _ in range(5)]
        async with db.session() as session, session.begin(), batched(session):
            for trace_id in ids:
                await trace.add(session, EventGroup(trace_id, [
                    delivered("bob@acme.example", 50), refused("x@acme.example")]))
        assert inserts == 1
        assert [r.trace_id for r in await rows(db)] == [i for i in ids for _ in range(2)]
    finally:
        await db.dispose()


async def test_flush_waits_for_a_write_already_under_way(settings: Settings) -> None:
    """A flush the buffer's timer started has taken its groups; ``flush()`` returns only
    once that write is over too (shutdown and tests rely on it)."""
    db = Database(settings.db_url)
    trace = Trace(db, settings)
    try:
        under_way = asyncio.get_running_loop().create_future()
        trace._inflight.add(under_way)  # as a timer's flush registers itself
        flushing = asyncio.create_task(trace.flush())
        for _ in range(50):  # nothing of its own to write: it gets as far as it can
            await asyncio.sleep(0)
        assert not flushing.done()
        under_way.set_result(None)
        await flushing
        trace.submit(EventGroup(new_id(), [refused("a@acme.example")]))
        await trace.close()  # writes what waits, then stops the timers
        assert len(await rows(db)) == 1
    finally:
        await db.dispose()
