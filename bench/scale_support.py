"""What the scale benches (``bench/scale.py``) share: the server child with every role's
ports, the RSS of its process tree, percentiles, the bench settings, a world of one
account and its domains in a scratch database, and small raw SMTP and IMAP clients that
time each command."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from support import BenchFailed, child, database

SCRIPT = str(Path(__file__).with_name("scale.py"))
SENDER = "bench@outside.bench.example"
LITERAL = re.compile(rb"\{(\d+)\}\r\n$")


def percentiles(values: list[float]) -> dict[str, float]:
    """Count and p50/p99/max in ms (nearest rank, as bench/imap_load.py)."""
    v = sorted(values)
    if not v:
        return {"n": 0, "p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    return {"n": len(v), "p50_ms": 1000 * v[(len(v) - 1) // 2],
            "p99_ms": 1000 * v[-(-99 * len(v) // 100) - 1], "max_ms": 1000 * v[-1]}


def raise_nofile(wanted: int) -> int:
    """Raise this process's open-file limit towards ``wanted`` (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(
                    int(entry))
    out, todo = [], [pid]
    while todo:
        out.append(current := todo.pop())
        todo += children.get(current, [])
    return out


def tree_rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Sum of VmRSS (or ``field``, e.g. the peak VmHWM) over ``pid``'s process tree, in MB
    (shared pages counted per process). Unlike ``ru_maxrss``, VmHWM starts afresh at exec
    and so is not the RSS of the bench process that spawned the server."""
    total = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith(f"{field}:"):
                    total += int(line.split()[1])
    return total / 1024


def bench_overrides(tmp: Path, url: str, backend: str, workers: int | None,
                    **extra: Any) -> dict[str, Any]:
    """Settings of a loopback bench server (cheap Argon2id, no spam filter, no quota)."""
    overrides: dict[str, Any] = {
        "data_dir": str(tmp / "data"), "database_url": url, "bind": "127.0.0.1",
        "port_mx": 0, "port_imap": 0, "port_imaps": 0, "port_web": 0,
        "smtp_hostname": "mx.bench.example", "allow_plaintext_auth": True,
        "default_quota_mb": 0, "argon2_time_cost": 1, "argon2_memory_kib": 1024,
        "store_backend": "postgresql" if backend == "postgresql" else "maildir",
        # the mail flow alone: the spam checks would ask public DNS for made-up domains
        "spam_filter": False,
        # the customer server is a loopback sink; every client comes from 127.0.0.1
        "allow_private_mail_servers": True, "max_connections_per_ip_mx": 1000,
        "retry_first_seconds": 2, "retry_max_interval_seconds": 5,
    }
    if workers is not None:
        overrides["workers"] = workers
    overrides.update(extra)
    return overrides


def serve_child(arg: str) -> None:
    """Child process (``scale.py --serve JSON``): run the roles named under ``_roles``
    with the other keys as settings; print their URLs, then peak RSS and CPU at exit."""
    from support import serve

    overrides = json.loads(arg)
    roles = set(overrides.pop("_roles"))
    raise_nofile(int(overrides.pop("_nofile", 0)))
    profile = overrides.pop("_profile", None)
    if not profile:
        serve(json.dumps(overrides), roles)
        return
    import cProfile  # the event loop's thread only (not to_thread work)

    with cProfile.Profile() as profiler:
        serve(json.dumps(overrides), roles)
    profiler.dump_stats(profile)


@contextlib.asynccontextmanager
async def server(overrides: dict[str, Any], roles: set[str], tmp: Path, nofile: int = 0,
                 ) -> AsyncIterator[tuple[dict[str, list[int]], int, dict[str, Any]]]:
    """Our ``roles`` in a child (as bench/support.py ``server_child``, but every role's
    ports): yields {role: ports}, the child's pid and a report filled at its exit."""
    report: dict[str, Any] = {}
    profile = os.environ.get("MAILWARD_SCALE_PROFILE")  # a directory for cProfile dumps
    if profile:
        profile = str(Path(profile) / f"{'-'.join(sorted(roles))}-{time.time_ns()}.pstats")
    arg = json.dumps({**overrides, "_roles": sorted(roles), "_nofile": nofile,
                      "_profile": profile})
    async with child([sys.executable, SCRIPT, "--serve", arg], tmp, report, 120,
                     limit=1 << 20) as (proc, role_urls):
        ports: dict[str, list[int]] = {}
        for role, urls in role_urls.items():
            found = [u for u in urls.split(", ")
                     if re.fullmatch(r"[a-z0-9]+://127\.0\.0\.1:\d+", u)]
            ports[role] = [int(u.rsplit(":", 1)[1]) for u in found]
        yield ports, proc.pid, report
        report["hwm_mb"] = tree_rss_mb(proc.pid, "VmHWM")


@contextlib.asynccontextmanager
async def bench_world(backend: str, workers: int | None, domains: dict[str, bool],
                      lines: list[str], sink_port: int = 0, **extra: Any,
                      ) -> AsyncIterator[tuple[Path, dict[str, Any], Any]]:
    """A scratch directory and database, the bench settings (``extra`` added), account
    Bench with ``domains`` (as :func:`make_account`) and the bulk-added ``lines``; yields
    the directory, the settings overrides and the loaded settings."""
    from mailward.config import load_settings

    with tempfile.TemporaryDirectory(prefix="mailward-scale-") as name:
        tmp = Path(name)
        async with database(backend, tmp) as url:
            overrides = bench_overrides(tmp, url, backend, workers, **extra)
            settings = load_settings(**overrides)
            await make_account(settings, domains, sink_port)
            await bulk_add(settings, lines)
            yield tmp, overrides, settings


