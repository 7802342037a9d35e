"""Benchmark: webmail search (``MailSearch``) over a 10,000-message mailbox, per backend.

    .venv/bin/python bench/webmail_search.py [--backend sqlite|postgresql|both]
        [--messages N] [--rounds N] [--quick] [--analyze]

Backends: SQLite + the Maildir store, and PostgreSQL + the PostgreSQL store (a scratch
database next to ``MAILWARD_BENCH_PG_URL``, dropped afterwards). Runs in this process
(the search is a service call, no server needed).

Data: ``--messages`` generated messages (seeded: a Zipf-distributed vocabulary of
pronounceable words, 300 senders, subjects of 3-8 words, bodies of 40-400 words; a fifth
HTML only, a tenth with an attachment) stored through the store as IMAP APPEND would,
spread 90% INBOX / 10% Archive: none of them indexed yet.

Measured:
* ``catchup``: the first search, which indexes every message (fetch, parse, insert);
* ``p50``/``p99``/``max``: 20 queries (common and rare words, prefixes, two words,
  ``from:``/``subject:``, no hits, one folder) x ``--rounds``, nothing changed between,
  through a store with change notices as the web role builds it; ``cmp``: the same
  through the bare store (each search compares every folder's counters);
* ``+idx``: index cost of one delivery (``SearchIndex.add`` as local delivery calls it),
  p50 over 200 messages; then the search after them (``dlv``, no catch-up: the
  deliveries kept the folder in step), after one APPEND not indexed (``app``: only the
  new UIDs indexed), after one expunge (``exp``: every UID compared with the index).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

from support import database

OWNER = "ann@bench.example"
SEED = 1907


def vocabulary(rng: random.Random, size: int = 3000) -> list[str]:
    syllables = [c + v for c in "bcdfghklmnprstvz" for v in "aeiou"]
    words = {"".join(rng.choice(syllables) for _ in range(rng.randint(1, 4)))
             for _ in range(size * 2)}
    return sorted(words)[:size]


class Mail:
    """Generated messages (deterministic for a seed)."""

    def __init__(self, seed: int = SEED) -> None:
        self.rng = random.Random(seed)
        self.words = vocabulary(self.rng)
        self.weights = [1 / (rank + 1) for rank in range(len(self.words))]  # Zipf
        names = vocabulary(random.Random(seed + 1), 400)
        self.senders = [(names[i].title() + " " + names[i + 1].title(),
                         f"{names[i]}@{names[i + 2]}.example") for i in range(0, 300)]

    def text(self, n: int) -> str:
        return " ".join(self.rng.choices(self.words, self.weights, k=n))

    def message(self, n: int) -> bytes:
        rng = self.rng
        name, address = rng.choice(self.senders)
        subject = self.text(rng.randint(3, 8)).capitalize() + f" #{n}"
        body = self.text(rng.randint(40, 400))
        head = (f"From: {name} <{address}>\r\nTo: Ann <{OWNER}>\r\nSubject: {subject}\r\n"
                f"Message-ID: <{n}@bench.example>\r\nMIME-Version: 1.0\r\n")
        kind = rng.random()
        if kind < 0.2:
            return (head + "Content-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>"
                    + body.replace(" ", " <b>x</b> ", 3) + "</p></body></html>\r\n").encode()
        if kind < 0.3:
            return (head + 'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
                    "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n--b\r\n"
                    "Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
                    "Content-Disposition: attachment; filename=a.pdf\r\n\r\n"
                    + "QUJD" * 2000 + "\r\n--b--\r\n").encode()
        return (head + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body
                + "\r\n").encode()


def queries(mail: Mail) -> list[tuple[str, str | None]]:
    w = mail.words
    first = mail.senders[0][0].split()[0].lower()
    return [(w[0], None), (w[5], None), (w[50], None), (w[400], None), (w[2500], None),
            (w[3][:3], None), (w[700][:4], None), (f"{w[1]} {w[30]}", None),
            (f"{w[10]} {w[900]}", None), (f"from:{first}", None),
            (f"subject:{w[20]}", None), (f"from:{first} {w[2]}", None), ("zzzyyyxxx", None),
            (w[7], "Archive"), (f"{w[100]} {w[200]} {w[300]}", None), ("4711", None),
            (w[1200], None), (w[1][:2], None), (f"to:ann {w[60]}", None), (w[15], "INBOX")]


def ms(seconds: float) -> float:
    return 1000 * seconds


async def fill(store: object, mail: Mail, count: int) -> None:
    from mailward.store import MailStore

    assert isinstance(store, MailStore)
    await store.create_folder(OWNER, "Archive")
    sem = asyncio.Semaphore(16)

    async def one(n: int) -> None:
        async with sem:
            await store.deliver(OWNER, data[n], folder="Archive" if n % 10 == 9 else "INBOX")

    data = [mail.message(n) for n in range(count)]
    await asyncio.gather(*(one(n) for n in range(count)))


async def timed(search: object, qs: list[tuple[str, str | None]], rounds: int
                ) -> tuple[list[float], list[int]]:
    times, hits = [], []
    for _ in range(rounds):
        for query, folder in qs:
            started = time.perf_counter()
            found = await search.search(OWNER, query, folder=folder)  # type: ignore[attr-defined]
            times.append(time.perf_counter() - started)
            hits.append(len(found))
    return sorted(times), hits


async def run(backend: str, args: argparse.Namespace) -> None:
    from sqlalchemy import text

    from mailward.config import load_settings
    from mailward.db import Database
    from mailward.store import DELETED, MailboxEvents, NotifyingStore, open_store
    from mailward.store.search_index import SearchIndex
    from mailward.webmail.search import MailSearch

    with tempfile.TemporaryDirectory() as tmp:
        async with database(backend, Path(tmp)) as url:
            settings = load_settings(data_dir=Path(tmp) / "data", database_url=url,
                                     store_backend="postgresql" if backend == "postgresql"
                                     else "maildir")
            db = Database(url)
            try:
                store = open_store(settings, db, MailboxEvents())  # as the web role has it
                assert isinstance(store, NotifyingStore)
                mail = Mail()
                started = time.perf_counter()
                await fill(store, mail, args.messages)
                fill_s = time.perf_counter() - started
                search = MailSearch(db, store)
                qs = queries(mail)
                started = time.perf_counter()
                first = await search.search(OWNER, qs[0][0])
                catch_up = time.perf_counter() - started
                if not first:
                    raise SystemExit(f"{backend}: the commonest word found nothing")
                if backend == "postgresql" and args.analyze:  # as autovacuum soon would
                    async with db.engine.begin() as conn:
                        await conn.execute(text("ANALYZE mail_search_docs"))
                times, hits = await timed(search, qs, args.rounds)
                plain, _ = await timed(MailSearch(db, store.inner), qs, 1)
                index = SearchIndex(db)
                adds = []
                for n in range(200):
                    data = mail.message(args.messages + n)
                    stored = await store.deliver(OWNER, data)
                    started = time.perf_counter()
                    await index.add(OWNER, stored, data)  # as LocalDelivery does
                    adds.append(time.perf_counter() - started)
                after = []
                for change in ("delivered", "appended", "expunged"):
                    if change == "appended":
                        await store.deliver(OWNER, mail.message(args.messages + 999))
                    elif change == "expunged":
                        uid = (await store.messages(OWNER, "INBOX"))[0].uid
                        await store.set_flags(OWNER, "INBOX", uid, [DELETED])
                        await store.expunge(OWNER, "INBOX", [uid])
                    started = time.perf_counter()
                    await search.search(OWNER, qs[1][0])
                    after.append(time.perf_counter() - started)
            finally:
                await db.dispose()
    store_name = "maildir" if backend == "sqlite" else "postgresql"
    print(f"{backend:<11}{store_name:<11}{args.messages:>8,}{fill_s:>7.0f}"
          f"{catch_up:>8.1f}{ms(statistics.median(times)):>7.1f}"
          f"{ms(times[int(0.99 * (len(times) - 1))]):>7.1f}{ms(times[-1]):>7.1f}"
          f"{ms(statistics.median(plain)):>8.1f}{ms(plain[int(0.99 * (len(plain) - 1))]):>8.1f}"
          f"{ms(statistics.median(adds)):>7.1f}"
          + "".join(f"{ms(t):>7.1f}" for t in after)
          + f"{statistics.median(hits):>6.0f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5, help="times each query is run")
    parser.add_argument("--quick", action="store_true", help="1,000 messages, 2 rounds")
    parser.add_argument("--analyze", action="store_true",
                        help="PostgreSQL: ANALYZE the index after the catch-up, as "
                             "autovacuum does within a minute or so (planner statistics)")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.rounds = 1000, 2
    print("== webmail search, one mailbox; times in ms unless named. fill (s): messages "
          "stored, none indexed; catch-up (s): the first search, indexing them all; "
          "p50/p99/max: 20 queries x rounds through the web role's store (change "
          "notices); cmp p50/p99: the same without notices (folders compared with the "
          "index each time); +idx: index cost of one delivery (p50); then one search after "
          "200 indexed deliveries (dlv), one unindexed APPEND (app), one expunge (exp); "
          "hits: median results (limit 100)")
    print(f"{'database':<11}{'store':<11}{'messages':>8}{'fill':>7}{'catchup':>8}"
          f"{'p50':>7}{'p99':>7}{'max':>7}{'cmp p50':>8}{'cmp p99':>8}{'+idx':>7}"
          f"{'dlv':>7}{'app':>7}{'exp':>7}{'hits':>6}")
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    for backend in backends:
        asyncio.run(run(backend, args))


if __name__ == "__main__":
    main()
