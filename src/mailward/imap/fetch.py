"""FETCH response data for one message (RFC 3501 §7.4.2), from store metadata and bytes."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime

from mailward.imap.grammar.fetch import FetchAtt
from mailward.imap.mime import Message
from mailward.imap.selected import flag_list
from mailward.store import Summary

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
#: Attributes answered from metadata alone; everything else needs the message bytes.
_METADATA = frozenset({"FLAGS", "INTERNALDATE", "RFC822.SIZE", "UID", "MODSEQ"})
#: Attributes that set \Seen when the folder is read-write (RFC 3501 §6.4.5).
_SETS_SEEN = frozenset({"RFC822", "RFC822.TEXT"})
#: Attributes computed from the bytes once and cached (see :class:`ParsedCache`).
_PARSED_ITEMS = frozenset({"ENVELOPE", "BODYSTRUCTURE", "BODY"})
#: A message larger than this, or with more lines that may be MIME delimiters, is parsed in
#: a worker thread; smaller ones on the loop, which is then yielded to other sessions.
PARSE_INLINE_BYTES = 64 * 1024
PARSE_INLINE_DELIMITERS = 200


def needs_body(items: tuple[FetchAtt, ...]) -> bool:
    return any(item.name not in _METADATA for item in items)


def summary_answers(items: tuple[FetchAtt, ...]) -> bool:
    """Whether a message's metadata and its store summary answer all of ``items``."""
    return any(_cacheable(item) for item in items) and all(
        item.name in _METADATA or item.name == "MODSEQ" or _cacheable(item) for item in items)


def _cacheable(item: FetchAtt) -> bool:
    return item.name in _PARSED_ITEMS and item.section is None


class ParsedCache:
    """ENVELOPE, BODYSTRUCTURE and BODY of recently fetched messages, in front of the
    summaries the store keeps (:meth:`mailward.store.MailStore.summaries`), so that
    clients listing a folder again (every reconnect) need no store call. A message never
    changes under its key (mailbox, folder, UIDVALIDITY, UID, size, internal date)."""

    def __init__(self, limit: int = 20_000) -> None:
        self.limit = limit
        self._items: OrderedDict[tuple[object, ...], bytes] = OrderedDict()

    def get(self, key: tuple[object, ...]) -> bytes | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: tuple[object, ...], value: bytes) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.limit:
            self._items.popitem(last=False)

    def fill(self, key: tuple[object, ...], summary: Summary) -> None:
        """Remember the items a store summary answers for the message at ``key``."""
        self.put((*key, "ENVELOPE"), b"ENVELOPE " + summary.envelope)
        self.put((*key, "BODYSTRUCTURE"), b"BODYSTRUCTURE " + summary.bodystructure)
        self.put((*key, "BODY"), b"BODY " + summary.body)

    def needs_raw(self, items: tuple[FetchAtt, ...], key: tuple[object, ...]) -> bool:
        """Whether answering ``items`` for the message at ``key`` needs its bytes."""
        return any(item.name not in _METADATA and not (
            _cacheable(item) and (*key, item.name) in self._items) for item in items)


def sets_seen(items: tuple[FetchAtt, ...]) -> bool:
    """Whether fetching ``items`` marks the message \\Seen (BODY[...] without PEEK)."""
    return any(item.name in _SETS_SEEN or (item.section is not None and not item.peek)
               for item in items)


def internal_date(value: datetime) -> bytes:
    """``"17-Jul-1996 02:44:25 -0700"`` (RFC 3501 ``date-time``)."""
    offset = value.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return (f'"{value.day:02d}-{_MONTHS[value.month - 1]}-{value.year:04d} '
            f"{value.hour:02d}:{value.minute:02d}:{value.second:02d} "
            f'{sign}{minutes // 60:02d}{minutes % 60:02d}"').encode("ascii")


def _literal(data: bytes) -> bytes:
    return b"{%d}\r\n" % len(data) + data