async def make_account(settings: Any, domains: dict[str, bool], sink_port: int = 0) -> None:
    """Account "Bench" with ``domains`` (name -> hosting); hosting ones deliver to our
    hosting servers, the others to the loopback sink at ``sink_port`` (if given)."""
    from mailward.app import Services
    from mailward.db import Database
    from mailward.directory import Actor

    db = Database(settings.db_url)
    services, op = Services(db, settings), Actor.operator()
    await services.accounts.create(op, "Bench")
    for domain, hosting in domains.items():
        await services.domains.create(op, domain, account="Bench", hosting=hosting)
        if hosting:
            await services.servers.auto_configure_hosting(op, domain)
        elif sink_port:
            await services.servers.add(op, domain, f"127.0.0.1:{sink_port}", preference=10)
    await db.dispose()


async def bulk_add(settings: Any, lines: list[str], chunk: int = 100_000) -> float:
    """Add ``lines`` through the directory's bulk add service (chunks of ``chunk`` lines,
    one transaction each, as an operator would paste them); seconds taken."""
    from mailward.app import Services
    from mailward.db import AddressList, Database
    from mailward.directory import Actor

    db = Database(settings.db_url)
    services, op = Services(db, settings), Actor.operator()
    started = time.monotonic()
    for i in range(0, len(lines), chunk):
        result = await services.bulk.add_lines(op, lines[i:i + chunk], AddressList.FILTER)
        if result.counts.get("added", 0) != len(lines[i:i + chunk]):
            raise BenchFailed(f"bulk add: {result.counts}")
    elapsed = time.monotonic() - started
    await db.dispose()
    return elapsed


class Smtp:
    """One raw SMTP client connection; ``command`` returns the reply code and its time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Smtp:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        if (await client.reply())[0] != 220:
            raise BenchFailed("SMTP greeting")
        await client.expect("EHLO client.bench.example", 250)
        return client

    async def reply(self) -> tuple[int, str]:
        lines = []
        while True:
            line = (await self.reader.readuntil(b"\r\n")).decode()
            lines.append(line)
            if line[3:4] != "-":
                return int(line[:3]), "".join(lines)

    async def command(self, line: str) -> tuple[int, float, str]:
        started = time.perf_counter()
        self.writer.write(line.encode() + b"\r\n")
        code, text = await self.reply()
        return code, time.perf_counter() - started, text

    async def expect(self, line: str, code: int) -> float:
        got, elapsed, text = await self.command(line)
        if got != code:
            raise BenchFailed(f"{line!r}: {text.strip()!r}, expected {code}")
        return elapsed

    async def send(self, recipients: list[str], data: bytes) -> float:
        """One message; the monotonic time of its 250 after the data."""
        await self.expect(f"MAIL FROM:<{SENDER}>", 250)
        for rcpt in recipients:
            await self.expect(f"RCPT TO:<{rcpt}>", 250)
        await self.expect("DATA", 354)
        self.writer.write(data.replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\n")
        code, text = await self.reply()
        if code != 250:
            raise BenchFailed(f"DATA: {text.strip()!r}")
        return time.monotonic()

    async def close(self) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await self.command("QUIT")
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def message(recipient: str, n: int, size: int = 1024, tag: str = "bench") -> bytes:
    """A small test message with ``X-Bench-Id: n``."""
    body = (b"x" * 76 + b"\r\n") * max(1, size // 78)
    return (f"From: <{SENDER}>\r\nTo: <{recipient}>\r\nSubject: {tag} {n}\r\n"
            f"Message-ID: <{tag}-{n}@client.bench.example>\r\nX-Bench-Id: {n}\r\n\r\n"
            ).encode() + body


class Imap:
    """One raw IMAP connection (asyncio streams): tagged commands and IDLE."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.tags = reader, writer, 0

    @classmethod
    async def login(cls, port: int, user: str, password: str, select: str = "INBOX") -> Imap:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        client = cls(reader, writer)
        if not (await client.line()).startswith(b"* OK"):
            raise BenchFailed("IMAP greeting")
        await client.command(f'LOGIN "{user}" "{password}"')
        await client.command(f"SELECT {select}")
        return client

    async def line(self) -> bytes:
        """One response line (literals appended)."""
        text = b""
        while True:
            line = await self.reader.readuntil(b"\r\n")
            text += line[:-2]
            if not (m := LITERAL.search(line)):
                return text
            text += await self.reader.readexactly(int(m[1]))

    async def command(self, command: str) -> list[bytes]:
        """Send ``command``; its untagged responses once the tagged answer is OK."""
        self.tags += 1
        tag, untagged = b"a%d " % self.tags, []
        self.writer.write(tag + command.encode() + b"\r\n")
        while not (resp := await self.line()).startswith(tag):
            untagged.append(resp)
        if not resp.startswith(tag + b"OK"):
            raise BenchFailed(f"IMAP {command.split()[0]}: {resp[:200]!r}")
        return untagged

    async def idle(self) -> None:
        """Enter IDLE (waits for the continuation)."""
        self.tags += 1
        self.writer.write(b"a%d IDLE\r\n" % self.tags)
        while not (await self.line()).startswith(b"+"):
            pass

    async def next_exists(self) -> int:
        """Wait for an untagged EXISTS while idling; its count."""
        while True:
            line = await self.line()
            if line.endswith(b" EXISTS"):
                return int(line.split()[1])

    def close(self) -> None:
        self.writer.close()
