"""Benchmark: messages per second through our mx and delivery roles, and their latency.

    .venv/bin/python bench/mx_throughput.py [--backend sqlite|postgresql|both]
        [--route relay|mailbox|both] [--sessions 20] [--messages 50] [--size 4096]

Per backend and route, in a fresh data dir and database: one address per session, to
which that aiosmtplib session sends its messages on one connection. ``relay``: filtering-
only domain whose mail server is an aiosmtpd sink here; ``mailbox``: hosting domain with
mailboxes, arrival seen by polling (the store has no notifications; resolution printed).
Our roles run via ``mailward.server.run`` in a child process (INFO log, as ``mailward
serve``), apart from the load generator; RSS and CPU are its own. Loopback only. A lost,
duplicated or unexpected message (a bounce), or a queue left undrained, fails the run.
PostgreSQL: a scratch database next to ``MAILWARD_BENCH_PG_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from support import BenchFailed, database, serve, server_child

SCRIPT = os.path.abspath(__file__)
SENDER = "bench@outside.bench.example"
BENCH_ID = re.compile(rb"^X-Bench-Id: (\d+)\r?$", re.MULTILINE)
POLL_SECONDS = 0.02
STALL_SECONDS = 30.0  # no delivery progress for this long fails the run



class Arrivals:
    """Delivery times by bench id; duplicates and foreign messages (bounces) are kept."""

    def __init__(self) -> None:
        self.times: dict[int, float] = {}
        self.duplicates: list[int] = []
        self.foreign: list[bytes] = []

    def record(self, data: bytes, when: float) -> None:
        found = BENCH_ID.search(data.split(b"\r\n\r\n", 1)[0])
        if found is None:
            self.foreign.append(data[:300])
        elif int(found.group(1)) in self.times:
            self.duplicates.append(int(found.group(1)))
        else:
            self.times[int(found.group(1))] = when

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """As the aiosmtpd handler of the customer's server (the sink)."""
        self.record(bytes(envelope.original_content or b""), time.monotonic())
        return "250 2.0.0 accepted by sink"


@contextlib.asynccontextmanager
async def sink(arrivals: Arrivals) -> AsyncIterator[int]:
    from aiosmtpd.smtp import SMTP

    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(arrivals, hostname="sink.bench.example", decode_data=False),
        host="127.0.0.1", port=0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def make_world(settings: Any, route: str, sessions: int, sink_port: int) -> list[str]:
    """Account, domain and one recipient per session; returns the recipients."""
    from mailward.app import Services
    from mailward.db import Database
    from mailward.db.models import AddressList
    from mailward.directory import Actor

    db = Database(settings.db_url)
    directory, op, domain = Services(db, settings), Actor.operator(), f"{route}.bench.example"
    await directory.accounts.create(op, "Bench")
    await directory.domains.create(op, domain, account="Bench", hosting=route == "mailbox")
    if route == "mailbox":
        await directory.servers.auto_configure_hosting(op, domain)
        lines = [f"user{i}@{domain}|Bench-pass-{i}" for i in range(sessions)]
    else:
        await directory.servers.add(op, domain, f"127.0.0.1:{sink_port}", preference=10)
        lines = [f"user{i}@{domain}" for i in range(sessions)]
    result = await directory.bulk.add_lines(op, lines, AddressList.FILTER)
    await db.dispose()
    assert all(r.status.value == "added" for r in result.results), result.counts
    return [line.split("|")[0] for line in lines]


async def connect(port: int) -> Any:
    """A greeted (EHLO) client connection to our mx, without STARTTLS."""
    import aiosmtplib

    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=120,
                             local_hostname="client.bench.example")
    await client.connect()
    await client.ehlo()
    return client


async def session(client: Any, recipient: str, numbers: range, body: bytes,
                  accepted: dict[int, float]) -> None:
    """Send messages back to back on one connection; record the time of each 250."""
    for n in numbers:
        data = (f"From: <{SENDER}>\r\nTo: <{recipient}>\r\nSubject: bench {n}\r\n"
                f"Message-ID: <bench-{n}@client.bench.example>\r\nX-Bench-Id: {n}\r\n\r\n")
        refused, reply = await client.sendmail(SENDER, [recipient], data.encode() + body)
        if refused or not reply.startswith("2.0.0 Ok: queued"):
            raise BenchFailed(f"message {n} not accepted: {refused or reply}")
        accepted[n] = time.monotonic()
    await client.quit()


