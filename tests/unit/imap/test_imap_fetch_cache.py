"""FETCH reads message bytes in batches and answers ENVELOPE/BODYSTRUCTURE from a cache."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from imap_testkit import ANN, ImapTestServer, RawClient, message

from mailward.imap import messages
from mailward.imap.fetch import ParsedCache, fetch_data
from mailward.imap.parse import FetchAtt

WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
RAW = message("cached subject")


async def _answer(cache: ParsedCache, items: tuple[FetchAtt, ...], loads: list[int]) -> bytes:
    async def load() -> bytes:
        loads.append(1)
        return RAW

    return await fetch_data(items, uid=7, size=len(RAW), flags=frozenset(), date=WHEN,
                            load=load, with_uid=False, cache=cache, key=("ann", "INBOX", 1, 7))


async def test_envelope_and_structure_come_from_the_cache_the_second_time() -> None:
    cache, loads = ParsedCache(), list[int]()
    items = (FetchAtt("ENVELOPE"), FetchAtt("BODYSTRUCTURE"), FetchAtt("RFC822.SIZE"))
    first = await _answer(cache, items, loads)
    assert b'"cached subject"' in first and len(loads) == 1
    assert not cache.needs_raw(items, ("ann", "INBOX", 1, 7))
    assert await _answer(cache, items, loads) == first
    assert len(loads) == 1  # no bytes read again
    assert cache.needs_raw((FetchAtt("ENVELOPE"),), ("ann", "INBOX", 2, 7))  # other key


def test_the_cache_forgets_the_least_recently_used() -> None:
    cache = ParsedCache(limit=2)
    cache.put(("a",), b"1")
    cache.put(("b",), b"2")
    assert cache.get(("a",)) == b"1"  # "a" is now the most recent
    cache.put(("c",), b"3")
    assert cache.get(("b",)) is None and cache.get(("a",)) == b"1"


def test_fetch_across_batches_answers_every_message_in_order(
        imap_any: ImapTestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(messages, "BATCH_MESSAGES", 3)
    for n in range(8):
        imap_any.deliver(ANN, message(f"number {n}"))
    raw = RawClient(imap_any.port)
    raw.command(b"l", b'LOGIN ann@example.com "ann-secret"')
    raw.command(b"s", b"SELECT INBOX")
    lines = raw.command(b"f", b"FETCH 1:* (ENVELOPE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert lines[-1] == b"f OK Fetch completed\r\n"
    fetches = [line for line in lines if b" FETCH (" in line]
    assert [int(line.split()[1]) for line in fetches] == list(range(1, 9))
    assert all(b'"number %d"' % n in line for n, line in enumerate(fetches))
    # Again, now from the cache for ENVELOPE (the header section still reads the bytes).
    again = raw.command(b"g", b"FETCH 1:* (ENVELOPE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert again == [*lines[:-1], b"g OK Fetch completed\r\n"]
    raw.close()
