"""Benchmark: mailward against Postfix and Dovecot, same load, same machine, one run.

    make bench-compare    (installs the peers: scripts/ensure-peers; needs root)
    .venv/bin/python bench/compare.py [--backend sqlite|postgresql] [--paths mx,imap,pop3]
        [--runs 3] [--messages 1000] [--sessions 20] [--size 5000] [--clients 20]
        [--seconds 10] [--mailbox 50] [--bodies 10] [--workers N] [--no-filter]
        [--json FILE]

Paths (each side a fresh private instance on loopback ports in a temp dir; nothing of the
system's Postfix or Dovecot is read or started):

mx    Postfix as a relay-only MX (relay_domains the bench domain, its one address in
      relay_recipient_maps, transport to the sink, no local delivery, no filtering) vs
      mailward's mx + delivery roles with a filtering-only domain (that address on its
      Filter list, spam filter on unless --no-filter, DNS: an empty world on loopback)
      whose mail server is the same sink: Postfix's ``smtp-sink -c`` counting messages.
      Load: ``smtp-source -s SESSIONS -m MESSAGES -l SIZE`` (a connection per message),
      timed from its start until the sink counted every message; then both queues must
      drain and no extra message arrive, else the run fails. Median of --runs runs.
imap  --clients clients, sessions back to back for --seconds: LOGIN, SELECT INBOX, UID FETCH
      1:* (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE), --bodies BODY.PEEK[], UID STORE
      +FLAGS.SILENT, LOGOUT (bench/imap_load.py's session: every answer checked), against
      Dovecot and mailward's imap role, both holding the same --mailbox messages per user.
pop3  the same clients and mailboxes: USER, PASS, STAT, LIST, RETR 1..--bodies, QUIT.

Passwords: Argon2id at mailward's default parameters on both sides (Dovecot's passwd-file
holds {ARGON2ID} hashes of the same parameters); both cache verified logins. CPU per
message or session: utime + stime of the server's whole process tree from /proc (reaped
children included), over the load window; not the generator's, not the sink's, not the
empty DNS server's (a thread here). ``--workers`` is passed to ``mailward serve`` only when
given. Backends: sqlite (mailboxes in Maildir) or postgresql (scratch database next to
``MAILWARD_BENCH_PG_URL``, PostgreSQL store). Figures share the machine with the load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

from compare_load import User, mailbox_load, messages, mx_run
from compare_peers import (
    DOVECOT_NOTES,
    adopt_orphans,
    dovecot,
    mailward,
    postfix_mx,
    require_peers,
    smtp_sink,
)
from support import BenchFailed, EmptyDns, database, empty_dns, free_port

MX_DOMAIN, MAILBOX_DOMAIN = "relay.bench.example", "mailbox.bench.example"
PATHS = ("mx", "imap", "pop3")


def base_settings(tmp: Path, url: str, dns: EmptyDns, backend: str) -> dict[str, Any]:
    """mailward's config for both phases: loopback, production Argon2id, no quota."""
    return {
        "data_dir": str(tmp / "data"), "database_url": url, "bind": "127.0.0.1",
        "smtp_hostname": "mx.bench.example", "default_quota_mb": 0,
        "dns_nameservers": [dns.address], "dns_timeout_seconds": 2.0,
        "store_backend": "postgresql" if backend == "postgresql" else "maildir",
        "port_web": free_port(), "port_mx": free_port(), "port_submission": free_port(),
        "port_submissions": free_port(), "port_imap": free_port(), "port_imaps": free_port(),
        "port_pop3": free_port(), "port_pop3s": free_port(),
        "port_managesieve": free_port(), "port_metrics": free_port(),
    }


async def directory_world(settings: dict[str, Any], domain: str, hosting: bool,
                          lines: list[str], sink_port: int | None = None
                          ) -> tuple[Any, Any]:
    """Account, ``domain`` (hosting, or filtering-only with the sink as its mail server)
    and its addresses (``lines`` as for bulk add); returns the database, which the caller
    disposes of, and the settings."""
    from mailward.app import Services
    from mailward.config import load_settings
    from mailward.db import AddressList, Database
    from mailward.directory import Actor

    db = Database((config := load_settings(**settings)).db_url)
    directory, op = Services(db, config), Actor.operator()
    await directory.accounts.create(op, "Bench")
    await directory.domains.create(op, domain, account="Bench", hosting=hosting)
    if hosting:
        await directory.servers.auto_configure_hosting(op, domain)
    else:
        await directory.servers.add(op, domain, f"127.0.0.1:{sink_port}", preference=10)
    result = await directory.bulk.add_lines(
        op, lines, AddressList.NO_FILTER if hosting else AddressList.FILTER)
    if not all(r.status.value == "added" for r in result.results):
        raise BenchFailed(f"bulk add: {result.counts}")
    return db, config


