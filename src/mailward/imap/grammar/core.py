"""Lexical layer of the IMAP4rev1 grammar (RFC 3501 §9): a cursor over one command.

Everything here is pure: it works on ``bytes`` already in memory and raises only
:class:`ParseError`.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

__all__ = [
    "MAX_DEPTH",
    "MAX_ITEMS",
    "ParseError",
    "Reader",
    "SequenceSet",
]

#: Deepest parenthesis nesting accepted (SEARCH groups, flag lists, ...).
MAX_DEPTH = 32
#: Most items accepted in any one list (fetch attributes, flags, search keys, set members).
MAX_ITEMS = 1000
#: Largest number (RFC 3501 ``number`` is an unsigned 32-bit integer).
MAX_NUMBER = 4294967295
#: Largest mod-sequence (RFC 7162: 63-bit).
MAX_MODSEQ = 2**63 - 1

_CTL = frozenset(range(0x00, 0x20)) | {0x7F}
#: atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards / quoted-specials / resp-specials
_ATOM_SPECIALS = _CTL | frozenset(b'(){ %*"\\]')
ATOM_CHARS = frozenset(c for c in range(0x01, 0x80) if c not in _ATOM_SPECIALS)
ASTRING_CHARS = ATOM_CHARS | {ord("]")}
LIST_CHARS = ATOM_CHARS | frozenset(b"%*]")
TAG_CHARS = ASTRING_CHARS - {ord("+")}
_DIGITS = frozenset(b"0123456789")

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


class ParseError(Exception):
    """A command the grammar refuses; the session answers ``<tag> BAD <message>``.

    ``tag`` is the command tag when it could be read, else ``None`` (answer ``* BAD``).
    """

    def __init__(self, tag: str | None, message: str) -> None:
        super().__init__(tag, message)
        self.tag = tag
        self.message = message

    def __str__(self) -> str:
        return f"{self.tag or '*'} BAD {self.message}"


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """An RFC 3501 ``sequence-set`` (also used for UID sets).

    ``ranges`` keeps the client's members in order as ``(start, end)`` pairs; ``None``
    stands for ``*``; a single number ``n`` is ``(n, n)``; ``a:b`` may be in either
    order. :meth:`resolve` gives the concrete meaning for a mailbox.
    """

    ranges: tuple[tuple[int | None, int | None], ...]

    def resolve(self, max_value: int) -> list[tuple[int, int]]:
        """Concrete, sorted, merged, inclusive ``(lo, hi)`` ranges within ``1..max_value``.

        ``*`` is ``max_value`` (the highest sequence number or UID in use). Members
        above ``max_value`` are dropped, except that a range reaching ``*`` always
        keeps ``max_value`` (so ``UID 900:*`` with highest UID 500 yields ``[(500, 500)]``,
        as RFC 3501 §6.4.8 requires). An empty mailbox (``max_value`` 0) yields ``[]``.
        """
        if max_value <= 0:
            return []
        spans: list[tuple[int, int]] = []
        for start, end in self.ranges:
            a = max_value if start is None else start
            b = max_value if end is None else end
            lo, hi = min(a, b), max(a, b)
            if lo > max_value:
                continue
            spans.append((lo, min(hi, max_value)))
        spans.sort()
        merged: list[tuple[int, int]] = []
        for lo, hi in spans:
            if merged and lo <= merged[-1][1] + 1:
                if hi > merged[-1][1]:
                    merged[-1] = (merged[-1][0], hi)
            else:
                merged.append((lo, hi))
        return merged

    def numbers(self, max_value: int) -> list[int]:
        """Every number of :meth:`resolve`, ascending (beware of huge UID ranges)."""
        return [n for lo, hi in self.resolve(max_value) for n in range(lo, hi + 1)]

    def contains(self, value: int, max_value: int) -> bool:
        return any(lo <= value <= hi for lo, hi in self.resolve(max_value))

    def highest_explicit(self) -> int:
        """Largest literal number written by the client (0 if only ``*``).

        For message sequence numbers the session answers BAD when this exceeds the
        mailbox size (RFC 3501 §9 ``seq-number``).
        """
        return max((n for r in self.ranges for n in r if n is not None), default=0)

    def __str__(self) -> str:
        def one(n: int | None) -> str:
            return "*" if n is None else str(n)

        return ",".join(one(a) if a == b else f"{one(a)}:{one(b)}" for a, b in self.ranges)


class Reader:
    """A cursor over one command's bytes, with one method per grammar element."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.tag: str | None = None
        self.depth = 0

    # -- basics -----------------------------------------------------------------
    def error(self, message: str) -> ParseError:
        return ParseError(self.tag, message)

    def peek(self) -> int | None:
        return self.data[self.pos] if self.pos < len(self.data) else None

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def startswith(self, prefix: bytes) -> bool:
        """Case-insensitive look-ahead (``prefix`` given in upper case)."""
        return self.data[self.pos : self.pos + len(prefix)].upper() == prefix

    def expect(self, literal: bytes, what: str | None = None) -> None:
        if not self.startswith(literal):
            raise self.error(f"expected {what or repr(literal.decode())}")
        self.pos += len(literal)

    def sp(self) -> None:
        if self.peek() != 0x20:
            raise self.error("expected a space")
        self.pos += 1

    def maybe(self, byte: bytes) -> bool:
        if self.peek() == byte[0]:
            self.pos += 1
            return True
        return False

    def end(self) -> None:
        """Accept the final CRLF (optional) and require nothing after it."""
        if self.data[self.pos :] in (b"\r\n", b"\n", b""):
            self.pos = len(self.data)
            return
        raise self.error("unexpected characters at end of command")

    def at_eol(self) -> bool:
        return self.data[self.pos :] in (b"\r\n", b"\n", b"")

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error("too deeply nested")

    def leave(self) -> None:
        self.depth -= 1

    def take(self, chars: frozenset[int]) -> bytes:
        start = self.pos
        data = self.data
        while self.pos < len(data) and data[self.pos] in chars:
            self.pos += 1
        return data[start : self.pos]

    # -- tokens ------------------------------------------------------------------
    def read_tag(self) -> str:
        tag = self.take(TAG_CHARS)
        if not tag:
            raise self.error("missing or invalid tag")
        self.tag = tag.decode("ascii")
        return self.tag

    def atom(self, what: str = "atom") -> bytes:
        value = self.take(ATOM_CHARS)
        if not value:
            raise self.error(f"expected {what}")
        return value

    def keyword(self, what: str = "keyword") -> str:
        """An atom, upper-cased (command names, search keys, status items ...)."""
        return self.atom(what).decode("ascii").upper()

    def number(self, *, nonzero: bool = False) -> int:
        digits = self.take(_DIGITS)
        if not digits:
            raise self.error("expected a number")
        if len(digits) > 10 or int(digits) > MAX_NUMBER:
            raise self.error("number out of range")
        value = int(digits)
        if nonzero and value == 0:
            raise self.error("expected a non-zero number")
        return value

    def mod_sequence(self, *, nonzero: bool = True) -> int:
        """``mod-sequence-value`` (RFC 7162): 1..2**63-1, or 0 too unless ``nonzero``."""
        digits = self.take(_DIGITS)
        if not digits:
            raise self.error("expected a mod-sequence")
        if len(digits) > 19 or int(digits) > MAX_MODSEQ:
            raise self.error("mod-sequence out of range")
        if nonzero and int(digits) == 0:
            raise self.error("expected a non-zero mod-sequence")
        return int(digits)

    def keyword_list(self, what: str, *, allow_empty: bool = True) -> tuple[str, ...]:
        """``"(" [atom *(SP atom)] ")"``, upper-cased."""
        self.expect(b"(", f"{what} list")
        items: list[str] = []
        if not self.maybe(b")"):
            while True:
                items.append(self.keyword(what))
                if len(items) > MAX_ITEMS:
                    raise self.error(f"too many {what}s")
                if self.maybe(b")"):
                    break
                self.sp()
        if not items and not allow_empty:
            raise self.error(f"empty {what} list")
        return tuple(items)

    def quoted(self) -> bytes:
        self.expect(b'"')
        out = bytearray()
        data = self.data
        while True:
            if self.pos >= len(data):
                raise self.error("unterminated quoted string")
            c = data[self.pos]
            self.pos += 1
            if c == 0x22:
                return bytes(out)
            if c == 0x5C:
                nxt = self.peek()
                if nxt not in (0x22, 0x5C):
                    raise self.error("invalid escape in quoted string")
                out.append(nxt)
                self.pos += 1
            elif c >= 0x80:
                raise self.error("8-bit characters not allowed in quoted string; use a literal")
            elif c in (0x00, 0x0D, 0x0A):
                raise self.error("invalid character in quoted string")
            else:
                out.append(c)

    def literal(self) -> bytes:
        """``{N}`` or ``{N+}`` CRLF then N octets (already collected by the session)."""
        self.expect(b"{")
        size = self.number()
        self.maybe(b"+")
        self.expect(b"}")
        if self.startswith(b"\r\n"):
            self.pos += 2
        elif self.peek() == 0x0A:
            self.pos += 1
        else:
            raise self.error("expected CRLF after literal size")
        if len(self.data) - self.pos < size:
            raise self.error("truncated literal")
        value = self.data[self.pos : self.pos + size]
        self.pos += size
        return value

    def string(self) -> bytes:
        c = self.peek()
        if c == 0x22:
            return self.quoted()
        if c == 0x7B:
            return self.literal()
        raise self.error("expected a string")

    def astring(self, what: str = "astring") -> bytes:
        c = self.peek()
        if c in (0x22, 0x7B):
            return self.string()
        value = self.take(ASTRING_CHARS)
        if not value:
            raise self.error(f"expected {what}")
        return value

    def nstring(self) -> bytes | None:
        if self.startswith(b"NIL") and not self._atom_continues(3):
            self.pos += 3
            return None
        return self.string()

    def _atom_continues(self, offset: int) -> bool:
        i = self.pos + offset
        return i < len(self.data) and self.data[i] in ASTRING_CHARS

    def text(self, value: bytes, what: str) -> str:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise self.error(f"{what} is not valid UTF-8") from None

    def mailbox(self) -> str:
        """``mailbox = "INBOX" / astring``: INBOX in any case becomes ``"INBOX"``.

        Names stay as sent (modified UTF-7 is not decoded); 8-bit must be UTF-8.
        """
        name = self.text(self.astring("mailbox name"), "mailbox name")
        return "INBOX" if name.upper() == "INBOX" else name

    def list_mailbox(self) -> str:
        c = self.peek()
        value = self.string() if c in (0x22, 0x7B) else self.take(LIST_CHARS)
        if not value and c not in (0x22, 0x7B):
            raise self.error("expected list pattern")
        return self.text(value, "list pattern")

    def sequence_set(self) -> SequenceSet:
        ranges: list[tuple[int | None, int | None]] = []
        while True:
            start = self._seq_number()
            end = start
            if self.maybe(b":"):
                end = self._seq_number()
            ranges.append((start, end))
            if len(ranges) > MAX_ITEMS:
                raise self.error("sequence set too long")
            if not self.maybe(b","):
                return SequenceSet(tuple(ranges))

    def _seq_number(self) -> int | None:
        if self.maybe(b"*"):
            return None
        if self.peek() not in _DIGITS:
            raise self.error("expected a sequence set")
        return self.number(nonzero=True)

    def flag(self) -> str:
        """``flag``: ``\\System`` (case kept as sent), ``\\Extension`` or a keyword atom."""
        if self.maybe(b"\\"):
            return "\\" + self.atom("flag").decode("ascii")
        return self.atom("flag").decode("ascii")

    def flag_list(self) -> tuple[str, ...]:
        self.expect(b"(")
        flags: list[str] = []
        if not self.maybe(b")"):
            while True:
                flags.append(self.flag())
                if len(flags) > MAX_ITEMS:
                    raise self.error("too many flags")
                if self.maybe(b")"):
                    break
                self.sp()
        return tuple(flags)

    def _month(self) -> int:
        name = self.data[self.pos : self.pos + 3].upper()
        try:
            month = MONTHS.index(name.decode("ascii")) + 1
        except (ValueError, UnicodeDecodeError):
            raise self.error("invalid month") from None
        self.pos += 3
        return month

    def _fixed_digits(self, count: int, what: str) -> int:
        chunk = self.data[self.pos : self.pos + count]
        if len(chunk) != count or not all(c in _DIGITS for c in chunk):
            raise self.error(f"invalid {what}")
        self.pos += count
        return int(chunk)

    def date(self) -> _dt.date:
        """``date = date-text / DQUOTE date-text DQUOTE`` (``d-Mon-yyyy``)."""
        quoted = self.maybe(b'"')
        day_digits = self.take(_DIGITS)
        if not 1 <= len(day_digits) <= 2:
            raise self.error("invalid date")
        self.expect(b"-", "'-' in date")
        month = self._month()
        self.expect(b"-", "'-' in date")
        year = self._fixed_digits(4, "year")
        if quoted:
            self.expect(b'"', "closing quote of date")
        try:
            return _dt.date(year, month, int(day_digits))
        except ValueError:
            raise self.error("invalid date") from None

    def date_time(self) -> _dt.datetime:
        """``DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE``."""
        self.expect(b'"', "date-time")
        if self.peek() == 0x20:
            self.pos += 1
            day = self._fixed_digits(1, "day")
        else:
            day = self._fixed_digits(2, "day")
        self.expect(b"-", "'-' in date-time")
        month = self._month()
        self.expect(b"-", "'-' in date-time")
        year = self._fixed_digits(4, "year")
        self.sp()
        hour = self._fixed_digits(2, "hour")
        self.expect(b":", "':' in time")
        minute = self._fixed_digits(2, "minute")
        self.expect(b":", "':' in time")
        second = self._fixed_digits(2, "second")
        self.sp()
        sign = self.peek()
        if sign not in (0x2B, 0x2D):
            raise self.error("invalid zone")
        self.pos += 1
        zh = self._fixed_digits(2, "zone")
        zm = self._fixed_digits(2, "zone")
        self.expect(b'"', "closing quote of date-time")
        offset = _dt.timedelta(hours=zh, minutes=zm)
        if sign == 0x2D:
            offset = -offset
        try:
            zone = _dt.timezone(offset)
            return _dt.datetime(year, month, day, hour, minute, second, tzinfo=zone)
        except ValueError:
            raise self.error("invalid date-time") from None
