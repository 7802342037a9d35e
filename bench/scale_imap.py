"""Scale sections ``mailbox`` and ``idle`` of the imap role.

``mailbox``: one INBOX of ``--mailbox-messages`` (100,000) messages of ~600 bytes, a tenth
of them \\Seen. Fill: the first message through the store API (it makes the mailbox),
the rest by direct bulk writes: Maildir (SQLite runs) — files written straight into
``cur/`` with standard Maildir names, as another program or a migration would drop them,
then UIDs assigned by the store's own sync (``store.messages``, timed as "sync");
PostgreSQL store — ``store_messages`` rows by Core executemany, UIDNEXT and usage set to
match. Then the imap role starts in a child and ``imaplib`` (real sockets, client parsing
included) times LOGIN, three SELECT INBOX (the first is the server's first look) and
three ``FETCH 1:* (FLAGS)``; EXISTS and the number of FETCH answers are checked.

``idle``: ``--idle`` (10,000) connections, spread over ``--idle-users`` mailboxes, each
LOGIN, SELECT INBOX, IDLE (raw asyncio clients, 100 opening at a time; the bench and the
server raise RLIMIT_NOFILE, the bench config raises the imap connection caps). Server RSS
(VmRSS summed over the server's process tree) before the first and after the last gives
memory per connection. Then one message to every mailbox through the mx role (one SMTP
transaction per 100 recipients; mx + delivery run in the same process) and the time from
its 250 until each IDLE client has its EXISTS (the session re-checks every 30 s even
without a change notice, so a missed notice shows as ~30 s).
"""

from __future__ import annotations

import argparse
import asyncio
import imaplib
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scale_support import (
    Imap,
    Smtp,
    bench_world,
    message,
    percentiles,
    raise_nofile,
    server,
    tree_rss_mb,
)
from support import BenchFailed

DOMAIN = "hosted.bench.example"
OWNER = f"owner@{DOMAIN}"
PASSWORD = "Bench-pass-0"


def small(n: int) -> bytes:
    return (f"From: <someone@bench.example>\r\nTo: <{OWNER}>\r\nSubject: message {n}\r\n"
            f"Message-ID: <m{n}@bench.example>\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\n"
            "\r\n").encode() + (b"y" * 76 + b"\r\n") * 5


def write_maildir(cur: Path, count: int) -> None:
    """``count`` message files straight into a Maildir's ``cur/`` (every tenth \\Seen)."""
    from mailward.store.maildir.files import unique_base

    for n in range(2, count + 1):
        data = small(n)
        name = unique_base(len(data)) + (":2,S" if n % 10 == 0 else ":2,")
        with open(cur / name, "wb") as handle:
            handle.write(data)


async def fill_postgres(db: Any, count: int) -> None:
    """UIDs 2 … ``count`` as ``store_messages`` rows of the owner's INBOX."""
    from sqlalchemy import insert, select, update

    from mailward.db.models import StoreFolder, StoreMailbox, StoreMessage

    async with db.engine.begin() as conn:
        box, folder = (await conn.execute(
            select(StoreMailbox.id, StoreFolder.id)
            .join(StoreFolder, StoreFolder.mailbox_id == StoreMailbox.id)
            .where(StoreMailbox.address == OWNER, StoreFolder.name == "INBOX"))).one()
        now, total = datetime.now(UTC), 0
        for lo in range(2, count + 1, 10_000):
            rows = [{"folder_id": folder, "uid": n, "size": len(data := small(n)),
                     "flags": "\\Seen" if n % 10 == 0 else "", "internal_date": now,
                     "body": data} for n in range(lo, min(count + 1, lo + 10_000))]
            total += sum(r["size"] for r in rows)
            await conn.execute(insert(StoreMessage), rows)
        await conn.execute(update(StoreFolder).where(StoreFolder.id == folder)
                           .values(uidnext=count + 1))
        await conn.execute(update(StoreMailbox).where(StoreMailbox.id == box)
                           .values(usage_bytes=StoreMailbox.usage_bytes + total))


def imap_times(port: int, count: int) -> dict[str, list[float]]:
    """LOGIN, SELECT x3, FETCH 1:* (FLAGS) x3 with imaplib; seconds of each."""
    out: dict[str, list[float]] = {"login": [], "select": [], "fetch": []}
    client = imaplib.IMAP4("127.0.0.1", port)
    started = time.perf_counter()
    client.login(OWNER, PASSWORD)
    out["login"].append(time.perf_counter() - started)
    for _ in range(3):
        started = time.perf_counter()
        status, data = client.select("INBOX")
        out["select"].append(time.perf_counter() - started)
        if status != "OK" or int(data[0] or 0) != count:
            raise BenchFailed(f"SELECT: {status} {data!r}, expected {count} EXISTS")
    for _ in range(3):
        started = time.perf_counter()
        status, answers = client.fetch("1:*", "(FLAGS)")
        out["fetch"].append(time.perf_counter() - started)
        if status != "OK" or len(answers) != count:
            raise BenchFailed(f"FETCH 1:* (FLAGS): {status}, {len(answers)} answers for {count}")
    client.logout()
    return out


