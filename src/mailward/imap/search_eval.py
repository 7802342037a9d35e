"""Evaluate IMAP SEARCH criteria (RFC 3501 §6.4.4) over the messages of a selected folder.

:func:`search` compiles the :class:`~mailward.imap.grammar.search.SearchKey` tree once
(validating charset, strings and unsupported keys before anything is evaluated), then
checks every candidate in two passes: first with metadata only (flags, sizes, dates,
sequence numbers, UIDs), and only when that leaves the answer open it loads the message
bytes and evaluates header and body keys. String matches are case-insensitive substring
matches on RFC 2047-decoded, unfolded header values and on the decoded text of the
``text/*`` body parts, as Dovecot does. Malformed mail never raises.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import datetime as _dt
import email
import email.utils
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from email.policy import compat32

from mailward.imap.grammar.core import SequenceSet
from mailward.imap.grammar.search import SearchKey
from mailward.store.interface import ANSWERED, DELETED, DRAFT, FLAGGED, SEEN, MessageInfo

__all__ = ["BadCharset", "Candidate", "SearchError", "search"]

_EPOCH = _dt.date(1970, 1, 1)


class SearchError(Exception):
    """Criteria that cannot be evaluated; ``str()`` is a user-facing reason."""


class BadCharset(SearchError):
    """The SEARCH CHARSET is not supported (answer ``NO [BADCHARSET (...)]``)."""

    supported: tuple[str, ...] = ("UTF-8", "US-ASCII")

    def __init__(self, charset: str) -> None:
        super().__init__(f"unsupported charset {charset}")
        self.charset = charset


@dataclass(frozen=True, slots=True)
class Candidate:
    """One message of the selected folder as the session sees it."""

    seq: int  # message sequence number (1-based, dense)
    info: MessageInfo  # uid, size, flags, internal_date
    recent: bool  # \Recent in this session


async def search(
    criteria: SearchKey,
    candidates: Sequence[Candidate],
    *,
    charset: str | None,
    load: Callable[[int], Awaitable[bytes]],
) -> list[Candidate]:
    """The candidates matching ``criteria``, in the given (sequence) order.

    ``load(uid)`` is awaited only for messages whose outcome depends on header or body
    keys, at most once per message. Raises :class:`BadCharset` or :class:`SearchError`
    before evaluating anything.
    """
    if charset is not None and charset.upper() not in BadCharset.supported:
        raise BadCharset(charset)
    max_uid = max((c.info.uid for c in candidates), default=0)
    pred, _ = _compile(criteria, len(candidates), max_uid)
    found: list[Candidate] = []
    for cand in candidates:
        result = pred(cand, None)
        if result is None:
            result = pred(cand, _Message(await load(cand.info.uid)))
        if result:
            found.append(cand)
    return found


# ---------------------------------------------------------------- compilation

#: ``pred(candidate, message)``: True/False, or None when ``message`` is None and the
#: answer needs the message contents.
_Pred = Callable[[Candidate, "_Message | None"], "bool | None"]

_CHEAP, _HEADER, _BODY = 0, 1, 2
_FLAG_OF = {"ANSWERED": ANSWERED, "DELETED": DELETED, "DRAFT": DRAFT, "FLAGGED": FLAGGED}
_ADDRESS_HEADERS = frozenset({"from", "to", "cc", "bcc", "sender", "reply-to"})


def _compile(key: SearchKey, n_messages: int, max_uid: int) -> tuple[_Pred, int]:
    """The predicate for ``key`` and its cost class (cheap, header or body)."""
    op = key.op
    if op in ("AND", "OR"):
        compiled = sorted(
            (_compile(child, n_messages, max_uid) for child in key.children), key=lambda p: p[1]
        )
        preds = tuple(p for p, _ in compiled)
        cost = max((c for _, c in compiled), default=_CHEAP)
        return (_and(preds) if op == "AND" else _or(preds)), cost
    if op == "NOT":
        inner, cost = _compile(key.children[0], n_messages, max_uid)

        def not_(c: Candidate, m: _Message | None) -> bool | None:
            r = inner(c, m)
            return None if r is None else not r

        return not_, cost
    if op in ("SEQ", "UID"):
        assert isinstance(key.value, SequenceSet)
        if op == "SEQ":
            member = _members(key.value, n_messages)
            return (lambda c, m: member(c.seq)), _CHEAP
        member = _members(key.value, max_uid)
        return (lambda c, m: member(c.info.uid)), _CHEAP
    if op == "MODSEQ":  # RFC 7162 §3.1.5: one modseq per message, whatever the entry
        assert isinstance(key.value, int)
        least = key.value
        return (lambda c, m: c.info.modseq >= least), _CHEAP
    flag = _flag_pred(op)
    if flag is not None:
        return flag, _CHEAP
    if op in ("KEYWORD", "UNKEYWORD"):
        word = str(key.value).lower()
        want = op == "KEYWORD"
        return (lambda c, m: any(f.lower() == word for f in c.info.flags) is want), _CHEAP
    if op in ("LARGER", "SMALLER"):
        assert isinstance(key.value, int)
        size = key.value
        if op == "LARGER":
            return (lambda c, m: c.info.size > size), _CHEAP
        return (lambda c, m: c.info.size < size), _CHEAP
    if op in ("BEFORE", "ON", "SINCE"):
        assert isinstance(key.value, _dt.date)
        test = _date_test(op, key.value)
        return (lambda c, m: test(_internal_day(c.info))), _CHEAP
    if op in ("SENTBEFORE", "SENTON", "SENTSINCE"):
        assert isinstance(key.value, _dt.date)
        test = _date_test(op[4:], key.value)

        def sent(c: Candidate, m: _Message | None) -> bool | None:
            if m is None:
                return None
            return test(m.sent_day())

        return sent, _HEADER
    if op in ("FROM", "TO", "CC", "BCC", "SUBJECT", "HEADER"):
        name = (key.field or "") if op == "HEADER" else op
        return _header_pred(name.lower(), _needle(key.value)), _HEADER
    if op == "BODY":
        needle = _needle(key.value)
        return (lambda c, m: None if m is None else needle in m.body_text()), _BODY
    if op == "TEXT":
        needle = _needle(key.value)

        def text(c: Candidate, m: _Message | None) -> bool | None:
            if m is None:
                return None
            return (needle in m.header_text() or needle in m.body_text()
                    or needle in m.part_headers())

        return text, _BODY
    raise SearchError(f"unsupported search key {op}")


def _and(preds: tuple[_Pred, ...]) -> _Pred:
    def and_(c: Candidate, m: _Message | None) -> bool | None:
        unknown = False
        for p in preds:
            r = p(c, m)
            if r is False:
                return False
            if r is None:
                unknown = True
        return None if unknown else True

    return and_


def _or(preds: tuple[_Pred, ...]) -> _Pred:
    def or_(c: Candidate, m: _Message | None) -> bool | None:
        unknown = False
        for p in preds:
            r = p(c, m)
            if r is True:
                return True
            if r is None:
                unknown = True
        return None if unknown else False

    return or_


def _flag_pred(op: str) -> _Pred | None:
    if op == "ALL":
        return lambda c, m: True
    if op in ("SEEN", "UNSEEN"):
        want = op == "SEEN"
        return lambda c, m: (SEEN in c.info.flags) is want
    if op == "RECENT":
        return lambda c, m: c.recent
    if op == "OLD":
        return lambda c, m: not c.recent
    if op == "NEW":
        return lambda c, m: c.recent and SEEN not in c.info.flags
    plain = op[2:] if op.startswith("UN") else op
    if plain not in _FLAG_OF:
        return None
    flag, want = _FLAG_OF[plain], plain == op
    return lambda c, m: (flag in c.info.flags) is want


def _members(seqset: SequenceSet, max_value: int) -> Callable[[int], bool]:
    ranges = seqset.resolve(max_value)
    starts = [lo for lo, _ in ranges]

    def member(value: int) -> bool:
        i = bisect.bisect_right(starts, value) - 1
        return i >= 0 and value <= ranges[i][1]

    return member


def _date_test(kind: str, day: _dt.date) -> Callable[[_dt.date], bool]:
    if kind == "BEFORE":
        return lambda d: d < day
    if kind == "ON":
        return lambda d: d == day
    return lambda d: d >= day


def _internal_day(info: MessageInfo) -> _dt.date:
    when = info.internal_date
    if when.tzinfo is None:
        return when.date()
    return when.astimezone(_dt.UTC).date()


def _needle(value: object) -> str:
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise SearchError("search string is not valid in the given charset") from None
    return str(value).casefold()


def _header_pred(name: str, needle: str) -> _Pred:
    def header(c: Candidate, m: _Message | None) -> bool | None:
        if m is None:
            return None
        return any(needle in v for v in m.header_values(name))

    return header


# ---------------------------------------------------------------- message access

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FIELD_LINE = re.compile(rb"[\x21-\x39\x3b-\x7e]+:|[ \t]")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")


class _Message:
    """Lazily decoded views of one message, all case-folded for matching."""

    __slots__ = ("_body", "_fields", "_header_text", "_part_headers", "raw")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self._fields: list[tuple[str, bytes, str]] | None = None
        self._header_text: str | None = None
        self._body: str | None = None
        self._part_headers: str | None = None

    def fields(self) -> list[tuple[str, bytes, str]]:
        """``(lower-case name, raw unfolded value, decoded case-folded value)`` each."""
        if self._fields is None:
            self._fields = [
                (name, raw, _decode_header(raw).casefold())
                for name, raw in _header_fields(self.raw)
            ]
        return self._fields

    def header_values(self, name: str) -> list[str]:
        """Every match target of header ``name``; address headers add a normal form."""
        out: list[str] = []
        for fname, raw, value in self.fields():
            if fname != name:
                continue
            out.append(value)
            if name in _ADDRESS_HEADERS:
                out.append(_address_form(raw).casefold())
        return out

    def header_text(self) -> str:
        if self._header_text is None:
            self._header_text = "\n".join(f"{n}: {v}" for n, _, v in self.fields())
        return self._header_text

    def body_text(self) -> str:
        if self._body is None:
            body, headers = _body_text(self.raw)
            self._body, self._part_headers = body.casefold(), headers.casefold()
        return self._body

    def part_headers(self) -> str:
        """The decoded header fields of every MIME part below the top (TEXT searches
        them, as Dovecot does; BODY does not)."""
        self.body_text()
        assert self._part_headers is not None
        return self._part_headers

    def sent_day(self) -> _dt.date:
        """The Date: header's calendar date in its own zone; 1970-01-01 when missing or
        unparsable (as Dovecot: such mail is "sent before" any date)."""
        for name, raw, _ in self.fields():
            if name == "date":
                return _parse_day(_text(raw)) or _EPOCH
        return _EPOCH


def _header_block(raw: bytes) -> bytes:
    if raw.startswith((b"\r\n", b"\n")):
        return b""
    m = _HEADER_END.search(raw)
    return raw if m is None else raw[: m.start()]


def _header_fields(raw: bytes) -> list[tuple[str, bytes]]:
    """``(lower-case name, unfolded value)`` of each top-level header field."""
    fields: list[tuple[str, list[bytes]]] = []
    current: list[bytes] | None = None
    for line in _header_block(raw).split(b"\n"):
        line = line.rstrip(b"\r")
        if line[:1] in (b" ", b"\t"):
            if current is not None:
                current.append(line)
            continue
        name, colon, value = line.partition(b":")
        name = name.strip(b" \t")
        if not colon or not name or b" " in name:
            current = None
            continue
        current = [value]
        fields.append((name.decode("latin-1").lower(), current))
    return [(name, b"".join(parts).strip(b" \t")) for name, parts in fields]


def _text(data: bytes, charset: str | None = None) -> str:
    """Decode with ``charset`` if usable, else UTF-8, else Latin-1; never raises."""
    if charset:
        try:
            return data.decode(charset.strip().strip('"'), "replace")
        except (LookupError, ValueError, TypeError):
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _decode_header(raw: bytes) -> str:
    """An unfolded header value with RFC 2047 encoded words decoded.

    Whitespace between adjacent encoded words is dropped and consecutive words in the
    same charset are decoded together (multi-byte characters may span words).
    """
    value = _text(raw)
    if "=?" not in value:
        return value
    pieces: list[str | tuple[str, bytes]] = []
    pos = 0
    for m in _ENCODED_WORD.finditer(value):
        gap = value[pos : m.start()]
        after_word = bool(pieces) and isinstance(pieces[-1], tuple)
        if gap and not (after_word and not gap.strip(" \t")):
            pieces.append(gap)
        pos = m.end()
        word = _word_bytes(m.group(2), m.group(3))
        if word is None:
            pieces.append(m.group(0))
            continue
        charset = m.group(1).split("*", 1)[0].lower()
        last = pieces[-1] if pieces else None
        if isinstance(last, tuple) and last[0] == charset:
            pieces[-1] = (charset, last[1] + word)
        else:
            pieces.append((charset, word))
    pieces.append(value[pos:])
    return "".join(p if isinstance(p, str) else _text(p[1], p[0]) for p in pieces)


def _word_bytes(encoding: str, text: str) -> bytes | None:
    data = text.encode("utf-8", "surrogateescape")
    try:
        if encoding in "bB":
            return base64.b64decode(data + b"=" * (-len(data) % 4))
        return binascii.a2b_qp(data, header=True)
    except (binascii.Error, ValueError):
        return None


def _address_form(raw: bytes) -> str:
    """``Display Name <addr>`` for each address of an address header, comma-joined."""
    try:
        pairs = email.utils.getaddresses([_text(raw)])
    except Exception:  # malformed addresses must not break SEARCH
        return ""
    out = []
    for name, addr in pairs:
        name = _decode_header(name.encode("utf-8", "surrogateescape"))
        out.append(f"{name} <{addr}>" if name else addr)
    return ", ".join(out)


def _parse_day(value: str) -> _dt.date | None:
    try:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        return _dt.date(parsed[0], parsed[1], parsed[2])
    except Exception:  # unparsable: the caller's fallback applies
        return None


def _without_junk_lines(raw: bytes) -> bytes:
    """Drop header lines that are not fields, so the body starts where Dovecot sees it.

    The ``email`` parser would take the first such line as the start of the body.
    """
    header = _header_block(raw)
    lines = header.split(b"\n")
    kept = [line for line in lines if _FIELD_LINE.match(line)]
    if len(kept) == len(lines):
        return raw
    return b"\n".join(kept) + raw[len(header) :]


def _body_text(raw: bytes) -> tuple[str, str]:
    """The decoded text of every ``text/*`` leaf part (nested messages included), and
    the decoded header fields of every part below the top."""
    try:
        msg = email.message_from_bytes(_without_junk_lines(raw), policy=compat32)
        texts: list[str] = []
        headers: list[str] = []
        for part in msg.walk():
            if part is not msg:
                headers += [f"{name}: {_decode_header(_raw_value(value))}"
                            for name, value in part.items()]
            if part.is_multipart() or part.get_content_maintype() != "text":
                continue  # non-text leaves; a multipart here lacks a usable boundary and
                # its whole body is preamble, which is no part's text (as in Dovecot)
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                texts.append(_text(payload, part.get_content_charset()))
        return "\n".join(texts), "\n".join(headers)
    except Exception:  # malformed mail falls back to the raw body
        m = _HEADER_END.search(raw)
        return _text(raw if m is None else raw[m.end() :]), ""


def _raw_value(value: object) -> bytes:
    """A header value of the ``email`` parser back as the bytes it was read from."""
    return str(value).encode("ascii", "surrogateescape")
