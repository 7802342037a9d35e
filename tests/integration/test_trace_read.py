"""The read side of the message trace on both backends: tenant scoping, every search
field, keyset paging, the story, index use, the dashboard's numbers, retention pruning and
queue sampling.

The seeding helpers here are shared with ``test_cli_trace.py`` and ``test_api_trace.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from mail_helpers import eventually
from sqlalchemy import insert, select, update

from mailward.app import Services
from mailward.app.tracing import TraceService
from mailward.config import Settings
from mailward.core.errors import InvalidInput, NotFound
from mailward.db import QueuedRecipient, QueueStatus
from mailward.db.models import (
    TraceCount,
    TraceGauge,
    TraceTop,
    WebmailDelivery,
    WebmailOutbox,
)
from mailward.directory import Actor
from mailward.queue.spool import NewRecipient
from mailward.trace import retention
from mailward.trace.events import EventGroup, Kind, Outcome, TraceEvent
from mailward.trace.ids import new_id
from mailward.trace.scope import TraceScope
from mailward.trace.search import COLUMNS, E, TraceQuery, anchors, encode_cursor
from mailward.trace.stats import percentile

OP = Actor.operator()
ACME, GLOBEX = "acme.example", "globex.example"
SUBJECT = "Quarterly Report Q4"
MESSAGE_ID = "<q4.report@sender.example>"


@dataclass
class World:
    """The seeded traces (see :func:`seed`) and the tenants' actors."""

    now: datetime
    shared: str  # inbound for Acme and Globex, forwarded out by alice
    copy: str  # the queue id of alice's forward copy
    refused: str  # Globex only: refused at RCPT
    old: str  # Acme, ten days ago
    recent: list[str]  # Acme only, newest first
    acme: Actor
    globex: Actor
    acme_id: int
    globex_id: int


def ev(kind: Kind, outcome: Outcome = Outcome.INFO, **fields: Any) -> TraceEvent:
    return TraceEvent(kind, outcome, **fields)


def rcpt(address: str, outcome: Outcome, at: datetime, **fields: Any) -> TraceEvent:
    domain = address.rpartition("@")[2]
    return ev(Kind.RCPT, outcome, recipient=address, domain=domain, mailbox=address, at=at,
              detail={"reply": "250 2.1.5 ok" if outcome is Outcome.ACCEPTED
                      else "550 5.1.1 no such user"}, **fields)


async def tenants(directory: Services) -> tuple[int, int]:
    for account, domain in (("Acme", ACME), ("Globex", GLOBEX)):
        await directory.accounts.create(OP, account)
        await directory.domains.create(OP, domain, account=account, hosting=True)
    return ((await directory.accounts.get(OP, "Acme")).id,
            (await directory.accounts.get(OP, "Globex")).id)