async def run_mailbox(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    from mailward.db import Database
    from mailward.store import MaildirStore, open_store

    count = args.mailbox_messages or (5_000 if args.quick else 100_000)
    async with bench_world(backend, args.workers, {DOMAIN: True},
                           [f"{OWNER}|{PASSWORD}"]) as (tmp, overrides, settings):
        db = Database(overrides["database_url"])
        store = open_store(settings, db)
        await store.deliver(OWNER, small(1))
        started, sync_s = time.monotonic(), 0.0
        if isinstance(store, MaildirStore):
            await asyncio.to_thread(write_maildir, store.maildir_path(OWNER) / "cur", count)
            fill_s = time.monotonic() - started
            started = time.monotonic()
            if len(await store.messages(OWNER, "INBOX")) != count:
                raise BenchFailed("the store's sync did not find every file")
            sync_s = time.monotonic() - started
        else:
            await fill_postgres(db, count)
            fill_s = time.monotonic() - started
        await db.dispose()
        async with server(overrides, {"imap"}, tmp) as (ports, pid, report):
            times = await asyncio.to_thread(imap_times, ports["imap"][0], count)
            rss = tree_rss_mb(pid)
    r = {"backend": backend, "count": count, "fill_s": fill_s, "sync_s": sync_s,
         **times, "rss_mb": rss, "peak_mb": report["hwm_mb"],
         "problems": report["problems"]}
    store_name = "maildir" if backend == "sqlite" else "postgresql"
    print(f"{backend:<11}{store_name:<11}{count:>9,}{fill_s:>8.1f}{sync_s:>8.1f}"
          f"{1000 * r['login'][0]:>9.0f}"
          + "".join(f"{1000 * t:>9.0f}" for t in r["select"])
          + "".join(f"{1000 * t:>9.0f}" for t in r["fetch"])
          + f"{r['rss_mb']:>9.0f}{r['peak_mb']:>9.0f}", flush=True)
    for line in r["problems"][:3]:
        print(f"   server log: {line}")
    return r


def print_mailbox_header(args: argparse.Namespace) -> None:
    print("\n== mailbox: one big INBOX over IMAP (imaplib); ms per command; fill = direct "
          "bulk writes (Maildir files / store_messages rows), sync = the Maildir store's "
          "first sync of them (UIDs)")
    print(f"{'backend':<11}{'store':<11}{'messages':>9}{'fill s':>8}{'sync s':>8}"
          f"{'LOGIN':>9}{'SELECT1':>9}{'SELECT2':>9}{'SELECT3':>9}{'FETCH1':>9}{'FETCH2':>9}"
          f"{'FETCH3':>9}{'RSS MB':>9}{'peak MB':>9}", flush=True)


async def open_idle(port: int, users: list[str], n: int, done: list[Imap],
                    limit: asyncio.Semaphore) -> None:
    async with limit:
        client = await asyncio.wait_for(
            Imap.login(port, users[n % len(users)], PASSWORD), 120)
        await client.idle()
        done.append(client)


async def run_idle(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    conns = args.idle or (500 if args.quick else 10_000)
    users = [f"idle{i}@{DOMAIN}" for i in range(min(args.idle_users, conns))]
    nofile = raise_nofile(conns + 1000)
    if nofile < conns + 100:
        raise BenchFailed(f"RLIMIT_NOFILE {nofile} is too low for {conns} connections")
    async with bench_world(backend, args.workers, {DOMAIN: True},
                           [f"{u}|{PASSWORD}" for u in users],
                           max_connections_imap=conns + 100,
                           max_connections_per_ip_imap=conns + 100) as (tmp, overrides, _):
        clients: list[Imap] = []
        async with server(overrides, {"imap", "mx", "delivery"}, tmp,
                          nofile=conns + 1000) as (ports, pid, report):
            port = ports["imap"][0]
            warm = await Imap.login(port, users[0], PASSWORD)  # first-use costs
            await warm.command("LOGOUT")
            warm.close()
            await asyncio.sleep(1)
            before = tree_rss_mb(pid)
            started, limit = time.monotonic(), asyncio.Semaphore(100)
            try:
                await asyncio.gather(*(open_idle(port, users, n, clients, limit)
                                       for n in range(conns)))
                open_s = time.monotonic() - started
                await asyncio.sleep(2)  # let the server settle (buffers, GC)
                after = tree_rss_mb(pid)
                heard: list[float] = []

                async def wait(client: Imap) -> None:
                    await client.next_exists()
                    heard.append(time.monotonic())

                waiters = [asyncio.create_task(wait(c)) for c in clients]
                smtp, sent = await Smtp.open(ports["mx"][0]), 0.0
                for i in range(0, len(users), 100):
                    sent = await smtp.send(users[i:i + 100], message(users[i], i))
                await smtp.close()
                _, pending = await asyncio.wait(waiters, timeout=90)
                for task in pending:
                    task.cancel()
            finally:
                for c in clients:
                    c.close()
    lat = percentiles([t - sent for t in heard])
    r = {"backend": backend, "conns": conns, "users": len(users), "open_s": open_s,
         "before_mb": before, "after_mb": after,
         "per_conn_kb": (after - before) * 1024 / conns, "heard": len(heard), **lat,
         "peak_mb": report["hwm_mb"], "problems": report["problems"]}
    print(f"{backend:<11}{conns:>8,}{len(users):>7}{open_s:>8.1f}{before:>11.1f}"
          f"{after:>10.1f}{r['per_conn_kb']:>9.1f}{len(heard):>8,}{lat['p50_ms']:>9.0f}"
          f"{lat['p99_ms']:>9.0f}{lat['max_ms']:>9.0f}{r['peak_mb']:>9.0f}", flush=True)
    for line in r["problems"][:3]:
        print(f"   server log: {line}")
    return r


def print_idle_header(args: argparse.Namespace) -> None:
    print("\n== idle: IMAP connections in IDLE held by one node (imap + mx + delivery in "
          f"one process tree); RSS = VmRSS summed over it; {os.cpu_count()} CPUs; EXISTS = "
          "last 250 of the new mail -> untagged EXISTS at each client")
    print(f"{'backend':<11}{'conns':>8}{'users':>7}{'open s':>8}{'RSS before':>11}"
          f"{'RSS after':>10}{'KB/conn':>9}{'EXISTS':>8}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'max ms':>9}{'peak MB':>9}", flush=True)