def inbox_files(inboxes: list[Path]) -> list[int]:
    """Files in each INBOX's new/ and cur/: a cheap trigger that takes no store lock."""
    return [sum(len(os.listdir(d)) for d in (i / "new", i / "cur") if d.is_dir())
            for i in inboxes]


async def watch_mailboxes(data_dir: Path, mailboxes: list[str], arrivals: Arrivals,
                          expected: int, rounds: list[float]) -> None:
    """Poll the INBOXes until ``expected`` messages arrived; read new ones via the store."""
    from mailward.store import MaildirStore

    store = MaildirStore(data_dir / "mail")
    inboxes, known = [store.maildir_path(m) for m in mailboxes], [0] * len(mailboxes)
    last_uid = [0] * len(mailboxes)
    while len(arrivals.times) + len(arrivals.duplicates) < expected:
        started = time.monotonic()
        counts = await asyncio.to_thread(inbox_files, inboxes)
        now = time.monotonic()
        for i, mailbox in enumerate(mailboxes):
            if counts[i] <= known[i]:
                continue
            infos = await store.messages(mailbox, "INBOX")
            known[i] = len(infos)
            for info in (info for info in infos if info.uid > last_uid[i]):
                arrivals.record(await store.fetch(mailbox, "INBOX", info.uid), now)
                last_uid[i] = info.uid
        rounds.append(time.monotonic() - started)
        await asyncio.sleep(POLL_SECONDS)


async def until_delivered(arrivals: Arrivals, expected: int,
                          queue_size: Callable[[], Awaitable[tuple[int, int]]]) -> None:
    """Wait for every message, then for an empty queue; fail if progress stalls."""
    last, since = -1, time.monotonic()
    while len(arrivals.times) < expected or await queue_size() != (0, 0):
        if len(arrivals.times) != last:
            last, since = len(arrivals.times), time.monotonic()
        elif time.monotonic() - since > STALL_SECONDS:
            raise BenchFailed(f"{last} of {expected} messages delivered, {len(arrivals.foreign)}"
                              f" unexpected ones (bounces?) at the sink; queue (messages, "
                              f"recipients): {await queue_size()}")
        await asyncio.sleep(0.02)