async def seed(directory: Services, *, create: bool = True) -> World:
    """Traces written through the recorder:

    * ``shared`` (2 h ago, from 192.0.2.10): to alice@acme (accepted, delivered, forwarded
      out as ``copy``: deferred then delivered), carol@acme (refused at RCPT) and
      bob@globex (quarantined);
    * ``refused`` (1 h ago, from 198.51.100.7): to bob@globex and a relay attempt, both
      refused; no DATA;
    * ``old`` (10 days ago): to alice@acme, delivered;
    * ``recent``: five messages to dave@acme in the last 30 minutes, delivered.

    Accounts Acme and Globex (acme.example, globex.example) are made unless ``create`` is
    False (they exist).
    """
    if create:
        acme_id, globex_id = await tenants(directory)
    else:  # the accounts exist (made through the API)
        acme_id = (await directory.accounts.get(OP, "Acme")).id
        globex_id = (await directory.accounts.get(OP, "Globex")).id
    trace = directory.trace
    now = datetime.now(UTC).replace(microsecond=0)
    t = now - timedelta(hours=2)
    shared, copy = new_id(), new_id()
    s = timedelta(seconds=1)
    await trace.write(EventGroup(shared, [
        ev(Kind.CONNECT, peer="192.0.2.10", at=t, detail={"helo": "mx.sender.example",
                                                          "tls": True}),
        ev(Kind.MAIL, Outcome.ACCEPTED, sender="news@sender.example", at=t + s,
           detail={"reply": "250 2.1.0 ok"}),
        rcpt("alice@acme.example", Outcome.ACCEPTED, t + 2 * s),
        rcpt("carol@acme.example", Outcome.REFUSED, t + 2 * s),
        rcpt("bob@globex.example", Outcome.ACCEPTED, t + 2 * s),
        ev(Kind.DATA, Outcome.ACCEPTED, subject=SUBJECT, message_id=MESSAGE_ID,
           queue_id=shared, at=t + 3 * s, detail={"size": 1234, "queue_ids": [shared]}),
        ev(Kind.VERDICT, Outcome.ACCEPTED, recipient="alice@acme.example", domain=ACME,
           mailbox="alice@acme.example", queue_id=shared, at=t + 3 * s,
           detail={"filtered": True, "spam": False, "score": 1.5, "findings": []}),
        ev(Kind.VERDICT, Outcome.QUARANTINED, recipient="bob@globex.example", domain=GLOBEX,
           mailbox="bob@globex.example", queue_id=shared, at=t + 3 * s,
           detail={"filtered": True, "spam": True, "score": 12.0,
                   "findings": [{"check": "bayes", "score": 12.0, "reason": "spammy"}]}),
    ], session_id=new_id()))
    await trace.write(EventGroup(shared, [
        ev(Kind.MAILBOX, Outcome.DELIVERED, recipient="alice@acme.example", domain=ACME,
           mailbox="alice@acme.example", queue_id=shared, at=t + 60 * s,
           detail={"folder": "INBOX", "latency_ms": 800}),
        ev(Kind.FORWARD, Outcome.FORWARDED, recipient="alice@acme.example", domain=ACME,
           mailbox="alice@acme.example", queue_id=shared, at=t + 60 * s,
           detail={"copy_queue_id": copy, "to": ["ext@elsewhere.example"]}),
        ev(Kind.ATTEMPT, Outcome.DEFERRED, sender="alice@acme.example",
           recipient="ext@elsewhere.example", domain=ACME, mailbox="alice@acme.example",
           queue_id=copy, at=t + 61 * s,
           detail={"server": "mx.elsewhere.example", "reply": "451 4.7.1 try later"}),
        ev(Kind.ATTEMPT, Outcome.DELIVERED, sender="alice@acme.example",
           recipient="ext@elsewhere.example", domain=ACME, mailbox="alice@acme.example",
           queue_id=copy, at=t + 600 * s,
           detail={"server": "mx.elsewhere.example", "reply": "250 ok", "latency_ms": 540000}),
    ]))
    refused = new_id()
    t = now - timedelta(hours=1)
    await trace.write(EventGroup(refused, [
        ev(Kind.CONNECT, peer="198.51.100.7", at=t),
        ev(Kind.MAIL, Outcome.ACCEPTED, sender="spammer@bad.example", at=t + s),
        rcpt("bob@globex.example", Outcome.REFUSED, t + 2 * s),
        ev(Kind.RCPT, Outcome.REFUSED, recipient="x@notours.example", at=t + 3 * s,
           detail={"reply": "554 5.7.1 relay access denied"}),
    ]))
    old = new_id()
    t = now - timedelta(days=10)
    await trace.write(EventGroup(old, [
        ev(Kind.MAIL, Outcome.ACCEPTED, sender="old@sender.example", at=t),
        rcpt("alice@acme.example", Outcome.ACCEPTED, t),
        ev(Kind.DATA, Outcome.ACCEPTED, subject="Old news", queue_id=old, at=t),
        ev(Kind.MAILBOX, Outcome.DELIVERED, recipient="alice@acme.example", domain=ACME,
           mailbox="alice@acme.example", queue_id=old, at=t + s),
    ]))
    recent: list[str] = []
    for i in range(5):
        trace_id = new_id()
        t = now - timedelta(minutes=30 - i)
        await trace.write(EventGroup(trace_id, [
            ev(Kind.MAIL, Outcome.ACCEPTED, sender=f"s{i}@sender.example", at=t),
            rcpt("dave@acme.example", Outcome.ACCEPTED, t),
            ev(Kind.DATA, Outcome.ACCEPTED, subject=f"Note {i}", queue_id=trace_id, at=t),
            ev(Kind.MAILBOX, Outcome.DELIVERED, recipient="dave@acme.example", domain=ACME,
               mailbox="dave@acme.example", queue_id=trace_id, at=t + s),
        ]))
        recent.insert(0, trace_id)
    return World(now, shared, copy, refused, old, recent, Actor.for_account(acme_id, "Acme"),
                 Actor.for_account(globex_id, "Globex"), acme_id, globex_id)


