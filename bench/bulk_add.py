"""Benchmark: seconds and peak memory to bulk-add 100,000 addresses (mixed formats).

Then the same lines are submitted again to the other list (every address "updated").
Runs each backend in its own child process so peak RSS is per backend:

    .venv/bin/python bench/bulk_add.py [--lines 100000] [--backend sqlite|postgresql|both]

The mix imitates a provider onboarding customers (reference doc §1.1: addresses first,
set up later): mostly bare addresses, forwarders with one to three destinations, and
mailboxes with passwords. Password lines cost one Argon2id hash each with the default
(production) parameters, so their share is printed with the result.
PostgreSQL: ``MAILWARD_TEST_PG_URL`` (default ``postgresql+asyncpg://postgres@127.0.0.1/test``);
a scratch database is created and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PG_URL = os.environ.get(
    "MAILWARD_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
DOMAINS = 50
# Shares of the mix, in percent: bare address, forwarder (|relay), mailbox (|password).
MIX = {"bare": 80, "forwarder": 18, "mailbox": 2}


def make_lines(count: int) -> list[str]:
    lines = []
    for i in range(count):
        domain = f"customer{i % DOMAINS}.example"
        address = f"user{i}@{domain}"
        slot = i % 100
        if slot < MIX["bare"]:
            lines.append(address)
        elif slot < MIX["bare"] + MIX["forwarder"]:
            dests = ",".join(f"dest{i}-{n}@elsewhere.example" for n in range(1 + i % 3))
            lines.append(f"{address}|{dests}|relay")
        else:
            lines.append(f"{address}|Pw-{secrets.token_hex(6)}")
        if i % 1000 == 999:
            lines.append("")  # the odd blank line, as pasted lists have
    return lines


async def run_backend(url: str, count: int, data_dir: str) -> dict[str, object]:
    from mailward.config import load_settings
    from mailward.db import Database
    from mailward.db.migrate import upgrade
    from mailward.db.models import AddressList
    from mailward.directory import Actor, Directory

    settings = load_settings(data_dir=data_dir, database_url=url)
    await upgrade(url)
    db = Database(url)
    directory = Directory(db, settings)
    operator = Actor.operator()
    await directory.accounts.create(operator, "Bench")
    for n in range(DOMAINS):
        await directory.domains.create(operator, f"customer{n}.example", account="Bench")
    actor = await directory.accounts.actor_for("Bench")
    lines = make_lines(count)
    started = time.perf_counter()
    result = await directory.bulk.add_lines(actor, lines, AddressList.FILTER)
    elapsed = time.perf_counter() - started
    started = time.perf_counter()
    moved = await directory.bulk.add_lines(actor, lines, AddressList.NO_FILTER)
    moved_elapsed = time.perf_counter() - started
    await db.dispose()
    hashed = 200
    hash_started = time.perf_counter()
    await asyncio.gather(*(directory.passwords.hash_async(f"pw-{n}") for n in range(hashed)))
    per_hash_ms = (time.perf_counter() - hash_started) * 1000 / hashed
    return {
        "wall_ms_per_password": round(per_hash_ms, 1),
        "seconds": round(elapsed, 2),
        "moved_seconds": round(moved_elapsed, 2),
        "moved_counts": moved.counts,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "counts": result.counts,
    }


def child(backend: str, count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if backend == "sqlite":
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
            print(json.dumps(asyncio.run(run_backend(url, count, tmp))))
            return
        import asyncpg
        from sqlalchemy.engine import make_url

        name = f"mailward_bench_{secrets.token_hex(4)}"
        admin = make_url(PG_URL).set(drivername="postgresql").render_as_string(False)

        async def admin_sql(sql: str) -> None:
            conn = await asyncpg.connect(admin)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(admin_sql(f'CREATE DATABASE "{name}"'))
        try:
            url = make_url(PG_URL).set(database=name).render_as_string(False)
            print(json.dumps(asyncio.run(run_backend(url, count, tmp))))
        finally:
            asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.backend, args.lines)
        return
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    mix = ", ".join(f"{share}% {kind}" for kind, share in MIX.items())
    print(f"bulk add of {args.lines:,} lines ({mix}); {os.cpu_count()} CPUs")
    for backend in backends:
        out = subprocess.run(
            [sys.executable, __file__, "--child", "--backend", backend, "--lines", str(args.lines)],
            check=True, capture_output=True, text=True,
        ).stdout
        report = json.loads(out.strip().splitlines()[-1])
        print(f"{backend:<11} {report['seconds']:>8.2f} s   "
              f"peak RSS {report['peak_rss_mb']:>7.1f} MB   {report['counts']}")
        print(f"{'':<11} {report['moved_seconds']:>8.2f} s   the same lines again, to the other "
              f"list: {report['moved_counts']}")
        print(f"{'':<11} each password line adds {report['wall_ms_per_password']} ms of wall time "
              f"(Argon2id, all cores): 100,000 mailboxes would take about "
              f"{report['wall_ms_per_password'] * 100:.0f} s")


if __name__ == "__main__":
    main()
