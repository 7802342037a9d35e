"""One bounded parse of a message, shared by every check of the filter.

The pipeline parses each message once (``parse``, off the event loop) and hands the result
to every check: features, rules, reputation, the judge's lists and learning. The parse is
the stdlib's (compat32: fast, lenient), fed in chunks and stopped early once it would read
more than ``Limits.max_parts`` MIME entities or nest deeper than ``Limits.max_depth``: the
parser attaches every new entity to its parent, and our message class refuses the attach
beyond the caps. What was read up to there stays the message; ``capped`` says which cap
stopped it (the pipeline turns that into a scored finding). Decoded text is capped too
(``Limits.max_text`` bytes over all text parts, in walk order), so no reader of the text
does more work than that, however the message is built.

Messages under the caps parse exactly as ``BytesParser(policy=compat32)`` parses them.

What reads only headers shares a ``HeaderIndex`` (the header block split once, in the form
dkimpy verifies from) instead of parsing again. ``PARSES`` counts every parse made here,
by kind: ``message`` (``parse``), ``headers`` (``parse_headers``), ``index``
(``HeaderIndex.of``); the MX path makes one ``message`` and one ``index`` per message.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import policy
from email.feedparser import FeedParser
from email.message import Message
from email.parser import Parser
from email.policy import Policy
from typing import Any

__all__ = ["PARSES", "HeaderIndex", "Limits", "ParsedMessage", "parse", "parse_headers",
           "parse_message"]

PARSES: Counter[str] = Counter()  # parses made in this process, by kind (see above)

CHUNK = 64 * 1024  # characters fed to the parser at a time (work stops within one chunk)


@dataclass(frozen=True, slots=True)
class Limits:
    """How much of a message the filter reads."""

    max_parts: int = 1000  # MIME entities, the message itself included
    max_depth: int = 20  # nesting levels (the message itself is level 1)
    max_text: int = 2 * 1024 * 1024  # decoded bytes of all text parts together


class _Capped(Exception):
    pass


class _Tracker:
    """Counts what one parse has read and builds its message objects."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.parts = 0
        self.capped = ""
        self.root: _Part | None = None
        self.armed = False  # FeedParser calls the factory once to probe its signature

    def new(self, policy: Any = policy.compat32) -> _Part:
        part = _Part(policy)
        part._tracker = self
        if self.armed and self.root is None:
            self.root, self.parts = part, 1
        return part


class _Read(Message):
    """A compat32 message that finds its fields faster: ``get``, ``get_all`` and ``in``
    look names up in a list of the lower-cased names, made once and made again when the
    fields change (``Message`` lower-cases every name on every lookup; a check reads
    dozens of fields of each part). What they return is ``Message``'s."""

    _names: tuple[list[tuple[str, str]], int, list[str]] | None = None

    def _lower(self) -> list[str]:
        fields = self._headers  # type: ignore[attr-defined]
        names = self._names
        # the list itself is kept: it cannot be freed and another take its id; Message
        # replaces it, or appends to it, or replaces a value in place under the same name
        if names is None or names[0] is not fields or names[1] != len(fields):
            names = self._names = (fields, len(fields), [k.lower() for k, _ in fields])
        return names[2]

    def get(self, name: str, failobj: Any = None) -> Any:
        try:
            k, v = self._headers[self._lower().index(name.lower())]  # type: ignore[attr-defined]
        except ValueError:
            return failobj
        return self.policy.header_fetch_parse(k, v)

    def get_all(self, name: str, failobj: Any = None) -> Any:
        name = name.lower()
        if name not in self._lower():
            return failobj
        fetch = self.policy.header_fetch_parse
        return [fetch(k, v) for (k, v), lower in zip(self._headers, self._lower(), strict=True)  # type: ignore[attr-defined]
                if lower == name]

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._lower()

    __getitem__ = get