@pytest.fixture
async def world(directory: Services) -> World:
    return await seed(directory)


@pytest.fixture
def tracing(directory: Services) -> TraceService:
    return directory.tracing


def ids(found: list[Any]) -> list[str]:
    return [summary.trace_id for summary in found]


# -- scoping ------------------------------------------------------------------------------


async def test_each_tenant_sees_only_its_own(world: World, tracing: TraceService) -> None:
    w = world
    everything = await tracing.search(OP, TraceQuery())
    assert ids(everything) == [*w.recent, w.refused, w.shared]
    assert ids(await tracing.search(w.acme, TraceQuery())) == [*w.recent, w.shared]
    assert ids(await tracing.search(w.globex, TraceQuery())) == [w.refused, w.shared]

    # another account's admin sees nothing of Globex's refused trace, however asked
    assert await tracing.story(w.acme, w.refused) is None
    for query in (TraceQuery(queue_id=w.refused), TraceQuery(sender="spammer@bad.example"),
                  TraceQuery(peer="198.51.100.7"), TraceQuery(outcome="refused"),
                  TraceQuery(recipient="bob@globex.example")):
        assert await tracing.search(w.acme, query) == [], query
    # an account without domains sees nothing at all
    assert await tracing.search(Actor.for_account(w.globex_id + 99), TraceQuery()) == []

    # the shared trace, as each party sees it
    full = await tracing.story(OP, w.shared)
    acme = await tracing.story(w.acme, w.shared)
    globex = await tracing.story(w.globex, w.shared)
    assert full is not None and acme is not None and globex is not None
    assert len(full.events) == 12
    assert {e.domain for e in acme.events} == {None, ACME}
    assert {e.domain for e in globex.events} == {None, GLOBEX}
    assert [e.kind for e in globex.events] == ["connect", "mail", "rcpt", "data", "verdict"]
    assert globex.summary.recipients == ["bob@globex.example"]
    assert acme.summary.recipients == ["alice@acme.example", "carol@acme.example",
                                       "ext@elsewhere.example"]
    assert full.summary.recipients == ["alice@acme.example", "carol@acme.example",
                                       "bob@globex.example", "ext@elsewhere.example"]
    # the final outcome: the caller's own latest one
    assert (full.summary.outcome, acme.summary.outcome, globex.summary.outcome) == (
        "delivered", "delivered", "quarantined")
    assert acme.summary.queue_ids == [w.shared, w.copy]
    assert globex.summary.queue_ids == [w.shared]


async def test_a_reseller_sees_its_accounts(world: World, tracing: TraceService) -> None:
    reseller = Actor.for_reseller(1, frozenset({world.globex_id}))
    assert ids(await tracing.search(reseller, TraceQuery())) == [world.refused, world.shared]
    assert await tracing.story(reseller, world.recent[0]) is None


async def test_a_mailbox_user_sees_their_own_events(world: World,
                                                    tracing: TraceService) -> None:
    w = world
    alice = "Alice@acme.example"
    assert ids(await tracing.search_mailbox(alice, TraceQuery())) == [w.shared]
    assert ids(await tracing.search_mailbox(
        alice, TraceQuery(since=w.now - timedelta(days=11)))) == [w.shared, w.old]
    assert ids(await tracing.search_mailbox("dave@acme.example", TraceQuery())) == w.recent
    assert ids(await tracing.search_mailbox("carol@acme.example", TraceQuery())) == [w.shared]
    story = await tracing.story_mailbox(alice, w.shared)
    assert story is not None
    assert {e.mailbox for e in story.events} == {None, "alice@acme.example"}
    assert [e.kind for e in story.events] == [
        "connect", "mail", "rcpt", "data", "verdict", "mailbox", "forward", "attempt",
        "attempt"]
    assert "carol@acme.example" not in story.summary.recipients
    # dave's trace is his, not alice's (same domain)
    assert await tracing.story_mailbox(alice, w.recent[0]) is None
    carol = await tracing.story_mailbox("carol@acme.example", w.shared)
    assert carol is not None and carol.summary.outcome == "refused"
    assert [e.kind for e in carol.events] == ["connect", "mail", "rcpt", "data"]


# -- search fields --------------------------------------------------------------------------