def median_run(runs: list[dict[str, float]]) -> dict[str, Any]:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]} | {"runs": runs}


# -- path 1 -------------------------------------------------------------------------------


async def mx_path(args: argparse.Namespace, tmp: Path, url: str, dns: EmptyDns
                  ) -> dict[str, Any]:
    from sqlalchemy import func, select

    from mailward.db import QueuedRecipient

    recipient = f"user0@{MX_DOMAIN}"
    out: dict[str, Any] = {}
    async with smtp_sink(tmp) as sink:
        peer_runs = []
        async with postfix_mx(tmp / "postfix", MX_DOMAIN, [recipient], sink.port) as pf:
            async def postfix_queued() -> int:
                return pf.queued()
            for n in range(args.runs):
                peer_runs.append(await mx_run(pf.port, pf.pid, sink, recipient, args,
                                              postfix_queued))
                progress("mx", "Postfix", n, peer_runs[-1])
        out["peer"] = median_run(peer_runs) | {"problems": pf.problems()[:5]}

        settings = base_settings(tmp / "mailward", url, dns, args.backend) | {
            "relay_host": f"127.0.0.1:{sink.port}", "allow_private_mail_servers": True,
            "max_connections_per_ip_mx": 1000, "spam_filter": args.filter,
        }
        db, _ = await directory_world(settings, MX_DOMAIN, False, [recipient], sink.port)

        async def mailward_queued() -> int:
            async with db.session() as s:
                return int(await s.scalar(select(func.count()).select_from(QueuedRecipient))
                           or 0)

        async def queue_rows() -> str:
            async with db.session() as s:
                rows = (await s.execute(select(
                    QueuedRecipient.recipient, QueuedRecipient.status,
                    QueuedRecipient.attempts, QueuedRecipient.last_error).limit(3))).all()
            return "; ".join(" ".join(map(str, row)) for row in rows)
        try:
            runs = []
            async with mailward(tmp / "mailward", settings, "mx,delivery", args.workers,
                                [(settings["port_mx"], b"220")]) as mw:
                for n in range(args.runs):
                    try:
                        runs.append(await mx_run(settings["port_mx"], mw.pid, sink,
                                                 recipient, args, mailward_queued))
                    except BenchFailed as exc:
                        raise BenchFailed(f"mailward: {exc}\nqueue: {await queue_rows()}"
                                          ) from None
                    progress("mx", "mailward", n, runs[-1])
            out["mailward"] = median_run(runs) | {"problems": mw.problems()[:5]}
        finally:
            await db.dispose()
    return out


# -- paths 2 and 3 ------------------------------------------------------------------------


async def mailbox_paths(args: argparse.Namespace, tmp: Path, url: str, dns: EmptyDns,
                        paths: list[str]) -> dict[str, Any]:
    from mailward.store import open_store

    content = messages(args.mailbox, args.mailbox_size)
    users = [(f"user{i}@{MAILBOX_DOMAIN}", f"Bench-pass-{i}") for i in range(args.clients)]
    out: dict[str, Any] = {p: {} for p in paths}

    async def load(side: str, label: str, ports: dict[str, int], pid: int,
                   world: list[User]) -> None:
        for path in paths:
            out[path][side] = await mailbox_load(path, ports[path], pid, world, args)
            progress(path, label, 0, out[path][side])

    async with dovecot(tmp / "dovecot", users, args.dovecot_scheme, content) as dc:
        world = [(a, p, {n: (len(raw), b"bench %d" % (n - 1))
                         for n, raw in enumerate(content, 1)}) for a, p in users]
        await load("peer", "Dovecot", {"imap": dc.imap, "pop3": dc.pop3}, dc.pid, world)
        for path in paths:
            out[path]["peer"]["problems"] = dc.problems()[:5]

    settings = base_settings(tmp / "mailward", url, dns, args.backend) | {
        "allow_plaintext_auth": True, "max_connections_per_ip_imap": 1000,
        "max_connections_per_ip_pop3": 1000}
    db, config = await directory_world(settings, MAILBOX_DOMAIN, True,
                                       [f"{a}|{p}" for a, p in users])
    try:
        store, world = open_store(config, db), []
        for address, password in users:
            stored = {}
            for n, raw in enumerate(content):
                s = await store.deliver(address, raw)
                stored[s.uid] = (s.size, b"bench %d" % n)
            world.append((address, password, stored))
    finally:
        await db.dispose()
    async with mailward(tmp / "mailward", settings, ",".join(paths), args.workers,
                        [(settings[f"port_{p}"], b"* OK" if p == "imap" else b"+OK")
                         for p in paths]) as mw:
        await load("mailward", "mailward", {p: settings[f"port_{p}"] for p in paths}, mw.pid,
                   world)
    for path in paths:
        out[path]["mailward"]["problems"] = mw.problems()[:5]
    return out