async def run_case(backend: str, route: str, args: argparse.Namespace) -> dict[str, Any]:
    from sqlalchemy import func, select

    from mailward.config import load_settings
    from mailward.db import Database, QueuedMessage, QueuedRecipient

    expected, m = args.sessions * args.messages, args.messages
    body = (b"x" * 76 + b"\r\n") * (args.size // 78) + b"y" * (args.size % 78)
    arrivals, accepted, rounds = Arrivals(), dict[int, float](), list[float]()
    with tempfile.TemporaryDirectory(prefix="mailward-bench-") as name:
        tmp = Path(name)
        async with database(backend, tmp) as url, sink(arrivals) as sink_port:
            overrides = {
                "data_dir": str(tmp / "data"), "database_url": url, "bind": "127.0.0.1",
                "port_mx": 0, "port_web": 0, "smtp_hostname": "mx.bench.example",
                "relay_host": f"127.0.0.1:{sink_port}", "default_quota_mb": 0,
                "argon2_time_cost": 1, "argon2_memory_kib": 1024,
                "retry_first_seconds": 2, "retry_max_interval_seconds": 5,
                # the mail flow alone: the spam checks would ask public DNS for the bench's
                # made-up domains (bench/filter_accuracy.py measures the filter)
                "spam_filter": False,
                # the customer server is the bench's loopback sink; every client session
                # comes from 127.0.0.1 (one address, unlike real senders)
                "allow_private_mail_servers": True, "max_connections_per_ip_mx": 1000,
            }
            settings = load_settings(**overrides)
            recipients = await make_world(settings, route, args.sessions, sink_port)
            db = Database(url)

            async def queue_size() -> tuple[int, int]:
                async with db.session() as s:
                    return (await s.scalar(select(func.count()).select_from(QueuedMessage)),
                            await s.scalar(select(func.count()).select_from(QueuedRecipient)))

            async with server_child(SCRIPT, overrides, tmp, "mx") as ([port], _, report):
                clients = await asyncio.gather(*(connect(port) for _ in recipients))
                watcher = None
                if route == "mailbox":
                    watcher = asyncio.create_task(watch_mailboxes(
                        settings.data_dir, recipients, arrivals, expected, rounds))
                cpu, started = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
                await asyncio.gather(*(
                    session(client, rcpt, range(i * m, (i + 1) * m), body, accepted)
                    for i, (client, rcpt) in enumerate(zip(clients, recipients, strict=True))))
                await until_delivered(arrivals, expected, queue_size)
                if watcher:
                    await watcher
                await asyncio.sleep(0.5)  # room for late duplicates or bounces
                cpu_after = resource.getrusage(resource.RUSAGE_SELF)
            await db.dispose()
    lost = set(accepted) - set(arrivals.times)
    if arrivals.duplicates or arrivals.foreign or lost or len(accepted) != expected:
        raise BenchFailed(f"{len(accepted)} of {expected} accepted, {len(lost)} lost, "
                         f"{len(arrivals.duplicates)} duplicates, {len(arrivals.foreign)} "
                         f"unexpected (first: {arrivals.foreign[:1]!r})")
    latencies = sorted(arrivals.times[n] - accepted[n] for n in accepted)
    return {
        "accepted_per_s": expected / (max(accepted.values()) - started),
        "delivered_per_s": expected / (max(arrivals.times.values()) - started),
        "p50_ms": 1000 * latencies[(len(latencies) - 1) // 2],
        "p99_ms": 1000 * latencies[-(-99 * len(latencies) // 100) - 1],
        "max_ms": 1000 * latencies[-1],
        "poll_ms": 1000 * (POLL_SECONDS + sum(rounds) / len(rounds)) if rounds else None,
        "bench_cpu_s": sum(getattr(cpu_after, f) - getattr(cpu, f)
                           for f in ("ru_utime", "ru_stime")),
        **report,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--route", choices=["relay", "mailbox", "both"], default="both")
    parser.add_argument("--sessions", type=int, default=20, help="concurrent SMTP sessions")
    parser.add_argument("--messages", type=int, default=50, help="messages per session")
    parser.add_argument("--size", type=int, default=4096, help="body bytes per message")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, {"mx", "delivery"})
        return
    from mailward.config import Settings

    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    routes = ["relay", "mailbox"] if args.route == "both" else [args.route]
    print(f"mx -> delivery: {args.sessions} sessions x {args.messages} messages, "
          f"{args.size:,} body bytes; {os.cpu_count()} CPUs; delivery_concurrency "
          f"{Settings.model_fields['delivery_concurrency'].default}; latency = 250 -> delivered")
    print(f"{'backend':<11}{'route':<9}{'accepted/s':>11}{'delivered/s':>12}{'p50 ms':>8}"
          f"{'p99 ms':>8}{'max ms':>8}{'server RSS MB':>14}  CPU s server/bench")
    notes = []
    for backend in backends:
        for route in routes:
            try:
                r = asyncio.run(run_case(backend, route, args))
            except BenchFailed as exc:
                sys.exit(f"FAILED ({backend}, {route}): {exc}")
            print(f"{backend:<11}{route:<9}{r['accepted_per_s']:>11.1f}"
                  f"{r['delivered_per_s']:>12.1f}{r['p50_ms']:>8.0f}{r['p99_ms']:>8.0f}"
                  f"{r['max_ms']:>8.0f}{r['server_rss_mb']:>14.1f}"
                  f"  {r['server_cpu_s']:.1f}/{r['bench_cpu_s']:.1f}", flush=True)
            if r["poll_ms"] is not None:
                notes.append(f"{backend} mailbox: arrival seen by polling, resolution "
                             f"~{r['poll_ms']:.0f} ms")
            notes += [f"{backend} {route} server log ({len(r['problems'])} problems): {line}"
                      for line in r["problems"][:5]]
    print("every message delivered exactly once; queues drained", *notes, sep="\n")


if __name__ == "__main__":
    main()