async def test_every_search_field(world: World, tracing: TraceService) -> None:
    w = world

    async def find(actor: Actor = OP, **fields: Any) -> list[str]:
        return ids(await tracing.search(actor, TraceQuery(**fields)))

    assert await find(sender="news@sender.example") == [w.shared]
    assert await find(sender="News@Sender.EXAMPLE") == [w.shared]  # matched lower-case
    assert await find(sender="other@sender.example") == []
    assert await find(sender="alice@acme.example") == [w.shared]  # the forward copy's
    assert await find(recipient="bob@globex.example") == [w.refused, w.shared]
    assert await find(recipient="ext@elsewhere.example") == [w.shared]
    assert await find(subject="quarterly REPORT") == [w.shared]
    assert await find(subject="note") == w.recent
    assert await find(subject="100%") == []  # LIKE wildcards are literal
    assert await find(message_id=MESSAGE_ID) == [w.shared]
    assert await find(message_id=MESSAGE_ID.strip("<>")) == [w.shared]
    assert await find(queue_id=w.shared) == [w.shared]
    assert await find(queue_id=w.copy.lower()) == [w.shared]
    assert await find(queue_id=w.recent[2]) == [w.recent[2]]
    assert await find(peer="198.51.100.7") == [w.refused]
    assert await find(peer="192.0.2.10") == [w.shared]
    assert await find(outcome="refused") == [w.refused]
    assert await find(outcome="Delivered") == [*w.recent, w.shared]
    assert await find(w.globex, outcome="quarantined") == [w.shared]
    assert await find(w.acme, outcome="quarantined") == []
    # several fields: all must match
    assert await find(sender="news@sender.example", recipient="bob@globex.example") == [
        w.shared]
    assert await find(sender="news@sender.example", peer="198.51.100.7") == []
    # the time range: ten days back finds the old trace; until cuts the newer ones
    assert await find(recipient="alice@acme.example") == [w.shared]
    assert await find(recipient="alice@acme.example",
                      since=w.now - timedelta(days=11)) == [w.shared, w.old]
    assert await find(since=w.now - timedelta(days=11),
                      until=w.now - timedelta(days=1)) == [w.old]
    assert await find(since=w.now - timedelta(minutes=90)) == [*w.recent, w.refused]
    # a trace matches by any of its events in the range (its first ones, 2 h ago)
    assert await find(until=w.now - timedelta(minutes=115)) == [w.shared]
    with pytest.raises(InvalidInput, match="limit"):
        await find(limit=201)
    with pytest.raises(InvalidInput, match="outcome must be one of"):
        await find(outcome="lost")
    with pytest.raises(InvalidInput, match="since must not be after until"):
        await find(since=w.now, until=w.now - timedelta(days=1))


async def test_keyset_paging(world: World, tracing: TraceService) -> None:
    w = world
    for actor, expected in ((OP, [*w.recent, w.refused, w.shared]),
                            (w.acme, [*w.recent, w.shared])):
        seen: list[str] = []
        page: str | None = None
        while True:
            found = await tracing.search(actor, TraceQuery(limit=2), page)
            assert len(found) <= 2
            seen += ids(found)
            if len(found) < 2:
                break
            page = found[-1].cursor
        assert seen == expected
    with pytest.raises(InvalidInput, match="cursor"):
        await tracing.search(OP, TraceQuery(), "garbage")


async def test_the_story_in_order(world: World, tracing: TraceService) -> None:
    w = world
    story = await tracing.story(OP, w.copy.lower())  # a copy's queue id finds the trace
    assert story is not None and story.summary.trace_id == w.shared
    keys = [(e.at, e.id) for e in story.events]
    assert keys == sorted(keys)
    summary = story.summary
    assert (summary.sender, summary.subject, summary.message_id, summary.peer) == (
        "news@sender.example", SUBJECT, MESSAGE_ID, "192.0.2.10")
    assert summary.first_at == w.now - timedelta(hours=2)
    assert summary.last_at == w.now - timedelta(hours=2) + timedelta(seconds=600)
    verdict = next(e for e in story.events if e.kind == "verdict"
                   and e.recipient == "bob@globex.example")
    assert verdict.detail["findings"] == [{"check": "bayes", "score": 12.0,
                                           "reason": "spammy"}]
    assert verdict.outcome == "quarantined" and verdict.queue_id == w.shared
    assert await tracing.story(OP, "0123456789ABCDEF") is None
    assert await tracing.story(OP, " ") is None