# -- the run ------------------------------------------------------------------------------


def progress(path: str, side: str, n: int, r: dict[str, Any]) -> None:
    print(f"  {path} {side} run {n + 1}: {r['per_s']:.1f}/s, server CPU {r['cpu_ms_per']:.2f}"
          " ms each", file=sys.stderr, flush=True)


@asynccontextmanager
async def scratch(backend: str) -> AsyncIterator[tuple[Path, str]]:
    """A temp dir the peers' users may traverse, and a migrated database."""
    with tempfile.TemporaryDirectory(prefix="mailward-compare-") as name:
        tmp = Path(name)
        os.chmod(tmp, 0o711)
        os.mkdir(tmp / "mailward")
        async with database(backend, tmp) as url:
            yield tmp, url


async def run(args: argparse.Namespace, paths: list[str]) -> dict[str, Any]:
    """Each path group in a fresh temp dir and database, with its own empty DNS world."""
    results: dict[str, Any] = {}
    if "mx" in paths:
        with empty_dns() as dns:
            async with scratch(args.backend) as (tmp, url):
                results["mx"] = await mx_path(args, tmp, url, dns) | {
                    "dns_queries": dns.queries}
    if boxes := [p for p in paths if p != "mx"]:
        with empty_dns() as dns:
            async with scratch(args.backend) as (tmp, url):
                results |= await mailbox_paths(args, tmp, url, dns, boxes)
    for r in results.values():
        r["ratio"] = r["mailward"]["per_s"] / r["peer"]["per_s"]
    return results


def versions() -> dict[str, str]:
    def out(*command: str) -> str:
        return subprocess.run(command, capture_output=True, text=True).stdout.strip()
    return {"postfix": out("/usr/sbin/postconf", "-d", "-h", "mail_version"),
            "dovecot": out("/usr/sbin/dovecot", "--version").split()[0],
            "mailward": version("mailward")}


