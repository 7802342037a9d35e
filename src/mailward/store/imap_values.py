"""Serializers for IMAP values (RFC 3501 §4: strings, nstrings, lists), shared by the store's
message summaries (:mod:`mailward.store.mime`) and the IMAP server."""

from __future__ import annotations

import re
from collections.abc import Iterable

NIL = b"NIL"
_LWSP = re.compile(rb"[ \t\r\n]+")
_MAX_QUOTED = 1000


def _to_bytes(value: str | bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    return value.encode("utf-8", "surrogateescape")


def imap_string(value: str | bytes) -> bytes:
    """Quoted string, or a literal ``{n}\\r\\n...`` if it holds CR/LF/NUL/8-bit or is long."""
    raw = _to_bytes(value)
    if len(raw) > _MAX_QUOTED or any(b >= 0x80 or b in (0, 10, 13) for b in raw):
        return b"{%d}\r\n" % len(raw) + raw
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def nstring(value: str | bytes | None) -> bytes:
    """``NIL`` for None, otherwise :func:`imap_string`."""
    return NIL if value is None else imap_string(value)


def imap_list(items: Iterable[bytes]) -> bytes:
    """Parenthesized list of already-serialized items."""
    return b"(" + b" ".join(items) + b")"


def human_string(value: str | bytes | None) -> bytes:
    """An nstring meant for people (ENVELOPE subject, display names), cleaned as Dovecot
    does: CR, LF and TAB become spaces, runs of white space one space, leading and trailing
    white space go, NUL becomes 0x80. A value that needed any of that, or that holds 8-bit,
    ``"`` or ``\\``, is sent as a literal; other values are quoted verbatim."""
    if value is None:
        return NIL
    raw = _to_bytes(value)
    cleaned = b" ".join(w for w in _LWSP.split(raw.replace(b"\0", b"\x80")) if w)
    if cleaned == raw and not any(b >= 0x80 or b in (0x22, 0x5C) for b in raw):
        return b'"' + raw + b'"'
    if not cleaned:
        return b'""'
    return b"{%d}\r\n" % len(cleaned) + cleaned