class _Part(_Read):
    """A compat32 message whose parser cannot attach parts beyond the caps."""

    _tracker: _Tracker
    _depth = 1

    def attach(self, payload: Message | str) -> None:
        assert isinstance(payload, _Part)  # the parser attaches only parts it made with new()
        tracker = self._tracker
        if self._depth >= tracker.limits.max_depth:
            tracker.capped = "depth"
            raise _Capped
        if tracker.parts >= tracker.limits.max_parts:
            tracker.capped = "parts"
            raise _Capped
        tracker.parts += 1
        payload._depth = self._depth + 1
        super().attach(payload)


@dataclass(eq=False)
class ParsedMessage:
    """A message as the filter reads it: its parsed form (``root``, None when it could not
    be parsed at all), how many MIME entities were read, and which cap (if any) stopped the
    reading. Decoded text and derived values (features) are computed once and kept."""

    data: bytes
    root: Message | None
    parts: int = 0
    capped: str = ""  # "", "parts" or "depth"
    defects: bool = False  # the top-level entity's defects, as parsed (before decoding)
    limits: Limits = field(default_factory=Limits)
    memo: dict[str, Any] = field(default_factory=dict, repr=False)
    _texts: dict[int, bytes | None] | None = field(default=None, repr=False)

    @classmethod
    def unparsed(cls, data: bytes, limits: Limits | None = None) -> ParsedMessage:
        """A message that was not read (the time budget ran out first)."""
        return cls(data, None, limits=limits or Limits())

    def walk(self) -> Iterator[Message]:
        """Every entity read, depth first (nothing when the message was not parsed)."""
        if self.root is not None:
            yield from self.root.walk()

    def decoded(self, part: Message) -> bytes | None:
        """The decoded content of a text part (cut where the text cap is reached, empty
        past it), or of any other leaf part (not cached). None when it cannot be decoded."""
        if part.get_content_maintype() != "text":
            return _payload(part)
        texts = self._texts
        if texts is None:
            texts = self._texts = self._decode_texts()
        return texts.get(id(part))

    def _decode_texts(self) -> dict[int, bytes | None]:
        """Each text leaf's decoded bytes, in walk order, until ``max_text`` is used up."""
        texts: dict[int, bytes | None] = {}
        left = self.limits.max_text
        for part in self.walk():
            if part.is_multipart() or part.get_content_maintype() != "text":
                continue
            payload = _payload(part) if left > 0 else b""
            if payload is not None:
                payload = payload[:left]
                left -= len(payload)
            texts[id(part)] = payload
        return texts


_HEADERS = Parser(_Read, policy=policy.compat32)


def _payload(part: Message) -> bytes | None:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        return None
    return payload if isinstance(payload, bytes) else None


def parse(data: bytes, limits: Limits | None = None) -> ParsedMessage:
    """The message read within ``limits``; never raises (``root`` None: unparsable)."""
    PARSES["message"] += 1
    limits = limits or Limits()
    if data.startswith(b"From "):  # mbox separator line
        data = data.split(b"\n", 1)[1] if b"\n" in data else b""
    try:
        text = data.decode("ascii", "surrogateescape")  # as BytesParser does
        single = _single_part(text)
        if single is not None:
            return ParsedMessage(data, single, 1, "", bool(single.defects), limits)
        return _bounded(data, text, limits)
    except Exception:
        return ParsedMessage(data, None, limits=limits)


def _single_part(text: str) -> Message | None:
    """The message, when it is a single part (the usual case): the header block is parsed
    alone and the rest becomes the payload, without the parser's per-line work. None for
    multipart and message/* types, and for a header block the parser would end elsewhere."""
    end = _header_end(text)
    if end > 0:
        msg = _plain_headers(text[:end]) or _HEADERS.parsestr(text[:end])
        if msg.get_payload() == "" and msg.get_content_maintype() not in (
                "multipart", "message"):
            msg.set_payload(text[end:])
            return msg
    return None


_HEADER_LINE = re.compile(r"(?:[\041-\071\073-\176]*:|[\t ])")  # as feedparser's headerRE
_TAKE_PARSER = re.compile(r"\r(?!\n)|\nFrom |\n:").search


