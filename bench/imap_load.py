"""Benchmark: IMAP sessions and commands per second of our imap role under concurrent clients.

    .venv/bin/python bench/imap_load.py [--backend sqlite|postgresql|both] [--clients 20]
        [--seconds 20] [--messages 200] [--size 4096] [--bodies 10] [--auth-limit N]

Per backend, fresh data dir and database, one mailbox per client pre-filled through the
store (sqlite: Maildir; postgresql: PostgreSQL store), messages with distinct Subjects.
Each client runs sessions back to back: connect, LOGIN, SELECT INBOX, UID FETCH 1:* (FLAGS
INTERNALDATE RFC822.SIZE ENVELOPE), ``--bodies`` random UID FETCH <uid> (BODY.PEEK[]), one
UID STORE <uid> +FLAGS.SILENT (\\Seen), LOGOUT. Every tagged answer must be OK; EXISTS, one
FETCH per message with its UID, size and Subject, and every body's size are checked; any
error fails the run. Latency per command type = command sent -> tagged OK. Clients: raw
asyncio streams in one loop with a small response reader ({n} literals). The imap role runs
via ``mailward.server.run`` in a child (plaintext auth on loopback: TLS not measured); its CPU
over the load window and peak RSS are reported. Cheap Argon2id (t=1, 1 MiB); the default's
cost per login is printed. ``--auth-limit`` overrides auth_failures_per_window.
PostgreSQL: a scratch database next to ``MAILWARD_BENCH_PG_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from support import BenchFailed, argon2_cost, cpu_seconds, database, serve, server_child

SCRIPT = os.path.abspath(__file__)
DOMAIN = "imap.bench.example"
KINDS = ("LOGIN", "SELECT", "FETCH-all", "FETCH-body", "STORE", "LOGOUT")
LITERAL = re.compile(rb"\{(\d+)\}\r\n$")
FETCH = re.compile(rb"^\* \d+ FETCH \(.*?\bUID (\d+)\b")
SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)\b")
SUBJECT = re.compile(rb'\bENVELOPE \((?:NIL|"(?:[^"\\]|\\.)*") "((?:[^"\\]|\\.)*)"')

User = tuple[str, str, dict[int, tuple[int, bytes]]]  # address, password, uid -> size, Subject
Response = tuple[bytes, list[bytes]]  # text (literals left as {n}), the literals


async def make_world(settings: Any, clients: int, messages: int, size: int) -> list[User]:
    """Hosting domain, one filled mailbox per client."""
    from mailward.app import Services
    from mailward.db import AddressList, Database
    from mailward.directory import Actor
    from mailward.store import open_store

    db = Database(settings.db_url)
    directory, op = Services(db, settings), Actor.operator()
    await directory.accounts.create(op, "Bench")
    await directory.domains.create(op, DOMAIN, account="Bench", hosting=True)
    await directory.servers.auto_configure_hosting(op, DOMAIN)
    users = [(f"user{i}@{DOMAIN}", f"Bench-pass-{i}") for i in range(clients)]
    result = await directory.bulk.add_lines(op, [f"{a}|{p}" for a, p in users],
                                            AddressList.NO_FILTER)
    assert all(r.status.value == "added" for r in result.results), result.counts
    body = (b"x" * 76 + b"\r\n") * (size // 78) + b"y" * (size % 78 - 2) + b"\r\n"
    store, world = open_store(settings, db), []
    for address, password in users:
        stored: dict[int, tuple[int, bytes]] = {}
        for n in range(messages):
            subject = f"bench {n}"
            s = await store.deliver(address, (
                f"From: <bench@outside.bench.example>\r\nTo: <{address}>\r\nSubject: {subject}"
                f"\r\nMessage-ID: <bench-{n}@client.bench.example>\r\n\r\n").encode() + body)
            stored[s.uid] = (s.size, subject.encode())
        world.append((address, password, stored))
    await db.dispose()
    return world


class Client:
    """One IMAP connection: tagged commands, responses with literals, latencies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 latencies: dict[str, list[float]]) -> None:
        self.reader, self.writer, self.latencies, self.tags = reader, writer, latencies, 0

    async def response(self) -> Response:
        text, literals = b"", []
        while True:
            line = await self.reader.readuntil(b"\r\n")
            text += line[:-2]
            if not (m := LITERAL.search(line)):
                return text, literals
            literals.append(await self.reader.readexactly(int(m[1])))

    async def command(self, kind: str, command: str) -> list[Response]:
        """Send ``command``; its untagged responses once the tagged one is OK."""
        self.tags += 1
        tag, untagged = b"a%d " % self.tags, []
        started = time.monotonic()
        self.writer.write(tag + command.encode() + b"\r\n")
        while not (resp := await self.response())[0].startswith(tag):
            if not resp[0].startswith(b"* "):
                raise BenchFailed(f"{kind}: unexpected {resp[0][:200]!r}")
            untagged.append(resp)
        if not resp[0].startswith(tag + b"OK"):
            raise BenchFailed(f"{kind}: {resp[0][:200]!r}")
        self.latencies[kind].append(time.monotonic() - started)
        return untagged


