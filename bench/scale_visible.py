"""Scale section ``visible``: SMTP 250 -> IMAP EXISTS of probe mail at half the peak load.

The mx, delivery and imap roles run in one child, on a hosting domain with 20 load
mailboxes and one probe mailbox. Peak: unless ``--rate`` is given, a burst of messages
(10 sessions, 1 KiB) to the load mailboxes, timed until the queue is empty (delivered/s).
Then for ``--seconds`` (60) 10 sessions send to the load mailboxes open-loop at half that
rate (or ``--rate``), while one more session sends a probe to the probe mailbox every
0.5 s, and a client in IDLE on the probe's INBOX records when each EXISTS arrives; the
probe's latency is from its 250 to the EXISTS that counts it. Target: p99 <= 200 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from typing import Any

from scale_support import (
    Imap,
    Smtp,
    bench_world,
    message,
    percentiles,
    server,
)
from support import BenchFailed

DOMAIN = "hosted.bench.example"
PROBE = f"probe@{DOMAIN}"
LOAD = [f"load{i}@{DOMAIN}" for i in range(20)]
PASSWORD = "Bench-pass-0"
SESSIONS = 10
PROBE_EVERY = 0.5


async def queue_empty(db: Any, deadline: float) -> float:
    """Poll until the queue is empty; the time it was seen so."""
    from sqlalchemy import func, select

    from mailward.db import QueuedRecipient

    while True:
        async with db.session() as s:
            if not await s.scalar(select(func.count()).select_from(QueuedRecipient)):
                return time.monotonic()
        if time.monotonic() > deadline:
            raise BenchFailed("the queue did not drain")
        await asyncio.sleep(0.05)


async def peak(port: int, db: Any, count: int) -> float:
    """Messages delivered per second for a burst of ``count`` (send + queue empty)."""
    clients = [await Smtp.open(port) for _ in range(SESSIONS)]

    async def session(client: Smtp, numbers: range) -> None:
        for n in numbers:
            await client.send([LOAD[n % len(LOAD)]], message(LOAD[n % len(LOAD)], n))
        await client.close()

    started = time.monotonic()
    await asyncio.gather(*(session(c, range(i, count, SESSIONS))
                           for i, c in enumerate(clients)))
    return count / (await queue_empty(db, time.monotonic() + 300) - started)


async def load(port: int, rate: float, until: float) -> int:
    """Open-loop load: SESSIONS sessions, ``rate`` messages/s in all; messages sent."""
    sent = 0

    async def session(i: int) -> None:
        nonlocal sent
        client, due, n = await Smtp.open(port), time.monotonic(), i
        while due < until:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            await client.send([LOAD[n % len(LOAD)]], message(LOAD[n % len(LOAD)], n))
            sent, n, due = sent + 1, n + SESSIONS, due + SESSIONS / rate
        await client.close()

    await asyncio.gather(*(session(i) for i in range(SESSIONS)))
    return sent


async def probes(port: int, watcher: Imap, until: float) -> list[float]:
    """A probe every PROBE_EVERY s; 250 -> EXISTS of each."""
    accepted: dict[int, float] = {}
    seen: dict[int, float] = {}
    caught_up = asyncio.Event()

    async def listen() -> None:
        while True:
            exists = await watcher.next_exists()
            seen.setdefault(exists, time.monotonic())
            if exists >= len(accepted) and sending.done():
                caught_up.set()

    async def send() -> None:
        client = await Smtp.open(port)
        while time.monotonic() < until:
            n = len(accepted) + 1
            accepted[n] = await client.send([PROBE], message(PROBE, n, tag="probe"))
            await asyncio.sleep(PROBE_EVERY)  # the probe interval, not a synchronisation
        await client.close()
        if max(seen, default=0) >= len(accepted):
            caught_up.set()

    sending = asyncio.get_running_loop().create_future()
    listener = asyncio.create_task(listen())
    try:
        await send()
        sending.set_result(None)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(caught_up.wait(), 60)
    finally:
        listener.cancel()
    # EXISTS k counts the k-th probe; EXISTS for several at once covers each below it
    latencies = []
    for k, at in accepted.items():
        heard = min((t for count, t in seen.items() if count >= k), default=None)
        if heard is None:
            raise BenchFailed(f"probe {k} never showed in IDLE (EXISTS seen: {sorted(seen)})")
        latencies.append(heard - at)
    return latencies


async def run(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    from mailward.db import Database

    seconds = args.seconds or (15 if args.quick else 60)
    async with bench_world(backend, args.workers, {DOMAIN: True},
                           [f"{a}|{PASSWORD}" for a in [PROBE, *LOAD]]) as (tmp, overrides, _):
        db = Database(overrides["database_url"])
        async with server(overrides, {"mx", "delivery", "imap"}, tmp) as (ports, _, rep):
            mx = ports["mx"][0]
            top = None if args.rate else await peak(mx, db, 100 if args.quick else 400)
            rate = args.rate or (top or 0) / 2
            watcher = await Imap.login(ports["imap"][0], PROBE, PASSWORD)
            await watcher.idle()
            until = time.monotonic() + seconds
            started = time.monotonic()
            sent, latencies = await asyncio.gather(
                load(mx, rate, until), probes(mx, watcher, until))
            elapsed = time.monotonic() - started
            await queue_empty(db, time.monotonic() + 120)
            watcher.close()
        await db.dispose()
    lat = percentiles(latencies)
    r = {"backend": backend, "peak": top, "rate": rate, "sent_per_s": sent / elapsed,
         **lat, "problems": rep["problems"]}
    print(f"{backend:<11}{top or float('nan'):>10.1f}{rate:>9.1f}{r['sent_per_s']:>9.1f}"
          f"{lat['n']:>8}{lat['p50_ms']:>9.0f}{lat['p99_ms']:>9.0f}{lat['max_ms']:>9.0f}"
          f"  {'yes' if lat['p99_ms'] <= 200 else 'NO'}", flush=True)
    for line in r["problems"][:3]:
        print(f"   server log: {line}")
    return r


def print_header(args: argparse.Namespace) -> None:
    print(f"\n== visible: probe mail 250 -> IMAP EXISTS under load ({SESSIONS} load sessions "
          f"to {len(LOAD)} mailboxes, a probe every {PROBE_EVERY} s; peak = delivered/s of "
          "a burst, load = half of it unless --rate)")
    print(f"{'backend':<11}{'peak/s':>10}{'load/s':>9}{'sent/s':>9}{'probes':>8}{'p50 ms':>9}"
          f"{'p99 ms':>9}{'max ms':>9}  p99<=200ms", flush=True)
