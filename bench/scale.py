"""Benchmark: scale curves of one node (issue 18), one table per section.

    .venv/bin/python bench/scale.py [rcpt|queue|mailbox|idle|visible|all]...
        [--backend sqlite|postgresql|both] [--quick] [--workers N]
        [--max-addresses N] [--samples N] [--queue-rows 0,100000,1000000]
        [--queue-messages N] [--mailbox-messages N] [--idle N] [--idle-users N]
        [--rate MSG_PER_S] [--seconds S]

Sections (modules ``bench/scale_*.py``; each docstring says what is measured and how the
data is made):

* ``rcpt``: RCPT TO latency at 1,000 … 1,000,000 addresses, listed and unlisted;
* ``queue``: new mail relayed past 0 / 100,000 / 1,000,000 deferred queue rows, and the
  plans and times of the delivery worker's queue queries;
* ``mailbox``: SELECT and FETCH 1:* (FLAGS) of a 100,000-message INBOX over IMAP;
* ``idle``: 10,000 IMAP connections in IDLE: server memory per connection, and the time
  until they hear of new mail;
* ``visible``: SMTP 250 -> IMAP EXISTS of probe messages at half the peak load.

Every server runs in a child process (``mailward.server.run``, INFO log) on loopback, with
a fresh data dir and database (PostgreSQL: a scratch database next to
``MAILWARD_BENCH_PG_URL``). ``--quick`` shrinks every size to a smoke test.
``--workers N`` is passed to the server as the ``workers`` setting (only when given).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import scale_imap
import scale_queue
import scale_rcpt
import scale_visible
from scale_support import serve_child
from support import BenchFailed

SECTIONS: dict[str, tuple[Callable[[argparse.Namespace], None], Any]] = {
    "rcpt": (scale_rcpt.print_header, scale_rcpt.run),
    "queue": (scale_queue.print_header, scale_queue.run),
    "mailbox": (scale_imap.print_mailbox_header, scale_imap.run_mailbox),
    "idle": (scale_imap.print_idle_header, scale_imap.run_idle),
    "visible": (scale_visible.print_header, scale_visible.run),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("sections", nargs="*", metavar="SECTION",
                        help=f"{', '.join(SECTIONS)} or all (the default)")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--workers", type=int, help="server worker processes (setting)")
    parser.add_argument("--max-addresses", type=int, help="rcpt: largest tier (1,000,000)")
    parser.add_argument("--samples", type=int, default=2000,
                        help="rcpt: RCPTs timed per kind and tier")
    parser.add_argument("--queue-rows", help="queue: deferred rows per tier "
                        "(default 0,100000,1000000; --quick 0,10000)")
    parser.add_argument("--queue-messages", type=int, help="queue: new messages per tier")
    parser.add_argument("--mailbox-messages", type=int, help="mailbox: INBOX size (100,000)")
    parser.add_argument("--idle", type=int, help="idle: IDLE connections (10,000)")
    parser.add_argument("--idle-users", type=int, default=100,
                        help="idle: mailboxes the connections are spread over")
    parser.add_argument("--rate", type=float, help="visible: load in messages/s "
                        "(default: half the measured peak)")
    parser.add_argument("--seconds", type=float, help="visible: load duration (60)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_child(args.serve)
        return
    if unknown := set(args.sections) - {*SECTIONS, "all"}:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    names = list(SECTIONS) if not args.sections or "all" in args.sections \
        else list(dict.fromkeys(args.sections))
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(f"scale: {os.cpu_count()} CPUs" + (f", --workers {args.workers}" if args.workers
                                              else "") + (", --quick" if args.quick else ""))
    for name in names:
        header, run = SECTIONS[name]
        header(args)
        for backend in backends:
            started = time.monotonic()
            try:
                asyncio.run(run(backend, args))
            except BenchFailed as exc:
                sys.exit(f"FAILED ({name}, {backend}): {exc}")
            print(f"   ({name}, {backend}: {time.monotonic() - started:.0f} s in all; load "
                  "average at the end {:.1f} {:.1f} {:.1f})".format(*os.getloadavg()),
                  flush=True)


if __name__ == "__main__":
    main()
