"""FETCH response data for one message (RFC 3501 §7.4.2), from store metadata and bytes."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime

from mailward.imap.grammar.fetch import FetchAtt
from mailward.imap.mime import bodystructure, envelope, section
from mailward.imap.selected import flag_list

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
#: Attributes answered from metadata alone; everything else needs the message bytes.
_METADATA = frozenset({"FLAGS", "INTERNALDATE", "RFC822.SIZE", "UID"})
#: Attributes that set \Seen when the folder is read-write (RFC 3501 §6.4.5).
_SETS_SEEN = frozenset({"RFC822", "RFC822.TEXT"})
#: Attributes computed from the bytes once and cached (see :class:`ParsedCache`).
_PARSED_ITEMS = frozenset({"ENVELOPE", "BODYSTRUCTURE", "BODY"})


def needs_body(items: tuple[FetchAtt, ...]) -> bool:
    return any(item.name not in _METADATA for item in items)


def _cacheable(item: FetchAtt) -> bool:
    return item.name in _PARSED_ITEMS and item.section is None


class ParsedCache:
    """ENVELOPE, BODYSTRUCTURE and BODY of recently fetched messages, so that clients
    listing a folder again (every reconnect) need no message bytes. A message never
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
                     key: tuple[object, ...] = ()) -> bytes:
    """The parenthesised ``msg-att`` list answering ``items`` for one message.

    ``with_uid`` adds ``UID`` (required in UID FETCH responses) when not asked for.
    ``load`` is called at most once, and only if ``cache`` (looked up and filled under
    ``key``) cannot answer every item that needs the message bytes.
    """
    raw: bytes | None = None
    parts: list[bytes] = []
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
        elif cache is not None and _cacheable(item):
            value = cache.get((*key, name))
            if value is None:
                if raw is None:
                    raw = await load()
                value = _content(item, raw)
                cache.put((*key, name), value)
            parts.append(value)
        else:
            if raw is None:
                raw = await load()
            parts.append(_content(item, raw))
    return b"(" + b" ".join(parts) + b")"


def _content(item: FetchAtt, raw: bytes) -> bytes:
    name = item.name
    if name == "ENVELOPE":
        return b"ENVELOPE " + envelope(raw)
    if name == "BODYSTRUCTURE":
        return b"BODYSTRUCTURE " + bodystructure(raw)
    if name == "RFC822":
        return b"RFC822 " + _literal(raw)
    if name == "RFC822.HEADER":
        return b"RFC822.HEADER " + _literal(section(raw, "HEADER"))
    if name == "RFC822.TEXT":
        return b"RFC822.TEXT " + _literal(section(raw, "TEXT"))
    if name == "BODY" and item.section is None:
        return b"BODY " + bodystructure(raw, extensible=False)
    if name == "MODSEQ":
        return b"MODSEQ (1)"
    assert item.section is not None
    spec = str(item.section)
    data = section(raw, spec)
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