def _plain_headers(block: str) -> Message | None:
    """The header block ``block`` (its blank line included) as ``Parser(policy=compat32)``
    reads it, made without the parser's per-line machinery; None for a block the parser
    would read with a defect or otherwise not plainly (a lone CR, a line that is no field,
    a first line that continues nothing, a misplaced mbox ``From `` line): the caller
    parses those with the stdlib."""
    if _TAKE_PARSER(block) is not None or block[0] in " \t:":
        return None
    lines = block.split("\n")
    lines.pop()  # "" after the blank line's newline
    lines.pop()  # the blank line ("" or "\r")
    unixfrom = None
    if lines[0].startswith("From "):
        unixfrom = lines.pop(0).removesuffix("\r")
        if not lines or lines[0][:1] in (" ", "\t", ":") or lines[0].startswith("From "):
            return None
    match = _HEADER_LINE.match
    headers: list[tuple[str, str]] = []
    for line in lines:
        if match(line) is None:
            return None
        if line[0] in " \t":  # folded: the line ends come back, as the parser keeps them
            name, value = headers[-1]
            headers[-1] = (name, value + "\n" + line)
        else:
            name, _, value = line.partition(":")
            headers.append((name, value.lstrip(" \t")))
    msg = _Read(policy.compat32)
    msg._headers = [  # type: ignore[attr-defined]
        (name, value.rstrip("\r\n")) for name, value in headers]
    msg.set_payload("")
    if unixfrom is not None:
        msg.set_unixfrom(unixfrom)
    return msg


def _bounded(data: bytes, text: str, limits: Limits) -> ParsedMessage:
    tracker = _Tracker(limits)
    parser = FeedParser(tracker.new, policy=policy.compat32)
    tracker.armed = True
    try:
        for start in range(0, len(text), CHUNK):
            parser.feed(text[start:start + CHUNK])
        root: Message = parser.close()
    except _Capped:  # the parser is done for; what it attached so far is the message
        assert tracker.root is not None
        root = tracker.root
        _settle(root)
    return ParsedMessage(data, root, tracker.parts, tracker.capped, bool(root.defects), limits)


def _settle(root: Message) -> None:
    """Give every entity the parse left without a payload (it stopped inside) an empty one."""
    stack = [root]
    while stack:
        part = stack.pop()
        payload = part._payload  # type: ignore[attr-defined]
        if payload is None:
            part.set_payload("")
        elif isinstance(payload, list):
            stack.extend(payload)