@pytest.mark.parametrize("scope", [
    TraceScope.everything(), TraceScope(frozenset({ACME, GLOBEX})),
    TraceScope.of_mailbox("alice@acme.example")])
async def test_searches_use_the_indexes(world: World, directory: Services,
                                        scope: TraceScope) -> None:
    """With sequential scans priced out (PostgreSQL) or asked for the plan (SQLite), no
    part of a search reads the whole events table; a trace's events are found by its id
    (not by walking every message-level event, whose domain is NULL)."""
    query = TraceQuery(sender="news@sender.example", subject="report", outcome="delivered",
                       queue_id=world.shared).checked()
    engine = directory.db.engine
    postgres = engine.dialect.name == "postgresql"

    async def plan(statement: Any) -> str:
        compiled = statement.compile(dialect=engine.dialect,
                                     compile_kwargs={"render_postcompile": True})
        params = tuple(compiled.params[name] for name in compiled.positiontup or ())
        async with engine.connect() as conn:
            if postgres:
                await conn.exec_driver_sql("SET enable_seqscan = off")
            rows = await conn.exec_driver_sql(
                ("EXPLAIN " if postgres else "EXPLAIN QUERY PLAN ") + str(compiled), params)
            return "\n".join(str(row[0] if postgres else row[-1]) for row in rows)

    for statement in (anchors(scope, query, world.now),
                      anchors(scope, query, world.now, encode_cursor(world.now, 10**9)),
                      select(*COLUMNS).where(E.trace_id.in_([world.shared, world.refused]),
                                             scope.visible(E))):
        found = await plan(statement)
        if postgres:
            assert "Seq Scan on trace_events" not in found, found
        else:
            assert not [line for line in found.splitlines() if "SCAN" in line
                        and "trace_events" in line and "INDEX" not in line], found
    if not postgres:  # SQLite's plan for a trace's events: by trace_id alone
        assert found == "SEARCH trace_events USING INDEX ix_trace_events_trace_id (trace_id=?)"
    async with directory.db.session() as session:
        rows = (await session.execute(anchors(scope, query, world.now))).all()
    assert [row[0] for row in rows] == [world.shared]


# -- the dashboard --------------------------------------------------------------------------


async def count(directory: Services, rows: list[tuple[str, datetime, str, int]]) -> None:
    async with directory.db.session() as session, session.begin():
        await session.execute(insert(TraceCount), [
            {"domain": d, "hour": h, "metric": m, "n": n} for d, h, m, n in rows])