def report(results: dict[str, Any], args: argparse.Namespace, v: dict[str, str]) -> None:
    from mailward.config import Settings

    units = {"mx": "msgs/s (end to end)", "imap": "sessions/s", "pop3": "sessions/s"}
    peers = {"mx": f"Postfix {v['postfix']}", "imap": f"Dovecot {v['dovecot']}",
             "pop3": f"Dovecot {v['dovecot']}"}
    print(f"\n{'path':<6}{'unit':<21}{'peer':<18}{'peer':>9}{'mailward':>10}{'ratio':>7}"
          f"{'CPU ms/each peer':>18}{'mailward':>10}")
    for path, r in results.items():
        p, m = r["peer"], r["mailward"]
        print(f"{path:<6}{units[path]:<21}{peers[path]:<18}{p['per_s']:>9.1f}"
              f"{m['per_s']:>10.1f}{r['ratio']:>7.2f}{p['cpu_ms_per']:>18.2f}"
              f"{m['cpu_ms_per']:>10.2f}")
    if "mx" in results:
        p, m = results["mx"]["peer"], results["mx"]["mailward"]
        print(f"mx accepted/s (smtp-source done): peer {p['accepted_per_s']:.1f}, mailward "
              f"{m['accepted_per_s']:.1f}; per run (msgs/s) peer "
              + ", ".join(f"{x['per_s']:.0f}" for x in p["runs"]) + "; mailward "
              + ", ".join(f"{x['per_s']:.0f}" for x in m["runs"]))
    boxes = [path for path in results if path != "mx"]
    if boxes:
        print(f"\n{'path':<6}{'latency ms':<14}{'peer p50':>9}{'p99':>8}{'mailward p50':>14}"
              f"{'p99':>8}")
    for path in boxes:
        p, m = results[path]["peer"], results[path]["mailward"]
        rows = [("session", p["session"], m["session"])] + [
            (kind, p["commands"][kind], m["commands"][kind])
            for kind in ("LOGIN", "SELECT", "STORE") if kind in p["commands"]]
        for name, a, b in rows:
            print(f"{path:<6}{name:<14}{a['p50_ms']:>9.1f}{a['p99_ms']:>8.1f}"
                  f"{b['p50_ms']:>14.1f}{b['p99_ms']:>8.1f}")
    processes = {f"{path} {side}": r[side]["processes"] for path, r in results.items()
                 for side in ("peer", "mailward")}
    print(f"\n{os.cpu_count()} CPUs; backend {args.backend}; mailward --workers "
          f"{args.workers or '(not given)'}; server processes at the end of the load: "
          + ", ".join(f"{k} {n}" for k, n in processes.items())
          + f"; mx: smtp-source -s {args.sessions} -m {args.messages} -l {args.size}, spam"
          f" filter {'on' if args.filter else 'off'}; mailboxes: "
          f"{args.clients} clients x {args.seconds:g} s, {args.mailbox} messages of "
          f"{args.mailbox_size:,} body bytes, {args.bodies} bodies per session")
    print("every message delivered exactly once and queues drained; every session checked")
    if boxes:
        print(f"{DOVECOT_NOTES}; passwords {args.dovecot_scheme}"
              + (" at mailward's parameters" if args.dovecot_scheme == "ARGON2ID" else ""))
        print("mailward: Argon2id at its defaults (t=2, m=19456 KiB), "
              + ("verified logins remembered per process (mail_auth_cache_seconds)"
                 if "mail_auth_cache_seconds" in Settings.model_fields
                 else "verified on every login (no login cache in this version)"))
    for path, r in results.items():
        for side in ("peer", "mailward"):
            for line in r[side]["problems"]:
                print(f"{path} {side} log: {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--paths", default=",".join(PATHS), help="comma-separated: mx,imap,pop3")
    parser.add_argument("--runs", type=int, default=3, help="mx runs per side (median)")
    parser.add_argument("--messages", type=int, default=1000, help="mx messages per run")
    parser.add_argument("--sessions", type=int, default=20, help="mx concurrent sessions")
    parser.add_argument("--size", type=int, default=5000, help="mx message bytes (-l)")
    parser.add_argument("--clients", type=int, default=20, help="IMAP/POP3 clients")
    parser.add_argument("--seconds", type=float, default=10, help="IMAP/POP3 load duration")
    parser.add_argument("--mailbox", type=int, default=50, help="messages per mailbox")
    parser.add_argument("--mailbox-size", type=int, default=4096, help="their body bytes")
    parser.add_argument("--bodies", type=int, default=10,
                        help="IMAP BODY.PEEK[] / POP3 RETR per session")
    parser.add_argument("--dovecot-scheme", default="SHA512-CRYPT",
                        choices=["SHA512-CRYPT", "ARGON2ID", "BLF-CRYPT", "PLAIN"],
                        help="Dovecot's password hashes (ARGON2ID: mailward's parameters)")
    parser.add_argument("--workers", type=int, help="mailward serve --workers (if given)")
    parser.add_argument("--no-filter", dest="filter", action="store_false",
                        help="mailward's spam filter off (recipient checks only)")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    if unknown := set(paths) - set(PATHS):
        parser.error(f"unknown paths: {', '.join(sorted(unknown))}")
    if args.bodies > args.mailbox:
        parser.error("--bodies must not exceed --mailbox (POP3 retrieves 1..bodies)")
    try:
        require_peers()
        adopt_orphans()
        results = asyncio.run(run(args, paths))
    except BenchFailed as exc:
        sys.exit(f"FAILED: {exc}")
    v = versions()
    report(results, args, v)
    if args.json:
        args.json.write_text(json.dumps({"versions": v, "cpus": os.cpu_count(),
                                         "args": {k: str(x) for k, x in vars(args).items()},
                                         "paths": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
