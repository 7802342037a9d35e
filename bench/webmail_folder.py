"""Benchmark: opening a webmail folder (issue 19) in a mailbox with a large folder.

    .venv/bin/python bench/webmail_folder.py [--backend sqlite|postgresql|both]
        [--messages 10000] [--small 200] [--runs 20] [--quick]

One mailbox (a hosted domain of account Bench, a scratch database per backend: SQLite with
the Maildir store, PostgreSQL with the PostgreSQL store) gets ``--messages`` (10,000)
messages of ~2 KB in INBOX and ``--small`` (200) in the folder Projects, each through the
store's ``deliver`` (as local delivery stores them: summaries made at delivery), 32 at a
time; every fifth message replies to the one before (conversations to group), a tenth are
\\Seen. Then, ``--runs`` (20) times each, after one untimed first call:

* ``list`` — ``Webmail(services, store).mailboxes.list(...)`` in this process: a page of 50
  and of 200 rows, without and with conversations (``threads``); and what every page and
  poll adds: ``folders`` (the sidebar's counts) and ``version`` (the poll's answer);
* ``GET /mail/box`` — the whole page over HTTP (httpx, a logged-in session) from the web
  role in a child process (``mailward.server.run``), with the mailbox's preferences
  (50 rows, conversations on) and with ``threads=0``; ``GET /mail/poll`` (a small JSON
  answer behind the same login) for the cost of the session alone.

It prints p50/p99/max in ms per line, and the first (cold) call; it never asserts on time.
The page's answer is checked (status 200, its message rows counted), else it stops with
FAILED.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import os
import re
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from scale_support import bench_overrides, bulk_add, make_account, percentiles, server
from support import BenchFailed, database

DOMAIN = "hosted.bench.example"
OWNER = f"owner@{DOMAIN}"
PASSWORD = "Bench-pass-0"
SMALL = "Projects"
ROW = 'data-test="message-row"'
_TOKEN = re.compile(r'name="_csrf_token" value="([^"]+)"')
Timed = Callable[[], Awaitable[object]]


def message(n: int, folder: str) -> bytes:
    """Message ``n`` of ``folder`` (~2 KB); every fifth replies to the one before."""
    reply = n % 5 != 0 and n > 1
    subject = f"{'Re: ' if reply else ''}Topic {(n // 5) * 5} in {folder}"
    refs = f"In-Reply-To: <m{n - 1}.{folder}@bench.example>\r\n" if reply else ""
    head = (f"From: Sender {n % 97} <sender{n % 97}@outside.bench.example>\r\n"
            f"To: <{OWNER}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <m{n}.{folder}@bench.example>\r\n{refs}"
            f"Date: Mon, 07 Dec 2026 {n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d} +0000"
            "\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
    body = "".join(f"Line {i} of message {n}: the quarterly figures, as discussed.\r\n"
                   for i in range(28))
    return head.encode() + body.encode()


async def fill(store: Any, folder: str, count: int) -> float:
    """``count`` messages into ``folder`` through the store, 32 at a time; seconds taken."""
    from mailward.store import SEEN

    semaphore = asyncio.Semaphore(32)

    async def one(n: int) -> None:
        async with semaphore:
            flags = frozenset({SEEN}) if n % 10 == 0 else frozenset()
            await store.deliver(OWNER, message(n, folder), folder=folder, flags=flags)

    started = time.monotonic()
    await asyncio.gather(*(one(n) for n in range(1, count + 1)))
    if len(await store.messages(OWNER, folder)) != count:
        raise BenchFailed(f"{folder}: not every message was stored")
    return time.monotonic() - started


async def timed(call: Timed, runs: int) -> tuple[float, list[float]]:
    """The first call's seconds, then ``runs`` more."""
    started = time.perf_counter()
    await call()
    first = time.perf_counter() - started
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        times.append(time.perf_counter() - started)
    return first, times


def line(backend: str, what: str, first: float, times: list[float]) -> None:
    p = percentiles(times)
    print(f"{backend:<10} {what:<44} {p['n']:>4} {p['p50_ms']:>9.1f} {p['p99_ms']:>9.1f} "
          f"{p['max_ms']:>9.1f} {1000 * first:>9.1f}", flush=True)


def header() -> None:
    print(f"{'backend':<10} {'what':<44} {'runs':>4} {'p50 ms':>9} {'p99 ms':>9} "
          f"{'max ms':>9} {'first ms':>9}")