async def session(port: int, user: User, bodies: int, rng: random.Random,
                  latencies: dict[str, list[float]]) -> None:
    """LOGIN, SELECT, FETCH-all, FETCH-body x ``bodies``, STORE, LOGOUT; checks answers."""
    address, password, stored = user
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    client = Client(reader, writer, latencies)
    try:
        if not (greeting := (await client.response())[0]).startswith(b"* OK"):
            raise BenchFailed(f"greeting: {greeting[:200]!r}")
        await client.command("LOGIN", f'LOGIN "{address}" "{password}"')
        exists = [t for t, _ in await client.command("SELECT", "SELECT INBOX")
                  if t.endswith(b" EXISTS")]
        if exists != [b"* %d EXISTS" % len(stored)]:
            raise BenchFailed(f"SELECT: {exists!r}, expected {len(stored)} EXISTS")
        seen: dict[int, tuple[int, bytes]] = {}
        for text, _ in await client.command(
                "FETCH-all", "UID FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)"):
            if m := FETCH.match(text):
                size, subject = SIZE.search(text), SUBJECT.search(text)
                seen[int(m[1])] = (int(size[1]) if size else -1, subject[1] if subject else b"")
        if seen != stored:
            wrong = next((u, v) for u, v in seen.items() if stored.get(u) != v) \
                if len(seen) == len(stored) else None
            raise BenchFailed(f"FETCH-all: {len(seen)} answers for {len(stored)} messages; "
                              f"first wrong (uid, size, subject): {wrong}")
        uids = list(stored)
        for uid in (rng.choice(uids) for _ in range(bodies)):
            answers = [(int(m[1]), [len(x) for x in lit]) for t, lit in await client.command(
                "FETCH-body", f"UID FETCH {uid} (BODY.PEEK[])") if (m := FETCH.match(t))]
            if answers != [(uid, [stored[uid][0]])]:
                raise BenchFailed(f"FETCH-body {uid}: (uid, literal sizes) {answers}, "
                                  f"expected one literal of {stored[uid][0]} octets")
        await client.command("STORE", f"UID STORE {rng.choice(uids)} +FLAGS.SILENT (\\Seen)")
        if not any(t.startswith(b"* BYE") for t, _ in await client.command("LOGOUT", "LOGOUT")):
            raise BenchFailed("LOGOUT: no BYE")
        if await reader.read(1):
            raise BenchFailed("data after LOGOUT")
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def client_loop(port: int, user: User, until: float, bodies: int, rng: random.Random,
                      sessions: list[float], latencies: dict[str, list[float]],
                      errors: list[str]) -> None:
    """Sessions back to back until ``until``; every failure is recorded."""
    while (start := time.monotonic()) < until:
        try:
            await asyncio.wait_for(session(port, user, bodies, rng, latencies), 60)
        except (BenchFailed, OSError, TimeoutError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError) as exc:
            errors.append(f"{user[0]}: {type(exc).__name__}: {exc}")
            continue
        sessions.append(time.monotonic() - start)


