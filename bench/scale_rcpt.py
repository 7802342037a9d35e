"""Scale section ``rcpt``: RCPT TO latency of the mx role at 1,000 … 1,000,000 addresses.

One database grows tier by tier: the addresses of each tier are added through the
directory's bulk add service (100,000 lines a transaction; fill time printed), then the
mx role starts fresh in a child and one client times RCPT TO (command sent -> reply) for
random listed addresses (250) and random unlisted ones on the same domains (550), one
command at a time. A session sends RSET every 90 accepted recipients and reconnects
before the mx's limit of 50 refused recipients per connection.
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path
from typing import Any

from scale_support import (
    BenchFailed,
    Smtp,
    bench_overrides,
    bulk_add,
    make_account,
    percentiles,
    server,
)
from support import database

DOMAINS = 100
TIERS = (1_000, 10_000, 100_000, 1_000_000)


def address(i: int) -> str:
    return f"user{i}@customer{i % DOMAINS}.bench.example"


def tiers(args: argparse.Namespace) -> list[int]:
    top = 10_000 if args.quick and args.max_addresses is None else (
        args.max_addresses or TIERS[-1])
    return [t for t in TIERS if t <= top] or [top]


async def measure(port: int, targets: list[tuple[str, int]]) -> dict[int, list[float]]:
    """Time each RCPT of ``targets`` (address, expected code); latencies by code."""
    out: dict[int, list[float]] = {250: [], 550: []}
    client, accepted, refused = await Smtp.open(port), 0, 0
    await client.expect("MAIL FROM:<bench@outside.bench.example>", 250)
    for rcpt, expected in targets:
        if refused >= 45:
            await client.close()
            client, accepted, refused = await Smtp.open(port), 0, 0
            await client.expect("MAIL FROM:<bench@outside.bench.example>", 250)
        if accepted >= 90:
            await client.expect("RSET", 250)
            await client.expect("MAIL FROM:<bench@outside.bench.example>", 250)
            accepted = 0
        code, elapsed, text = await client.command(f"RCPT TO:<{rcpt}>")
        if code != expected:
            raise BenchFailed(f"RCPT {rcpt}: {text.strip()!r}, expected {expected}")
        out[code].append(elapsed)
        accepted += code == 250
        refused += code == 550
    await client.close()
    return out


async def run(backend: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    from mailward.config import load_settings

    rows, have, rng = [], 0, random.Random(1)
    with tempfile.TemporaryDirectory(prefix="mailward-scale-") as name:
        tmp = Path(name)
        async with database(backend, tmp) as url:
            overrides = bench_overrides(tmp, url, backend, args.workers)
            settings = load_settings(**overrides)
            await make_account(settings, {f"customer{d}.bench.example": False
                                          for d in range(DOMAINS)})
            for tier in tiers(args):
                fill = await bulk_add(settings, [address(i) for i in range(have, tier)])
                have = tier
                targets = [(address(rng.randrange(tier)), 250) for _ in range(args.samples)]
                targets += [(f"nobody{rng.randrange(10**9)}@customer{rng.randrange(DOMAINS)}"
                             ".bench.example", 550) for _ in range(args.samples)]
                rng.shuffle(targets)
                async with server(overrides, {"mx"}, tmp) as (ports, _, report):
                    await measure(ports["mx"][0], targets[:50])  # warm-up: connections, plan
                    times = await measure(ports["mx"][0], targets)
                rows.append({"backend": backend, "addresses": tier, "fill_s": fill,
                             "listed": percentiles(times[250]),
                             "unlisted": percentiles(times[550]),
                             "rss_mb": report["hwm_mb"],
                             "problems": report["problems"]})
                print_row(rows[-1])
    return rows


def print_header(args: argparse.Namespace) -> None:
    print(f"\n== rcpt: RCPT TO latency (sent -> reply), {args.samples} listed + {args.samples} "
          f"unlisted per tier, one client, {DOMAINS} domains; fill = bulk add service "
          "(100,000 lines a transaction) of the tier's new addresses")
    print(f"{'backend':<11}{'addresses':>10}{'fill s':>8}{'listed p50':>11}{'p99 ms':>8}"
          f"{'unlisted p50':>13}{'p99 ms':>8}{'max ms':>8}{'server peak MB':>15}", flush=True)


def print_row(r: dict[str, Any]) -> None:
    listed, unlisted = r["listed"], r["unlisted"]
    print(f"{r['backend']:<11}{r['addresses']:>10,}{r['fill_s']:>8.1f}"
          f"{listed['p50_ms']:>11.2f}{listed['p99_ms']:>8.2f}{unlisted['p50_ms']:>13.2f}"
          f"{unlisted['p99_ms']:>8.2f}{max(listed['max_ms'], unlisted['max_ms']):>8.1f}"
          f"{r['rss_mb']:>15.1f}", flush=True)
    for line in r["problems"][:3]:
        print(f"   server log: {line}")
