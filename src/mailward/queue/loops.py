"""Forwarding-loop detection on raw message bytes (no parsing beyond the header block).

Two signals, as in Postfix: a ``Delivered-To:`` field naming the recipient we are about
to deliver to means the message has been here before (a forwarding loop), and too many
``Received:`` fields mean it is bouncing between systems (RFC 5321 §6.3).
"""

from __future__ import annotations

from collections.abc import Iterator

MAX_HOPS = 50
"""Most ``Received:`` fields accepted (Postfix ``hopcount_limit``); RFC 5321 §6.3 says a
limit of at least 100 is too generous to be needed."""


def _fields(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(lower-cased name, unfolded value) of each header field, up to the first empty line.

    Lines that are neither a field nor a continuation (an mbox ``From `` line, junk) are
    skipped. Only the header block is read, however large the body.
    """
    name: bytes | None = None
    value: list[bytes] = []
    pos, size = 0, len(data)
    while pos < size:
        end = data.find(b"\n", pos)
        nxt = size if end < 0 else end + 1
        line = data[pos : size if end < 0 else end]
        pos = nxt
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            break
        if line[:1] in (b" ", b"\t"):
            if name is not None:
                value.append(line)
            continue
        if name is not None:
            yield name, b"".join(value).strip()
        field, colon, rest = line.partition(b":")
        field = field.rstrip(b" \t")
        if colon and field and b" " not in field and b"\t" not in field:
            name, value = field.lower(), [rest]
        else:
            name, value = None, []
    if name is not None:
        yield name, b"".join(value).strip()


def _address(value: bytes) -> str:
    """A ``Delivered-To`` value as a lower-cased bare address."""
    text = value.decode("utf-8", "replace").strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    return text.lower()


def _scan(data: bytes) -> tuple[int, list[str]]:
    received = 0
    delivered: list[str] = []
    for name, value in _fields(data):
        if name == b"received":
            received += 1
        elif name == b"delivered-to" and (address := _address(value)):
            delivered.append(address)
    return received, delivered


def count_received(data: bytes) -> int:
    """How many ``Received:`` fields the header block has (folded fields count once)."""
    return _scan(data)[0]


def delivered_to(data: bytes) -> set[str]:
    """The lower-cased addresses of the header block's ``Delivered-To:`` fields."""
    return set(_scan(data)[1])


def count_delivered_to(data: bytes) -> int:
    """How many ``Delivered-To:`` fields the header block has: the forwarding hops the
    message has made (each local delivery adds one)."""
    return len(_scan(data)[1])


def field_value(data: bytes, name: str) -> str | None:
    """The first header field ``name``'s unfolded value (case-insensitive name), or ``None``."""
    wanted = name.lower().encode()
    for field, value in _fields(data):
        if field == wanted:
            return value.decode("utf-8", "replace")
    return None


def without_field(data: bytes, name: str) -> bytes:
    """``data`` without any header field ``name`` (continuation lines included); the
    rest, the body above all, byte for byte."""
    wanted = name.lower().encode()
    out: list[bytes] = []
    pos, size, dropping = 0, len(data), False
    while pos < size:
        end = data.find(b"\n", pos)
        nxt = size if end < 0 else end + 1
        line = data[pos:nxt]
        bare = line.rstrip(b"\r\n")
        if not bare:  # the end of the header block: the rest as it is
            out.append(data[pos:])
            return b"".join(out)
        if bare[:1] in (b" ", b"\t"):
            if not dropping:
                out.append(line)
        else:
            field = bare.partition(b":")[0].rstrip(b" \t").lower()
            dropping = field == wanted
            if not dropping:
                out.append(line)
        pos = nxt
    return b"".join(out)


def is_loop(data: bytes, recipient: str, *, max_hops: int = MAX_HOPS) -> str | None:
    """Why delivering ``data`` to ``recipient`` would loop, or ``None`` if it would not.

    A loop is a ``Delivered-To:`` naming ``recipient`` (compared case-insensitively) or
    more than ``max_hops`` ``Received:`` fields; exactly ``max_hops`` is still accepted.
    """
    received, delivered = _scan(data)
    target = recipient.strip().strip("<>").strip().lower()
    if target and target in delivered:
        return f"mail forwarding loop for {recipient.strip()}"
    if received > max_hops:
        return f"too many hops ({received} Received headers)"
    return None


def add_field(data: bytes, name: str, value: str) -> bytes:
    """``data`` with ``name: value`` prepended.

    The new line ends in CRLF, or in a bare LF when the message's first line does.
    Raises ``ValueError`` if ``value`` is empty or contains a line break.
    """
    if not value or any(c in value for c in "\r\n\0"):
        raise ValueError(f"invalid value for {name}: {value!r}")
    first = data.find(b"\n")
    newline = b"\n" if first >= 0 and data[first - 1 : first] != b"\r" else b"\r\n"
    return name.encode() + b": " + value.encode("utf-8") + newline + data


def add_delivered_to(data: bytes, recipient: str) -> bytes:
    """``data`` with ``Delivered-To: recipient`` prepended (see :func:`add_field`)."""
    if not recipient or any(c in recipient for c in "\r\n\0"):
        raise ValueError(f"invalid recipient for Delivered-To: {recipient!r}")
    return add_field(data, "Delivered-To", recipient)