def percentiles(values: list[float]) -> dict[str, float]:
    """Count and p50/p99/max in ms (nearest rank, as pop3_load)."""
    v = sorted(values)
    return {"n": len(v), "p50_ms": 1000 * v[(len(v) - 1) // 2],
            "p99_ms": 1000 * v[-(-99 * len(v) // 100) - 1], "max_ms": 1000 * v[-1]}


async def run_case(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    from mailward.config import load_settings

    sessions, errors = list[float](), list[str]()
    latencies: dict[str, list[float]] = {kind: [] for kind in KINDS}
    with tempfile.TemporaryDirectory(prefix="mailward-bench-") as name:
        tmp = Path(name)
        async with database(backend, tmp) as url:
            overrides = {
                "data_dir": str(tmp / "data"), "database_url": url, "bind": "127.0.0.1",
                "port_imap": 0, "port_imaps": 0, "smtp_hostname": DOMAIN,
                "allow_plaintext_auth": True, "default_quota_mb": 0,
                "store_backend": "postgresql" if backend == "postgresql" else "maildir",
                "argon2_time_cost": 1, "argon2_memory_kib": 1024,
            }
            if args.auth_limit:
                overrides["auth_failures_per_window"] = args.auth_limit
            world = await make_world(load_settings(**overrides), args.clients,
                                     args.messages, args.size)
            async with server_child(SCRIPT, overrides, tmp, "imap") as ([port, _], pid, report):
                cpu, mine = cpu_seconds(pid), resource.getrusage(resource.RUSAGE_SELF)
                started = time.monotonic()
                await asyncio.gather(*(
                    client_loop(port, user, started + args.seconds, args.bodies,
                                random.Random(i), sessions, latencies, errors)
                    for i, user in enumerate(world)))
                elapsed = time.monotonic() - started
                server_cpu = cpu_seconds(pid) - cpu
                mine_after = resource.getrusage(resource.RUSAGE_SELF)
    if errors or not sessions:
        raise BenchFailed(f"{len(errors)} failed sessions ({len(sessions)} good); first: "
                          + "; ".join(errors[:2]) + "\nserver log: "
                          + "\n".join(report["problems"][:2]))
    s = percentiles(sessions)
    return {
        "sessions": len(sessions), "per_s": len(sessions) / elapsed,
        "commands_per_s": sum(map(len, latencies.values())) / elapsed,
        "p50_ms": s["p50_ms"], "p99_ms": s["p99_ms"], "errors": len(errors),
        "commands": {kind: percentiles(v) for kind, v in latencies.items() if v},
        "server_cpu_s": server_cpu,
        "bench_cpu_s": sum(getattr(mine_after, f) - getattr(mine, f)
                           for f in ("ru_utime", "ru_stime")),
        **report,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=20, help="load duration")
    parser.add_argument("--messages", type=int, default=200, help="messages per mailbox")
    parser.add_argument("--size", type=int, default=4096, help="body bytes per message")
    parser.add_argument("--bodies", type=int, default=10, help="BODY.PEEK[] per session")
    parser.add_argument("--auth-limit", type=int, help="auth_failures_per_window override")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, {"imap"})
        return
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(f"imap: {args.clients} clients x {args.seconds:g} s; session = LOGIN, SELECT INBOX, "
          f"UID FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE) of {args.messages} "
          f"messages, UID FETCH BODY.PEEK[] x{args.bodies} ({args.size:,} body bytes), "
          f"UID STORE +FLAGS.SILENT, LOGOUT; {os.cpu_count()} CPUs; session latency = "
          "connect -> closed, command latency = sent -> tagged OK"
          + (f"; auth_failures_per_window {args.auth_limit}" if args.auth_limit else ""))
    print(f"{'backend':<11}{'store':<11}{'sessions':>9}{'sessions/s':>11}{'commands/s':>11}"
          f"{'p50 ms':>8}{'p99 ms':>8}{'errors':>7}{'server RSS MB':>14}  CPU s server/bench")
    notes, results = [], {}
    for backend in backends:
        try:
            r = results[backend] = asyncio.run(run_case(backend, args))
        except BenchFailed as exc:
            sys.exit(f"FAILED ({backend}): {exc}")
        print(f"{backend:<11}{'postgresql' if backend == 'postgresql' else 'maildir':<11}"
              f"{r['sessions']:>9}{r['per_s']:>11.1f}{r['commands_per_s']:>11.1f}"
              f"{r['p50_ms']:>8.1f}{r['p99_ms']:>8.1f}{r['errors']:>7}"
              f"{r['server_rss_mb']:>14.1f}  {r['server_cpu_s']:.1f}/{r['bench_cpu_s']:.1f}",
              flush=True)
        notes += [f"{backend} server log ({len(r['problems'])} problems): {line}"
                  for line in r["problems"][:5]]
    print(f"\n{'backend':<11}{'command':<12}{'count':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for backend, r in results.items():
        for kind, c in r["commands"].items():
            print(f"{backend:<11}{kind:<12}{c['n']:>8}{c['p50_ms']:>9.1f}{c['p99_ms']:>9.1f}"
                  f"{c['max_ms']:>9.1f}")
    print("every session complete, every tagged answer OK, every FETCH and body size checked",
          argon2_cost(), *notes, sep="\n")


if __name__ == "__main__":
    main()
