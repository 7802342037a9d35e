"""Pure serializers for IMAP response values (RFC 3501 §4: strings, nstrings, lists)."""

from __future__ import annotations

from collections.abc import Iterable

NIL = b"NIL"
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
