"""Scale section ``queue``: new mail past 0 / 100,000 / 1,000,000 deferred queue rows.

The deferred rows are inserted straight into ``queue_messages`` and ``queue_recipients``
with Core executemany (one recipient each, status deferred, ``next_attempt_at`` 1-24 h
ahead, to 100 unreachable domains; PostgreSQL: a 300-byte ``body`` in the row as the spool
keeps it there; SQLite: no spool files, since a worker reads a message's file only when
it delivers it). PostgreSQL is ANALYZEd after each fill, as autovacuum would soon do;
SQLite is left as a node would leave it. Per tier: the delivery worker's own queue
queries (``DeliveryWorker.claim`` with nothing due, ``_idle_seconds``) are timed in the
bench process and their plans printed (statements captured from the real code, then
EXPLAIN / EXPLAIN QUERY PLAN); then the mx + delivery roles start fresh in a child and
``--queue-messages`` new messages (4 sessions, 1 KiB) are relayed to a loopback sink:
accepted/s, delivered/s and 250 -> sink latency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from mx_throughput import Arrivals, sink
from scale_support import (
    Smtp,
    bench_world,
    message,
    percentiles,
    server,
)
from support import BenchFailed

SESSIONS = 4
RELAY = "relay.bench.example"


def tiers(args: argparse.Namespace) -> list[int]:
    if args.queue_rows:
        return [int(n) for n in args.queue_rows.split(",")]
    return [0, 10_000] if args.quick else [0, 100_000, 1_000_000]


async def fill(db: Any, start: int, stop: int) -> float:
    """Deferred rows ``start`` … ``stop - 1`` (ids ``start + 1`` …); seconds taken."""
    from sqlalchemy import insert, text

    from mailward.db import QueuedMessage, QueuedRecipient, QueueStatus
    from mailward.db.models import utcnow

    now, started = utcnow(), time.monotonic()
    body = None if db.is_sqlite else b"x" * 300
    for lo in range(start, stop, 20_000):
        ids = range(lo + 1, min(stop, lo + 20_000) + 1)
        async with db.engine.begin() as conn:
            await conn.execute(insert(QueuedMessage), [{
                "id": i, "queue_id": f"DEFERRED{i:012d}", "sender": "someone@bench.example",
                "size": 300, "origin": "mx", "peer": "192.0.2.1", "envid": None, "ret": None,
                "smtputf8": False, "subject": f"deferred {i}", "received_at": now,
                "body": body} for i in ids])
            await conn.execute(insert(QueuedRecipient), [{
                "id": i, "message_id": i, "account_id": None,
                "recipient": f"user{i}@down{i % 100}.bench.example",
                "domain": f"down{i % 100}.bench.example", "orcpt": None, "notify": None,
                "status": QueueStatus.DEFERRED, "attempts": 3,
                "next_attempt_at": now + timedelta(seconds=3600 + i % 82800),
                "lease_until": None, "lease_owner": None, "last_attempt_at": now,
                "last_error": "451 4.4.1 bench: connection refused", "delay_warned": True,
            } for i in ids])
    if not db.is_sqlite and stop > start:
        async with db.engine.begin() as conn:
            for table in ("queue_messages", "queue_recipients"):
                await conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', "
                                        f"'id'), {stop + 1})"))
        async with db.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("ANALYZE queue_messages, queue_recipients"))
    return time.monotonic() - started


@contextlib.contextmanager
def captured(db: Any) -> Iterator[list[tuple[str, Any]]]:
    """The (statement, parameters) the driver is given inside the block."""
    from sqlalchemy import event

    seen: list[tuple[str, Any]] = []

    def hook(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
             executemany: bool) -> None:
        seen.append((statement, parameters))

    event.listen(db.engine.sync_engine, "before_cursor_execute", hook)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", hook)


async def explain(db: Any, statement: str, parameters: Any) -> list[str]:
    """The plan of one captured statement (rolled back)."""
    prefix = "EXPLAIN QUERY PLAN " if db.is_sqlite else "EXPLAIN "
    async with db.engine.connect() as conn:
        rows = (await conn.exec_driver_sql(prefix + statement, parameters)).all()
        await conn.rollback()
    return [" | ".join(str(c) for c in row[-1:]) if db.is_sqlite else str(row[0])
            for row in rows]


async def queue_queries(settings: Any, tier: int, show_plans: bool) -> dict[str, float]:
    """Median ms of the worker's claim (nothing due) and idle-wait queries; plans printed."""
    from mailward.app import Services
    from mailward.db import Database
    from mailward.directory.forwarding import ForwardLimits
    from mailward.queue.local import LocalDelivery
    from mailward.queue.worker import DeliveryWorker
    from mailward.store import open_store

    db = Database(settings.db_url)
    services = Services(db, settings)
    worker = DeliveryWorker(db, settings, services.spool, LocalDelivery(
        db, open_store(settings, db), services.spool, services.recipients,
        ForwardLimits.of(settings)))
    out: dict[str, float] = {}
    for name, call in (("claim", lambda: worker.claim(settings.delivery_concurrency)),
                       ("idle", worker._idle_seconds)):
        times = []
        for _ in range(11):
            started = time.perf_counter()
            with captured(db) as statements:
                result = await call()
            times.append(time.perf_counter() - started)
            if name == "claim" and result:
                raise BenchFailed(f"claimed {result} with nothing due")
        out[name] = 1000 * statistics.median(times)
        if show_plans:
            for statement, parameters in statements:
                if statement.lstrip().upper().startswith("SELECT"):
                    print(f"   plan of {name} at {tier:,} rows: "
                          + " ".join(statement.split())[:300])
                    for line in await explain(db, statement, parameters):
                        print(f"      {line}")
    await db.dispose()
    return out