async def login(http: httpx.AsyncClient) -> None:
    page = await http.get("/mail/login")
    token = _TOKEN.search(page.text)
    if page.status_code != 200 or token is None:
        raise BenchFailed(f"GET /mail/login: {page.status_code}, no CSRF token")
    answer = await http.post("/mail/login", data={
        "_csrf_token": html.unescape(token.group(1)), "address": OWNER, "password": PASSWORD,
        "next": "/mail/box?f=INBOX"})
    if answer.status_code != 200 or "/mail/box" not in str(answer.url):
        raise BenchFailed(f"login: {answer.status_code} at {answer.url}")


async def run(backend: str, args: argparse.Namespace) -> None:
    from mailward.app import Services
    from mailward.config import load_settings
    from mailward.db import Database
    from mailward.store import open_store
    from mailward.webmail import Webmail

    with tempfile.TemporaryDirectory(prefix="mailward-webmail-") as name:
        tmp = Path(name)
        async with database(backend, tmp) as url:
            overrides = bench_overrides(tmp, url, backend, None)
            settings = load_settings(**overrides)
            await make_account(settings, {DOMAIN: True})
            await bulk_add(settings, [f"{OWNER}|{PASSWORD}"])
            db = Database(url)
            store = open_store(settings, db)
            webmail = Webmail(Services(db, settings), store)
            await webmail.mailboxes.folders(OWNER)  # INBOX, Drafts, Sent, Trash, Junk
            await store.create_folder(OWNER, SMALL)
            big_s = await fill(store, "INBOX", args.messages)
            small_s = await fill(store, SMALL, args.small)
            print(f"{backend:<10} filled INBOX with {args.messages} in {big_s:.1f} s, "
                  f"{SMALL} with {args.small} in {small_s:.1f} s", flush=True)
            views = webmail.mailboxes
            for folder, count in ((SMALL, args.small), ("INBOX", args.messages)):
                for per_page in (50, 200):
                    for threads in (False, True):
                        async def call(folder: str = folder, per_page: int = per_page,
                                       threads: bool = threads) -> object:
                            page = await views.list(OWNER, folder, per_page=per_page,
                                                    threads=threads)
                            if len(page.rows) != min(per_page, page.total):
                                raise BenchFailed(f"list {folder}: {len(page.rows)} rows")
                            return page
                        first, times = await timed(call, args.runs)
                        line(backend, f"list {folder} ({count}) {per_page} rows"
                             f"{' threads' if threads else ''}", first, times)
            for what, make in (("folders (the sidebar's counts)", views.folders),
                               ("version (what /mail/poll answers)", views.version)):
                async def whole(make: Callable[[str], Awaitable[object]] = make) -> object:
                    return await make(OWNER)
                first, times = await timed(whole, args.runs)
                line(backend, what, first, times)
            await db.dispose()
            async with server(overrides, {"web"}, tmp) as (ports, _pid, _report):
                base = f"http://127.0.0.1:{ports['web'][0]}"
                async with httpx.AsyncClient(base_url=base, timeout=120,
                                             follow_redirects=True) as http:
                    await login(http)

                    async def poll() -> object:  # the session and guard alone (JSON)
                        answer = await http.get("/mail/poll")
                        if answer.status_code != 200 or "version" not in answer.json():
                            raise BenchFailed(f"GET /mail/poll: {answer.status_code}")
                        return answer
                    first, times = await timed(poll, args.runs)
                    line(backend, "GET /mail/poll (session, guard, version)", first, times)
                    for folder, count in ((SMALL, args.small), ("INBOX", args.messages)):
                        for query in ("", "&threads=0"):
                            path = f"/mail/box?f={folder}{query}"

                            async def get(path: str = path) -> object:
                                answer = await http.get(path)
                                rows = answer.text.count(ROW)
                                if answer.status_code != 200 or not 0 < rows <= 50:
                                    raise BenchFailed(f"GET {path}: {answer.status_code}, "
                                                      f"{rows} rows")
                                return answer
                            first, times = await timed(get, args.runs)
                            line(backend, f"GET {path} ({count})", first, times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--messages", type=int, default=10_000, help="INBOX size (10,000)")
    parser.add_argument("--small", type=int, default=200, help="Projects size (200)")
    parser.add_argument("--runs", type=int, default=20, help="timed calls of each kind")
    parser.add_argument("--quick", action="store_true", help="1,000 messages, 5 runs")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.runs = min(args.messages, 1_000), min(args.runs, 5)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(f"webmail folder: {os.cpu_count()} CPUs, INBOX {args.messages} messages, "
          f"{SMALL} {args.small}, {args.runs} runs")
    header()
    for backend in backends:
        try:
            asyncio.run(run(backend, args))
        except BenchFailed as exc:
            sys.exit(f"FAILED ({backend}): {exc}")


if __name__ == "__main__":
    main()