def _header_end(text: str) -> int:
    """Index just past the first blank line ending the header block (0 if none is found)."""
    lf = text.find("\n\n")
    crlf = text.find("\r\n\r\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf + 4
    return lf + 2 if lf >= 0 else 0


def parse_message(data: bytes) -> Message | None:
    """The message (compat32: fast, lenient; default limits), or None when it cannot be
    parsed at all."""
    return parse(data).root


def parse_headers(data: bytes) -> Message | None:
    """The header block alone (the body is not read): for what only needs headers."""
    PARSES["headers"] += 1
    if data.startswith(b"From "):
        data = data.split(b"\n", 1)[1] if b"\n" in data else b""
    try:
        text = data.decode("ascii", "surrogateescape")
        end = _header_end(text)
        return _HEADERS.parsestr(text[:end] if end else text, headersonly=True)
    except Exception:
        return None


# -- the header index ---------------------------------------------------------------------

_FIELD_NAME = re.compile(rb"([\x21-\x7e]+?):")  # as dkimpy's rfc822_parse reads a field


class HeaderIndex:
    """A message's header block split once into its fields, for what reads headers only
    (SPF/DKIM/DMARC/ARC, the MX's own Authentication-Results, the quarantine's From and
    Subject): made once per message at the end of DATA and passed along.

    ``fields`` are ``[name, raw value]`` byte pairs exactly as dkimpy's ``rfc822_parse``
    makes them (the value with its folding, each line ending CRLF; mbox ``From `` lines
    skipped), so dkimpy verifies from them without splitting the message again; ``spans``
    are each field's bytes in ``data``. A line that is neither a field nor a continuation
    ends the block there (as the email package reads it) and sets ``malformed`` (dkimpy
    refuses such a message). Values are read as the email package reads them: ``get_all``
    gives what ``Message.get_all`` gives under that policy (a folded value's line ends are
    CRLF, as on the MX path, where a message has no other)."""

    __slots__ = ("_body", "body_start", "data", "fields", "malformed", "spans")

    def __init__(self, data: bytes, fields: list[list[bytes]], spans: list[tuple[int, int]],
                 body_start: int, malformed: bool) -> None:
        self.data = data
        self.fields = fields
        self.spans = spans
        self.body_start = body_start
        self.malformed = malformed
        self._body: bytes | None = None

    @classmethod
    def of(cls, data: bytes) -> HeaderIndex:
        """Split the header block of ``data`` (the body is not read)."""
        PARSES["index"] += 1
        fields: list[list[bytes]] = []
        spans: list[tuple[int, int]] = []
        pos, size, malformed = 0, len(data), False
        body_start = size
        while pos < size:
            newline = data.find(b"\n", pos)
            end = size if newline < 0 else newline + 1
            stop = newline - (newline > pos and data[newline - 1] == 13) if newline >= 0 \
                else size
            line = data[pos:stop]
            if not line:  # the blank line: the body follows
                body_start = end
                break
            if line[0] in (9, 32):  # a continuation of the field before
                if not fields:
                    malformed, body_start = True, pos
                    break
                fields[-1][1] += line + b"\r\n"
                spans[-1] = (spans[-1][0], end)
            elif (found := _FIELD_NAME.match(line)) is not None:
                fields.append([found.group(1), line[found.end():] + b"\r\n"])
                spans.append((pos, end))
            elif not line.startswith(b"From "):  # mbox separators are skipped
                malformed, body_start = True, pos
                break
            pos = end
        return cls(data, fields, spans, body_start, malformed)

    def body(self) -> bytes:
        """The body with CRLF line ends (as dkimpy's ``rfc822_parse`` gives it)."""
        if self._body is None:
            rest = self.data[self.body_start:]
            if rest.count(b"\n") != rest.count(b"\r\n"):
                rest = re.sub(rb"\r?\n", b"\r\n", rest)
            self._body = rest
        return self._body

    def dkim_headers(self) -> list[list[bytes]]:
        """The fields for a dkimpy verifier (a new list of new pairs: it may reorder)."""
        return [[name, value] for name, value in self.fields]

    def count(self, name: str) -> int:
        """How many fields are called ``name`` (any case)."""
        wanted = name.lower().encode("ascii")
        return sum(1 for field_name, _ in self.fields if field_name.lower() == wanted)

    def get_all(self, name: str, policy: Policy = policy.compat32) -> list[Any]:
        """The values of the fields called ``name``, as ``Message.get_all`` gives them."""
        wanted = name.lower().encode("ascii")
        return [policy.header_fetch_parse(
                    field_name.decode("ascii", "surrogateescape"),
                    value.decode("ascii", "surrogateescape").lstrip(" \t").rstrip("\r\n"))
                for field_name, value in self.fields if field_name.lower() == wanted]

    def text(self, name: str) -> str:
        """The first ``name`` field decoded (RFC 2047, the default policy), whitespace
        collapsed; "" when there is none or it cannot be read."""
        try:
            values = self.get_all(name, policy.default)
        except Exception:  # malformed header: listings show nothing rather than fail
            return ""
        return " ".join(str(values[0]).split()) if values else ""

    def without(self, drop: Callable[[bytes, bytes], bool]) -> bytes:
        """``data`` without the fields ``drop(name, value)`` is true of."""
        kept, at = [], 0
        for (name, value), (start, end) in zip(self.fields, self.spans, strict=True):
            if drop(name, value):
                kept.append(self.data[at:start])
                at = end
        return b"".join(kept) + self.data[at:] if kept else self.data