async def relay(port: int, arrivals: Arrivals, count: int) -> dict[str, Any]:
    """``count`` new messages over SESSIONS connections; rates and latency."""
    accepted: dict[int, float] = {}
    clients = [await Smtp.open(port) for _ in range(SESSIONS)]

    async def session(client: Smtp, numbers: range) -> None:
        for n in numbers:
            rcpt = f"user{n % 10}@{RELAY}"
            accepted[n] = await client.send([rcpt], message(rcpt, n))
        await client.close()

    started = time.monotonic()
    await asyncio.gather(*(session(c, range(i, count, SESSIONS))
                           for i, c in enumerate(clients)))
    while len(arrivals.times) < count:
        if time.monotonic() - max(accepted.values()) > 60:
            raise BenchFailed(f"{len(arrivals.times)} of {count} relayed in 60 s")
        await asyncio.sleep(0.02)
    if arrivals.duplicates or arrivals.foreign:
        raise BenchFailed(f"{len(arrivals.duplicates)} duplicates, {len(arrivals.foreign)} "
                          "unexpected messages at the sink")
    return {"accepted_per_s": count / (max(accepted.values()) - started),
            "delivered_per_s": count / (max(arrivals.times.values()) - started),
            **percentiles([arrivals.times[n] - accepted[n] for n in accepted])}


async def run(backend: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    from sqlalchemy import func, select

    from mailward.db import Database, QueuedRecipient

    count = args.queue_messages or (100 if args.quick else 500)
    rows, have = [], 0
    arrivals = Arrivals()
    async with sink(arrivals) as sink_port, bench_world(
            backend, args.workers, {RELAY: False}, [f"user{i}@{RELAY}" for i in range(10)],
            sink_port) as (tmp, overrides, settings):
        db = Database(overrides["database_url"])
        sizes = tiers(args)
        for n, tier in enumerate(sizes):
            fill_s = await fill(db, have, tier)
            have = tier
            queries = await queue_queries(settings, tier, n in (0, len(sizes) - 1))
            arrivals.times.clear()
            async with server(overrides, {"mx", "delivery"}, tmp) as (ports, _, rep):
                result = await relay(ports["mx"][0], arrivals, count)
            async with db.session() as s:
                left = await s.scalar(select(func.count()).select_from(QueuedRecipient))
            if left != tier:
                raise BenchFailed(f"{left} queue rows after the run, expected {tier}")
            rows.append({"backend": backend, "rows": tier, "fill_s": fill_s,
                         "count": count, **queries, **result,
                         "rss_mb": rep["hwm_mb"],
                         "problems": rep["problems"]})
            print_row(rows[-1])
        await db.dispose()
    return rows


def print_header(args: argparse.Namespace) -> None:
    print(f"\n== queue: new mail relayed to a loopback sink past deferred rows ({SESSIONS} "
          "sessions, 1 KiB); claim/idle = the worker's queue queries (median of 11, ms); "
          "fill = Core executemany of the deferred rows")
    print(f"{'backend':<11}{'deferred':>10}{'fill s':>8}{'claim ms':>9}{'idle ms':>8}"
          f"{'msgs':>6}{'accepted/s':>11}{'relayed/s':>10}{'p50 ms':>8}{'p99 ms':>8}"
          f"{'server peak MB':>15}", flush=True)


def print_row(r: dict[str, Any]) -> None:
    print(f"{r['backend']:<11}{r['rows']:>10,}{r['fill_s']:>8.1f}{r['claim']:>9.2f}"
          f"{r['idle']:>8.2f}{r['count']:>6}{r['accepted_per_s']:>11.1f}"
          f"{r['delivered_per_s']:>10.1f}{r['p50_ms']:>8.0f}{r['p99_ms']:>8.0f}"
          f"{r['rss_mb']:>15.1f}", flush=True)
    for line in r["problems"][:3]:
        print(f"   server log: {line}")