async def fetch_data(items: tuple[FetchAtt, ...], *, uid: int, size: int, flags: frozenset[str],
                     date: datetime, load: Callable[[], Awaitable[bytes]],
                     with_uid: bool, cache: ParsedCache | None = None,
                     key: tuple[object, ...] = (),
                     before_offload: Callable[[], Awaitable[None]] | None = None,
                     modseq: int = 1) -> bytes:
    """The parenthesised ``msg-att`` list answering ``items`` for one message.

    ``with_uid`` adds ``UID`` (required in UID FETCH responses) when not asked for.
    ``load`` is called at most once, and only if ``cache`` (looked up and filled under
    ``key``) cannot answer every item that needs the message bytes.
    A message that is big or has many parts is parsed in a worker thread, after
    ``before_offload`` (e.g. sending the answers so far); a small one on the loop, which
    is then yielded once: a FETCH of many messages never holds up other sessions.
    """
    parts: list[bytes | None] = []
    wanted: list[tuple[int, FetchAtt]] = []  # (index in parts, item) answered from the bytes
    if with_uid and not any(item.name == "UID" for item in items):
        parts.append(b"UID %d" % uid)
    for item in items:
        name = item.name
        if name == "UID":
            parts.append(b"UID %d" % uid)
        elif name == "FLAGS":
            parts.append(b"FLAGS " + flag_list(flags))
        elif name == "INTERNALDATE":
            parts.append(b"INTERNALDATE " + internal_date(date))
        elif name == "RFC822.SIZE":
            parts.append(b"RFC822.SIZE %d" % size)
        elif name == "MODSEQ":
            parts.append(b"MODSEQ (%d)" % modseq)
        else:
            cached = cache.get((*key, name)) if cache is not None and _cacheable(item) else None
            if cached is None:
                wanted.append((len(parts), item))
            parts.append(cached)
    if wanted:
        raw = await load()
        if len(raw) > PARSE_INLINE_BYTES or raw.count(b"\n--") > PARSE_INLINE_DELIMITERS:
            if before_offload is not None:
                await before_offload()
            values = await asyncio.to_thread(_contents, [item for _, item in wanted], raw)
        else:
            values = _contents([item for _, item in wanted], raw)
            await asyncio.sleep(0)  # let other sessions in between messages
        for (index, item), value in zip(wanted, values, strict=True):
            parts[index] = value
            if cache is not None and _cacheable(item):
                cache.put((*key, item.name), value)
    return b"(" + b" ".join(part for part in parts if part is not None) + b")"


def _contents(items: list[FetchAtt], raw: bytes) -> list[bytes]:
    """The answers to ``items`` from the message bytes, parsed at most once."""
    parsed: Message | None = None
    out = []
    for item in items:
        if item.name == "RFC822":
            out.append(b"RFC822 " + _literal(raw))
            continue
        if parsed is None:
            parsed = Message(raw)
        out.append(_content(item, parsed))
    return out


def _content(item: FetchAtt, msg: Message) -> bytes:
    name = item.name
    if name == "ENVELOPE":
        return b"ENVELOPE " + msg.envelope()
    if name == "BODYSTRUCTURE":
        return b"BODYSTRUCTURE " + msg.bodystructure()
    if name == "RFC822.HEADER":
        return b"RFC822.HEADER " + _literal(msg.section("HEADER"))
    if name == "RFC822.TEXT":
        return b"RFC822.TEXT " + _literal(msg.section("TEXT"))
    if name == "BODY" and item.section is None:
        return b"BODY " + msg.bodystructure(extensible=False)
    assert item.section is not None
    spec = str(item.section)
    data = msg.section(spec)
    key = b"BODY[" + _echo(item).encode("utf-8") + b"]"
    if item.partial is not None:
        start, count = item.partial
        data = data[start:start + count]
        key += b"<%d>" % start
    return key + b" " + _literal(data)


def _echo(item: FetchAtt) -> str:
    """The section as echoed in the response: header field names upper-cased (Dovecot)."""
    assert item.section is not None
    sec = item.section
    parts = [str(n) for n in sec.part]
    if sec.text:
        parts.append(sec.text)
    spec = ".".join(parts)
    if sec.fields:
        spec += " (" + " ".join(f.upper() for f in sec.fields) + ")"
    return spec
