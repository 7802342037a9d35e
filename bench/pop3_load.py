"""Benchmark: POP3 sessions per second of our pop3 role under concurrent clients.

    .venv/bin/python bench/pop3_load.py [--backend sqlite|postgresql|both] [--clients 20]
        [--seconds 20] [--messages 10] [--size 4096] [--auth-limit N]

Per backend, fresh data dir and database, one mailbox per client pre-filled through the
store (sqlite: Maildir; postgresql: PostgreSQL store). Each client runs sessions back to
back: connect, USER/PASS, STAT, LIST, RETR 1..n, QUIT (no DELE); every answer and size is
checked and any error fails the run. Clients: raw asyncio streams in one loop (less
overhead than poplib threads). The pop3 role runs via ``mailward.server.run`` in a child
(plaintext auth on loopback: TLS not measured); its CPU over the load window and peak RSS
are reported. Cheap Argon2id (t=1, 1 MiB); the default's cost per login is printed.
``--auth-limit`` overrides auth_failures_per_window (all clients share 127.0.0.1 and
logins in flight count against it). PostgreSQL: a scratch database next to
``MAILWARD_BENCH_PG_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from support import BenchFailed, argon2_cost, cpu_seconds, database, serve, server_child

SCRIPT = os.path.abspath(__file__)
DOMAIN = "pop.bench.example"



async def make_world(settings: Any, clients: int, messages: int,
                     size: int) -> list[tuple[str, str, list[int]]]:
    """Hosting domain, one filled mailbox per client; returns (address, password, sizes)."""
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
    # ~size body bytes in CRLF-ended lines (else RETR would add a CRLF to the LIST size)
    body = (b"x" * 76 + b"\r\n") * (size // 78) + b"y" * (size % 78 - 2) + b"\r\n"
    store, world = open_store(settings, db), []
    for address, password in users:
        sizes = [(await store.deliver(address, (
            f"From: <bench@outside.bench.example>\r\nTo: <{address}>\r\nSubject: bench {n}"
            f"\r\nMessage-ID: <bench-{n}@client.bench.example>\r\n\r\n").encode() + body)).size
            for n in range(messages)]
        world.append((address, password, sizes))
    await db.dispose()
    return world


async def session(port: int, address: str, password: str, sizes: list[int],
                  retr: int | None = None, exact_stat: bool = True) -> None:
    """connect, USER/PASS, STAT, LIST, RETR 1..``retr`` (default: every message), QUIT;
    checks every answer. ``exact_stat``: the STAT line must be exactly ``+OK count size``
    (else only its first two numbers are compared, as a peer may add text)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def ok(command: str | None = None) -> bytes:
        if command is not None:
            writer.write(command.encode() + b"\r\n")
        if not (line := await reader.readline()).startswith(b"+OK"):
            raise BenchFailed(f"{(command or 'greeting').split(' ')[0]}: {line[:200]!r}")
        return line

    async def multiline(command: str) -> list[bytes]:
        await ok(command)
        lines = []
        while (line := await reader.readline()) != b".\r\n":
            if not line.endswith(b"\r\n"):
                raise BenchFailed(f"{command}: truncated answer {line[:200]!r}")
            lines.append(line[1:] if line.startswith(b"..") else line)  # dot-unstuffed
        return lines

    try:
        await ok()
        await ok(f"USER {address}")
        await ok(f"PASS {password}")
        line = await ok("STAT")
        if (line.rstrip() != f"+OK {len(sizes)} {sum(sizes)}".encode() if exact_stat
                else line.split()[1:3] != [b"%d" % len(sizes), b"%d" % sum(sizes)]):
            raise BenchFailed(f"STAT: {line!r}, expected {len(sizes)} {sum(sizes)}")
        if (lines := await multiline("LIST")) != [
                f"{n} {s}\r\n".encode() for n, s in enumerate(sizes, 1)]:
            raise BenchFailed(f"LIST: {lines[:3]!r}...")
        for n, size in enumerate(sizes[:retr], 1):
            if (octets := sum(map(len, await multiline(f"RETR {n}")))) != size:
                raise BenchFailed(f"RETR {n}: {octets} octets, expected {size}")
        await ok("QUIT")
        if await reader.read(1):
            raise BenchFailed("data after QUIT")
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def client_loop(port: int, user: tuple[str, str, list[int]], until: float,
                      latencies: list[float], errors: list[str], retr: int | None = None,
                      exact_stat: bool = True) -> None:
    """Sessions (as :func:`session`) back to back until ``until``; every failure is
    recorded."""
    while (start := time.monotonic()) < until:
        try:
            await asyncio.wait_for(session(port, *user, retr, exact_stat), 60)
        except (BenchFailed, OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            errors.append(f"{user[0]}: {type(exc).__name__}: {exc}")
            continue
        latencies.append(time.monotonic() - start)


async def run_case(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    from mailward.config import load_settings

    latencies, errors = list[float](), list[str]()
    with tempfile.TemporaryDirectory(prefix="mailward-bench-") as name:
        tmp = Path(name)
        async with database(backend, tmp) as url:
            overrides = {
                "data_dir": str(tmp / "data"), "database_url": url, "bind": "127.0.0.1",
                "port_pop3": 0, "port_pop3s": 0, "smtp_hostname": "pop.bench.example",
                "allow_plaintext_auth": True, "default_quota_mb": 0,
                "store_backend": "postgresql" if backend == "postgresql" else "maildir",
                "argon2_time_cost": 1, "argon2_memory_kib": 1024,
            }
            if args.auth_limit:
                overrides["auth_failures_per_window"] = args.auth_limit
            world = await make_world(load_settings(**overrides), args.clients,
                                     args.messages, args.size)
            async with server_child(SCRIPT, overrides, tmp, "pop3") as ([port, _], pid, report):
                cpu, mine = cpu_seconds(pid), resource.getrusage(resource.RUSAGE_SELF)
                started = time.monotonic()
                await asyncio.gather(*(
                    client_loop(port, user, started + args.seconds, latencies, errors)
                    for user in world))
                elapsed = time.monotonic() - started
                server_cpu = cpu_seconds(pid) - cpu
                mine_after = resource.getrusage(resource.RUSAGE_SELF)
    if errors or not latencies:
        raise BenchFailed(f"{len(errors)} failed sessions ({len(latencies)} good); first: "
                          + "; ".join(errors[:2]) + "\nserver log: "
                          + "\n".join(report["problems"][:2]))
    latencies.sort()
    return {
        "sessions": len(latencies), "per_s": len(latencies) / elapsed,
        "p50_ms": 1000 * latencies[(len(latencies) - 1) // 2], "server_cpu_s": server_cpu,
        "p99_ms": 1000 * latencies[-(-99 * len(latencies) // 100) - 1],
        "max_ms": 1000 * latencies[-1], "errors": len(errors),
        "bench_cpu_s": sum(getattr(mine_after, f) - getattr(mine, f)
                           for f in ("ru_utime", "ru_stime")),
        **report,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=20, help="load duration")
    parser.add_argument("--messages", type=int, default=10, help="messages per mailbox")
    parser.add_argument("--size", type=int, default=4096, help="body bytes per message")
    parser.add_argument("--auth-limit", type=int, help="auth_failures_per_window override")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, {"pop3"})
        return
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(f"pop3: {args.clients} clients x {args.seconds:g} s; session = USER/PASS, STAT, "
          f"LIST, RETR x{args.messages} ({args.size:,} body bytes), QUIT; "
          f"{os.cpu_count()} CPUs; latency = connect -> closed"
          + (f"; auth_failures_per_window {args.auth_limit}" if args.auth_limit else ""))
    print(f"{'backend':<11}{'store':<11}{'sessions':>9}{'sessions/s':>11}{'p50 ms':>8}"
          f"{'p99 ms':>8}{'max ms':>8}{'errors':>7}{'server RSS MB':>14}  CPU s server/bench")
    notes = []
    for backend in backends:
        try:
            r = asyncio.run(run_case(backend, args))
        except BenchFailed as exc:
            sys.exit(f"FAILED ({backend}): {exc}")
        print(f"{backend:<11}{'postgresql' if backend == 'postgresql' else 'maildir':<11}"
              f"{r['sessions']:>9}{r['per_s']:>11.1f}"
              f"{r['p50_ms']:>8.1f}{r['p99_ms']:>8.1f}{r['max_ms']:>8.1f}{r['errors']:>7}"
              f"{r['server_rss_mb']:>14.1f}  {r['server_cpu_s']:.1f}/{r['bench_cpu_s']:.1f}",
              flush=True)
        notes += [f"{backend} server log ({len(r['problems'])} problems): {line}"
                  for line in r["problems"][:5]]
    print("every session complete, every answer and message size checked", argon2_cost(),
          *notes, sep="\n")


if __name__ == "__main__":
    main()
