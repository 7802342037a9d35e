"""FETCH response data for one message (RFC 3501 §7.4.2), from store metadata and bytes."""

from __future__ import annotations

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


def needs_body(items: tuple[FetchAtt, ...]) -> bool:
    return any(item.name not in _METADATA for item in items)


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
                     with_uid: bool) -> bytes:
    """The parenthesised ``msg-att`` list answering ``items`` for one message.

    ``with_uid`` adds ``UID`` (required in UID FETCH responses) when not asked for.
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
