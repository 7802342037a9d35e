"""What the benchmarks share: a scratch database per backend, the server child, and an
empty DNS world on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rrset

PG_URL = os.environ.get("MAILWARD_BENCH_PG_URL",
                        "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # as `mailward serve`


class BenchFailed(Exception):
    """The product refused, lost or garbled something, or did not start or stop cleanly."""


@contextlib.asynccontextmanager
async def database(backend: str, tmp: Path) -> AsyncIterator[str]:
    """A migrated, empty database; a scratch PostgreSQL database is dropped afterwards."""
    from mailward.db.migrate import upgrade

    if backend == "sqlite":
        await upgrade(url := f"sqlite+aiosqlite:///{tmp / 'bench.db'}")
        yield url
        return
    import asyncpg
    from sqlalchemy.engine import make_url

    name, admin = f"mailward_bench_{secrets.token_hex(4)}", make_url(PG_URL)
    conn = await asyncpg.connect(admin.set(drivername="postgresql").render_as_string(False))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        await upgrade(url := admin.set(database=name).render_as_string(False))
        yield url
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


def serve(overrides: str, roles: set[str]) -> None:
    """Child process: run ``roles``; print their URLs, then peak RSS and CPU at exit."""
    import logging

    from mailward.config import load_settings
    from mailward.server import run

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    settings = load_settings(**json.loads(overrides))
    asyncio.run(run(settings, roles, ready=lambda urls: print(json.dumps(urls), flush=True)))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec, so it would report
    # the bench parent's size whenever that is bigger (after filling a large mailbox, say)
    peak = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text()
                .splitlines() if line.startswith("VmHWM:"))
    print(json.dumps({"server_rss_mb": peak / 1024,
                      "server_cpu_s": usage.ru_utime + usage.ru_stime}), flush=True)


@contextlib.asynccontextmanager
async def child(argv: list[str], tmp: Path, report: dict[str, Any], seconds: float,
                **kwargs: Any) -> AsyncIterator[tuple[asyncio.subprocess.Process, Any]]:
    """A server child ``argv`` (it calls :func:`serve`) run in ``tmp``, logging to
    ``tmp/server.log``; yields it and its first stdout line (JSON: the role URLs), then at the
    end of the block SIGTERMs it and fills ``report`` (peak RSS, CPU, and the
    WARNING/ERROR lines of its log under ``problems``). ``seconds``: the time allowed for each of
    the start, the rest of its output and its exit."""
    log_path = tmp / "server.log"
    with await asyncio.to_thread(log_path.open, "wb") as log:
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=tmp, stdout=asyncio.subprocess.PIPE, stderr=log, **kwargs)
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), seconds)
        if not line:
            raise BenchFailed(f"server did not start:\n{log_path.read_text()[-3000:]}")
        yield proc, json.loads(line)
        proc.send_signal(signal.SIGTERM)
        out = await asyncio.wait_for(proc.stdout.read(), seconds)
        if await asyncio.wait_for(proc.wait(), seconds) != 0:
            raise BenchFailed(f"server exited with {proc.returncode}:\n"
                              f"{log_path.read_text()[-3000:]}")
        report.update(json.loads(out.decode().strip().splitlines()[-1]))
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        await proc.wait()
    report["problems"] = [line for line in log_path.read_text(errors="replace").splitlines()
                          if re.search(r" (WARNING|ERROR|CRITICAL) |Traceback", line)]


@contextlib.asynccontextmanager
async def server_child(script: str, overrides: dict[str, Any], tmp: Path, role: str
                       ) -> AsyncIterator[tuple[list[int], int, dict[str, Any]]]:
    """``script --serve OVERRIDES`` in a :func:`child`; yields the ports of ``role``
    (loopback only), the child's pid and the report filled at its exit."""
    report: dict[str, Any] = {}
    async with child([sys.executable, script, "--serve", json.dumps(overrides)], tmp,
                     report, 60) as (proc, role_urls):
        urls = role_urls[role].split(", ")
        assert all(re.fullmatch(r"[a-z0-9]+://127\.0\.0\.1:\d+", u) for u in urls), urls
        yield [int(u.rsplit(":", 1)[1]) for u in urls], proc.pid, report


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (all threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, utime + stime + cutime + cstime in ticks) of every process."""
    table = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue  # exited meanwhile: its parent's cutime has it once reaped
            table[int(entry.name)] = (int(fields[1]), sum(int(f) for f in fields[11:15]))
    return table


def process_tree(root: int, table: dict[int, tuple[int, int]] | None = None) -> set[int]:
    """``root`` and its live descendants."""
    table = _process_table() if table is None else table
    if root not in table:
        raise BenchFailed(f"process {root} is gone")
    tree, grown = {root}, True
    while grown:
        grown = False
        for pid, (parent, _) in table.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grown = True
    return tree


def tree_cpu_seconds(root: int) -> float:
    """utime + stime of ``root`` and every live descendant, plus what their reaped children
    used (cutime + cstime), from /proc: the CPU of a multi-process server so far."""
    table = _process_table()
    ticks = sum(table[pid][1] for pid in process_tree(root, table))
    return ticks / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for servers that need a number)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def greeted(port: int, prefix: bytes, seconds: float = 60.0) -> None:
    """Wait (polling) until a connection to ``port`` is greeted with ``prefix``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                if (await asyncio.wait_for(reader.readline(), 10)).startswith(prefix):
                    return
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
        except (OSError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise BenchFailed(f"nothing greeted {prefix!r} on 127.0.0.1:{port} in {seconds} s")
        await asyncio.sleep(0.1)  # polling interval


def argon2_cost() -> str:
    """CPU time of one login's Argon2id verify at the default (production) parameters."""
    from mailward.config import Settings
    from mailward.directory.passwords import Passwords

    passwords = Passwords(settings := Settings())
    hashed, started = passwords.hash("Bench-pass-0"), time.process_time()
    all(passwords.verify(hashed, "Bench-pass-0") for _ in range(5))
    return (f"real deployments pay Argon2id per login: default t={settings.argon2_time_cost},"
            f" m={settings.argon2_memory_kib} KiB costs {(time.process_time() - started) * 200:.0f}"
            " ms CPU per verify here (bench uses t=1, m=1024 KiB)")


_ROOT_SOA = dns.rrset.from_text(".", 300, "IN", "SOA",
                                ". hostmaster. 1 1800 900 604800 300")


class EmptyDns:
    """A DNS server on 127.0.0.1 (UDP, a free port) in a thread of this process that
    answers NXDOMAIN (with the root's SOA, negative TTL 300 s, so resolvers may cache it) to
    every query: an empty DNS world, answered at once, with nothing
    sent beyond the loopback interface. ``address`` is ``127.0.0.1:PORT`` for
    ``dns_nameservers``; ``queries`` counts the queries answered, ``cpu_seconds`` is the
    CPU time the server's thread has spent (to leave out of a benchmark's figure)."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._socket.getsockname()[1]}"
        self.queries = 0
        self.cpu_seconds = 0.0
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, name="empty-dns", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            data, peer = self._socket.recvfrom(4096)
            if self._stopping:
                return
            try:
                query = dns.message.from_wire(data)
            except dns.exception.DNSException:
                continue  # not a DNS query: no answer, as a real server
            reply = dns.message.make_response(query)
            reply.flags |= dns.flags.AA | dns.flags.RA
            reply.set_rcode(dns.rcode.NXDOMAIN)
            reply.authority.append(_ROOT_SOA)  # as real servers do: the answer is cacheable
            self._socket.sendto(reply.to_wire(), peer)
            self.queries += 1
            self.cpu_seconds = time.thread_time()

    def close(self) -> None:
        self._stopping = True
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as wake:
            wake.sendto(b"", self._socket.getsockname())
        self._thread.join(5)
        self._socket.close()


@contextlib.contextmanager
def empty_dns() -> Iterator[EmptyDns]:
    """Run an :class:`EmptyDns` for the duration of the block."""
    server = EmptyDns()
    try:
        yield server
    finally:
        server.close()