async def test_dashboard_numbers(directory: Services, tracing: TraceService) -> None:
    acme_id, globex_id = await tenants(directory)
    now = datetime(2026, 12, 7, 15, 20, tzinfo=UTC)
    hour = datetime(2026, 12, 7, 15, tzinfo=UTC)
    earlier = hour - timedelta(hours=5)
    rows = []
    for when in (hour, earlier, hour - timedelta(days=3), hour - timedelta(days=40)):
        for domain, n in ((ACME, 3), (GLOBEX, 4), ("*", 7)):
            rows += [(domain, when, "accepted", n), (domain, when, "refused", n // 3)]
    rows += [("*", hour, "filtered", 10), ("*", hour, "spam", 4),
             (ACME, hour, "filtered", 4), (ACME, hour, "spam", 1),
             # latency: 10 deliveries ≤ 100 ms, 8 ≤ 250 ms, 2 beyond an hour
             (ACME, hour, "latency_le_100", 10), (ACME, hour, "latency_le_250", 8),
             (ACME, hour, "latency_le_inf", 2), ("*", hour, "latency_le_1000", 1)]
    await count(directory, rows)
    async with directory.db.session() as session, session.begin():
        await session.execute(insert(TraceTop), [
            {"domain": d, "hour": hour, "field": f, "value": v, "n": n}
            for d, f, v, n in (
                (ACME, "sender", "spam@bad.example", 5), (ACME, "sender", "a@x.example", 2),
                (GLOBEX, "sender", "spam@bad.example", 1),
                (ACME, "recipient", "nobody@acme.example", 3),
                ("*", "sender", "spam@bad.example", 6), ("*", "sender", "a@x.example", 2),
                ("*", "recipient", "nobody@acme.example", 3))] + [
            {"domain": ACME, "hour": hour - timedelta(days=2), "field": "sender",
             "value": "old@bad.example", "n": 99}])

    day = await tracing.dashboard(OP, "24h", now=now)
    assert day.points[0] == hour - timedelta(hours=23) and day.points[-1] == hour
    assert day.step_seconds == 3600 and len(day.points) == 24
    assert day.series["accepted"][-1] == 7 and day.series["accepted"][-6] == 7
    assert sum(day.series["accepted"]) == 14 and sum(day.series["refused"]) == 4
    assert day.series["quarantined"] == [0] * 24
    assert day.spam_ratio == pytest.approx(0.4)
    assert day.spam_ratio_series[-1] == pytest.approx(0.4) and day.spam_ratio_series[0] is None
    assert [(t.value, t.count) for t in day.top_refused_senders] == [
        ("spam@bad.example", 6), ("a@x.example", 2)]
    assert [(t.value, t.count) for t in day.top_refused_recipients] == [
        ("nobody@acme.example", 3)]
    assert day.latency["p50"][-1] == pytest.approx(750)  # the one delivery, 500-1000 ms
    assert day.latency["p50"][0] is None

    acme = Actor.for_account(acme_id)
    mine = await tracing.dashboard(acme, "24h", now=now)
    assert mine.series["accepted"][-1] == 3 and sum(mine.series["refused"]) == 2
    assert mine.spam_ratio == pytest.approx(0.25)
    assert [(t.value, t.count) for t in mine.top_refused_senders] == [
        ("spam@bad.example", 5), ("a@x.example", 2)]
    # 20 deliveries: p50 at the top of the first bucket, p90 within the second, p99 in
    # the open-ended one (answered with its lower bound)
    assert mine.latency["p50"][-1] == pytest.approx(100)
    assert mine.latency["p90"][-1] == pytest.approx(250)
    assert mine.latency["p50"][:-1] == [None] * 23
    assert mine.latency["p99"][-1] == pytest.approx(3600000)
    reseller = Actor.for_reseller(1, frozenset({acme_id, globex_id}))
    both = await tracing.dashboard(reseller, "24h", now=now)
    assert both.series["accepted"][-1] == 7
    assert (both.top_refused_senders[0].value, both.top_refused_senders[0].count) == (
        "spam@bad.example", 6)
    assert (await tracing.dashboard(OP, "24h", globex_id, now=now)).series[
        "accepted"][-1] == 4
    with pytest.raises(NotFound):
        await tracing.dashboard(acme, "24h", globex_id, now=now)

    week = await tracing.dashboard(OP, "7d", now=now)
    assert len(week.points) == 28 and week.step_seconds == 6 * 3600
    assert week.points[-1] == datetime(2026, 12, 7, 12, tzinfo=UTC)
    assert week.series["accepted"][-1] == 7 and week.series["accepted"][-2] == 7  # 10:00
    assert sum(week.series["accepted"]) == 21  # 40 days ago is outside
    top = (await tracing.dashboard(acme, "7d", now=now)).top_refused_senders[0]
    assert (top.value, top.count) == ("old@bad.example", 99)
    month = await tracing.dashboard(OP, "30d", now=now)
    assert len(month.points) == 30 and month.points[-1] == datetime(2026, 12, 7, tzinfo=UTC)
    assert month.series["accepted"][-1] == 14 and month.series["accepted"][-4] == 7
    assert month.totals["accepted"] == 21 and month.totals["refused"] == 6
    with pytest.raises(InvalidInput, match="period"):
        await tracing.dashboard(OP, "1y", now=now)


async def test_recorded_events_reach_the_dashboard(world: World, directory: Services,
                                                   tracing: TraceService) -> None:
    """The recorder's own counters, read back: what the seeded traces counted."""
    await directory.trace.flush()
    day = await tracing.dashboard(OP, "24h")
    totals = {metric: sum(values) for metric, values in day.series.items()}
    # delivered: alice, the copy and dave's five (the old one is 10 days ago: outside)
    assert totals == {"accepted": 1, "refused": 3, "quarantined": 1, "delivered": 7,
                      "deferred": 1, "bounced": 0}
    assert day.spam_ratio == pytest.approx(0.5)
    assert [t.value for t in day.top_refused_recipients] == [
        "bob@globex.example", "carol@acme.example", "x@notours.example"]
    # alice's delivery took 800 ms (the 500-1000 ms bucket), the copy's 9 minutes
    # (300000-900000 ms): each point's median is interpolated within its bucket
    start = world.now - timedelta(hours=2)
    first, second = (start + timedelta(seconds=60)).replace(minute=0, second=0), (
        start + timedelta(seconds=600)).replace(minute=0, second=0)
    medians = [(day.points[i], p) for i, p in enumerate(day.latency["p50"]) if p is not None]
    if first == second:  # both in one hour: the median is the top of the lower bucket
        assert medians == [(first, pytest.approx(1000))]
    else:
        assert medians == [(first, pytest.approx(750)), (second, pytest.approx(600000))]
    globex = await tracing.dashboard(world.globex, "24h")
    assert sum(globex.series["refused"]) == 1 and sum(globex.series["quarantined"]) == 1
    assert sum(globex.series["delivered"]) == 0


def test_percentile_interpolation() -> None:
    buckets = [(100.0, 10), (250.0, 10), (float("inf"), 0)]
    assert percentile(buckets, 0.5) == pytest.approx(100)
    assert percentile(buckets, 0.75) == pytest.approx(175)
    assert percentile(buckets, 0.25) == pytest.approx(50)
    assert percentile([(100.0, 0), (float("inf"), 4)], 0.5) == pytest.approx(100)
    assert percentile([(100.0, 0)], 0.5) is None


# -- queue sampling -----------------------------------------------------------------------


async def test_queue_sampling(directory: Services, tracing: TraceService) -> None:
    acme_id, globex_id = await tenants(directory)
    spool = directory.spool
    message = b"Subject: hi\r\n\r\nbody\r\n"
    await spool.enqueue(sender="x@sender.example", data=message, origin="mx", recipients=[
        NewRecipient("a@acme.example"), NewRecipient("b@acme.example"),
        NewRecipient("c@globex.example")])
    await spool.enqueue(sender="a@acme.example", data=message, origin="forward",
                        recipients=[NewRecipient("out@elsewhere.example")])
    async with directory.db.session() as session, session.begin():
        await session.execute(update(QueuedRecipient).where(
            QueuedRecipient.recipient == "b@acme.example").values(status=QueueStatus.DEFERRED))
        await session.execute(update(QueuedRecipient).where(
            QueuedRecipient.recipient == "c@globex.example").values(status=QueueStatus.ACTIVE))
    now = datetime.now(UTC)
    sample = await tracing.sample_queue(now)
    assert sample.platform == {"queue_queued": 2, "queue_deferred": 1, "queue_active": 1}
    assert sample.accounts == {acme_id: {"queue_queued": 1, "queue_deferred": 1},
                               globex_id: {"queue_active": 1}}
    async with directory.db.session() as session:
        stored = sorted((r.account_id or 0, r.name, r.value)
                        for r in await session.scalars(select(TraceGauge)))
    assert stored == sorted([
        (0, "queue_queued", 2), (0, "queue_deferred", 1), (0, "queue_active", 1),
        (acme_id, "queue_queued", 1), (acme_id, "queue_deferred", 1),
        (globex_id, "queue_active", 1)])
    # a later, smaller sample in the same hour: the chart keeps the peak
    async with directory.db.session() as session, session.begin():
        await session.execute(update(QueuedRecipient).values(status=QueueStatus.QUEUED))
    await tracing.sample_queue(now + timedelta(seconds=1))
    day = await tracing.dashboard(OP, "24h", now=now)
    assert day.queue["queue_queued"][-1] == 4 and day.queue["queue_deferred"][-1] == 1
    assert day.queue["queue_queued"][:-1] == [0] * 23
    acme = await tracing.dashboard(Actor.for_account(acme_id), "24h", now=now)
    assert (acme.queue["queue_queued"][-1], acme.queue["queue_deferred"][-1],
            acme.queue["queue_active"][-1]) == (2, 1, 0)
    both = await tracing.dashboard(Actor.for_reseller(1, frozenset({acme_id, globex_id})),
                                   "24h", now=now)
    assert both.queue["queue_queued"][-1] == 3 and both.queue["queue_active"][-1] == 1


# -- retention ----------------------------------------------------------------------------


async def test_retention(world: World, directory: Services, settings: Settings) -> None:
    w = world
    now = w.now
    hour = now.replace(minute=0, second=0)
    queued = await directory.spool.enqueue(
        sender="alice@acme.example", data=b"Subject: later\r\n\r\nx\r\n", origin="webmail",
        recipients=[NewRecipient("x@y.example")])
    await count(directory, [("*", hour - timedelta(days=32), "accepted", 1),
                            ("*", hour - timedelta(days=20), "accepted", 1)])
    async with directory.db.session() as session, session.begin():
        await session.execute(insert(TraceTop), [
            {"domain": "*", "hour": hour - timedelta(days=d), "field": "sender",
             "value": "a@x.example", "n": 1} for d in (32, 20)])
        await session.execute(insert(TraceGauge), [
            {"at": now - timedelta(days=d), "account_id": None, "name": "queue_queued",
             "value": 1} for d in (32, 20)])
        await session.execute(insert(WebmailOutbox), [
            {"queue_id": queue_id, "mailbox": "alice@acme.example", "message_id": f"<{n}@x>",
             "recipients": "x@y.example", "release_at": release}
            for n, (queue_id, release) in enumerate((
                ("OLDSENT", now - timedelta(days=12)),  # released long ago, sent: pruned
                (queued, now - timedelta(days=12)),  # still in the queue: kept
                ("NEWSENT", now - timedelta(days=1))))])  # recent: kept
        await session.execute(insert(WebmailDelivery), [
            {"queue_id": queue_id, "recipient": "x@y.example", "result": "relayed",
             "status": "2.0.0", "detail": "250 ok", "at": at}
            for queue_id, at in (("OLDSENT", now - timedelta(days=5)),  # with its outbox row
                                 ("ORPHAN", now - timedelta(days=12)),  # past the retention
                                 ("NEWSENT", now - timedelta(days=1)))])

    # nine days' retention: the old trace goes (in batches of 2), the rest stays
    pruned = await retention.prune(directory.db, 9, now, batch=2)
    assert pruned.events == 4
    assert (pruned.counts, pruned.top, pruned.gauges) == (1, 1, 1)  # kept 31 days
    assert (pruned.outbox, pruned.deliveries) == (1, 2)
    tracing = TraceService(directory.db, settings)
    assert await tracing.story(OP, w.old) is None
    assert await tracing.story(OP, w.shared) is not None
    async with directory.db.session() as session:
        assert sorted(await session.scalars(select(WebmailOutbox.queue_id))) == sorted(
            ["NEWSENT", queued])
        assert list(await session.scalars(select(WebmailDelivery.queue_id))) == ["NEWSENT"]
        old = now - timedelta(days=15)  # (the recorder counted the seeded traces too)
        assert list(await session.scalars(select(TraceCount.n).where(TraceCount.hour < old))
                    ) == [1]
        assert list(await session.scalars(select(TraceTop.n).where(TraceTop.hour < old))) == [1]
        assert len(list(await session.scalars(select(TraceGauge.id)))) == 1
    # the service prunes after trace_retention_days (default 30): nothing more is old
    assert await tracing.prune(now) == retention.Pruned()
    short = TraceService(directory.db, settings.model_copy(update={"trace_retention_days": 1}))
    later = await short.prune(now + timedelta(days=1))
    assert later.events == 12 + 4 + 4 * 5  # every remaining event was before ``now``
    assert (later.counts, later.outbox, later.deliveries) == (0, 1, 1)  # NEWSENT's
    async with directory.db.session() as session:  # what is still queued stays
        assert list(await session.scalars(select(WebmailOutbox.queue_id))) == [queued]
    assert await tracing.search(OP, TraceQuery(since=now - timedelta(days=30))) == []


async def test_background_jobs(world: World, directory: Services, settings: Settings) -> None:
    """``run`` prunes and samples at once, then samples again on its interval."""
    tracing = TraceService(directory.db, settings.model_copy(
        update={"trace_retention_days": 9}))

    async def samples() -> int:
        async with directory.db.session() as session:
            return len(list(await session.scalars(select(TraceGauge.id).where(
                TraceGauge.account_id.is_(None), TraceGauge.name == "queue_queued"))))

    task = asyncio.create_task(tracing.run(sample_every=0.05))
    try:
        await eventually(lambda: _at_least(samples, 2))
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert await tracing.story(OP, world.old) is None  # pruned on the first round
    assert await tracing.story(OP, world.shared) is not None


async def _at_least(count: Any, n: int) -> bool:
    return bool(await count() >= n)
