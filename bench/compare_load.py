"""The load of bench/compare.py, the same against a peer and against mailward: Postfix's
smtp-source through an MX to the counting sink, and IMAP (bench/imap_load.py's session) and
POP3 sessions from many clients for a while. Each returns figures and the CPU the server's
process tree spent (``support.tree_cpu_seconds``), not the generator's."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pop3_load
from compare_peers import Sink
from imap_load import KINDS
from imap_load import client_loop as imap_client_loop
from support import BenchFailed, process_tree, tree_cpu_seconds

SMTP_SOURCE = "/usr/sbin/smtp-source"
SENDER = "bench@outside.bench.example"
STALL_SECONDS = 30.0  # no delivery progress for this long fails the run
GRACE_SECONDS = 1.0  # after the last message: room for late duplicates or bounces

User = tuple[str, str, dict[int, tuple[int, bytes]]]  # as bench/imap_load.py


def messages(count: int, size: int) -> list[bytes]:
    """The mailbox content both sides hold: ``count`` messages of ~``size`` body bytes,
    CRLF lines, distinct Subjects ``bench N``."""
    body = (b"x" * 76 + b"\r\n") * (size // 78) + b"y" * max(size % 78 - 2, 0) + b"\r\n"
    return [(f"From: <{SENDER}>\r\nTo: <user@mailbox.bench.example>\r\nSubject: bench {n}\r\n"
             f"Message-ID: <bench-{n}@client.bench.example>\r\n\r\n").encode() + body
            for n in range(count)]


def percentiles(values: list[float]) -> dict[str, float]:
    """Count and p50/p99/max in ms (nearest rank)."""
    v = sorted(values)
    return {"n": len(v), "p50_ms": 1000 * v[(len(v) - 1) // 2],
            "p99_ms": 1000 * v[-(-99 * len(v) // 100) - 1], "max_ms": 1000 * v[-1]}


# -- path 1: MX accept and relay ----------------------------------------------------------


async def drained(queued: Callable[[], Awaitable[int]], seconds: float) -> int:
    """Poll the queue until it is empty or ``seconds`` passed; what is left."""
    deadline = time.monotonic() + seconds
    while True:
        if not (left := await queued()) or time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.05)  # polling interval


async def mx_run(port: int, pid: int, sink: Sink, recipient: str, args: Any,
                 queued: Callable[[], Awaitable[int]]) -> dict[str, float]:
    """One ``smtp-source -s SESSIONS -m MESSAGES -l SIZE`` run into the MX on ``port``,
    timed from its start until the sink counted every message; then the queue must drain
    and no extra message (duplicate, bounce) arrive. CPU: ``pid``'s process tree."""
    expected, before = args.messages, sink.count
    cpu = tree_cpu_seconds(pid)
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        SMTP_SOURCE, "-c", "-s", str(args.sessions), "-m", str(expected), "-l", str(args.size),
        "-M", "client.bench.example", "-f", SENDER, "-t", recipient, f"127.0.0.1:{port}",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    waiter = asyncio.create_task(proc.communicate())
    last, since, accepted = before, started, None
    try:
        while sink.count - before < expected or accepted is None:
            if accepted is None and waiter.done():
                accepted = time.monotonic()
                if proc.returncode:
                    raise BenchFailed(f"smtp-source exited with {proc.returncode}: "
                                      f"{waiter.result()[1].decode(errors='replace')[-500:]}")
            if sink.count != last:
                last, since = sink.count, time.monotonic()
            elif time.monotonic() - since > STALL_SECONDS:
                raise BenchFailed(f"{sink.count - before} of {expected} messages at the sink; "
                                  f"{await queued()} still queued")
            await asyncio.sleep(0.01)  # polling the sink's counter: 10 ms resolution
        delivered = time.monotonic()
    finally:
        if not waiter.done():
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        await waiter
    left = await drained(queued, STALL_SECONDS)
    if left:
        raise BenchFailed(f"every message delivered, but {left} still queued (bounces?)")
    await asyncio.sleep(GRACE_SECONDS)
    if sink.count - before != expected:
        raise BenchFailed(f"{sink.count - before} messages at the sink for {expected} sent "
                          "(duplicates or bounces)")
    server_cpu = tree_cpu_seconds(pid) - cpu  # includes the grace period: idle, ~0
    return {"per_s": expected / (delivered - started), "processes": len(process_tree(pid)),
            "accepted_per_s": expected / (accepted - started),
            "cpu_ms_per": 1000 * server_cpu / expected, "cpu_s": server_cpu}


# -- paths 2 and 3: mailbox sessions ------------------------------------------------------


async def pop3_client_loop(port: int, user: User, until: float, retr: int,
                           sessions: list[float], errors: list[str]) -> None:
    """bench/pop3_load.py's sessions, RETR of the first ``retr`` messages, any STAT text."""
    sizes = [size for _, (size, _) in sorted(user[2].items())]
    await pop3_load.client_loop(port, (user[0], user[1], sizes), until, sessions, errors,
                                retr, exact_stat=False)


async def mailbox_load(protocol: str, port: int, pid: int, users: list[User],
                       args: Any) -> dict[str, Any]:
    """Every user's client runs ``protocol`` sessions back to back for ``args.seconds``;
    any failed session fails the run."""
    sessions, errors = list[float](), list[str]()
    latencies: dict[str, list[float]] = {kind: [] for kind in KINDS}
    cpu, started = tree_cpu_seconds(pid), time.monotonic()
    until = started + args.seconds
    if protocol == "imap":
        await asyncio.gather(*(
            imap_client_loop(port, user, until, args.bodies, random.Random(i), sessions,
                             latencies, errors) for i, user in enumerate(users)))
    else:
        await asyncio.gather(*(pop3_client_loop(port, user, until, args.bodies, sessions,
                                                errors) for user in users))
    elapsed, server_cpu = time.monotonic() - started, tree_cpu_seconds(pid) - cpu
    processes = len(process_tree(pid))
    if errors or not sessions:
        raise BenchFailed(f"{protocol}: {len(errors)} failed sessions ({len(sessions)} good);"
                          " first: " + "; ".join(errors[:2]))
    return {"per_s": len(sessions) / elapsed, "sessions": len(sessions),
            "cpu_ms_per": 1000 * server_cpu / len(sessions), "cpu_s": server_cpu,
            "cores_busy": server_cpu / elapsed, "processes": processes,
            "session": percentiles(sessions),
            "commands": {kind: percentiles(v) for kind, v in latencies.items() if v}}
