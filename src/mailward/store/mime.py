"""IMAP FETCH data items computed from raw message bytes (RFC 3501 §7.4.2, §6.4.5).

A small, tolerant MIME parser working on bytes so that offsets stay exact.
Broken input never raises; it degrades the way Dovecot does where known. It lives in the
store because the store keeps each message's ENVELOPE and BODYSTRUCTURE from delivery on
(:mod:`mailward.store.summary`); the IMAP server uses it for everything else.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from mailward.store.imap_values import NIL, human_string, imap_list, nstring

_TSPECIALS = set('()<>@,;:\\"/[]?= \t')
_ADDR_SPECIALS = set('()<>@,;:\\"[] \t')


def _s(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


# ---------------------------------------------------------------- header parsing


@dataclass
class _Field:
    name: str  # as written
    raw: bytes  # the whole field, folding and line ending included
    value: str  # unfolded (line breaks removed), blanks after the colon removed
    folded: str  # the same with its line breaks kept


def _parse_fields(header: bytes) -> list[_Field]:
    fields: list[_Field] = []
    chunks: list[list[bytes]] = []
    for line in header.splitlines(keepends=True):
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t") and chunks:
            chunks[-1].append(line)
        else:
            chunks.append([line])
    for chunk in chunks:
        raw = b"".join(chunk)
        colon = chunk[0].find(b":")
        if colon <= 0:
            continue
        name = _s(chunk[0][:colon]).strip()
        if not name or any(c in name for c in " \t"):
            continue
        # As Dovecot: white space after the colon goes, folds keep their leading blanks.
        folded = raw[colon + 1 :].lstrip(b" \t").rstrip(b"\r\n")
        fields.append(_Field(name, raw, _s(re.sub(rb"\r?\n", b"", folded)), _s(folded)))
    return fields


def _get(fields: list[_Field], name: str, *, folded: bool = False) -> str | None:
    lname = name.lower()
    for f in fields:
        if f.name.lower() == lname:
            return f.folded if folded else f.value
    return None


# ---------------------------------------------------------------- tokenizer


def _tokens(text: str, specials: set[str]) -> list[tuple[str, str]]:
    """Lex into ('atom'|'qs'|'comment'|'dlit'|'sp', value); never raises."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
        elif c == "(":
            depth, j, buf = 1, i + 1, []
            while j < n and depth:
                ch = text[j]
                if ch == "\\" and j + 1 < n:
                    buf.append(text[j + 1])
                    j += 2
                    continue
                depth += (ch == "(") - (ch == ")")
                if depth:
                    buf.append(ch)
                j += 1
            out.append(("comment", "".join(buf)))
            i = j
        elif c == '"':
            j, buf = i + 1, []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(text[j])
                j += 1
            out.append(("qs", "".join(buf)))
            i = j + 1
        elif c == "[" and specials is _ADDR_SPECIALS:
            j = text.find("]", i)
            j = n if j < 0 else j + 1
            out.append(("dlit", text[i:j]))
            i = j
        elif c in specials:
            out.append(("sp", c))
            i += 1
        else:
            j = i
            while j < n and text[j] not in specials and text[j] not in " \t\r\n":
                j += 1
            out.append(("atom", text[i:j]))
            i = j
    return out


def _parse_params(toks: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Parse ``; name=value`` pairs; RFC 2231 continuations are merged."""
    raw: list[tuple[str, str]] = []
    i = 0
    while i < len(toks):
        if (
            toks[i] == ("sp", ";")
            and i + 3 < len(toks)
            and toks[i + 1][0] == "atom"
            and toks[i + 2] == ("sp", "=")
            and toks[i + 3][0] in ("atom", "qs")
        ):
            raw.append((toks[i + 1][1], toks[i + 3][1]))
            i += 4
            continue
        i += 1
    out: list[tuple[str, str]] = []
    merged: dict[str, list[tuple[int, str, bool]]] = {}
    for name, value in raw:
        m = re.fullmatch(r"(.+?)\*(\d+)(\*?)", name)
        if m:
            key = m.group(1).lower()
            if key not in merged:
                merged[key] = []
                out.append((m.group(1), "\x00cont"))
            merged[key].append((int(m.group(2)), value, bool(m.group(3))))
        else:
            out.append((name, value))
    result: list[tuple[str, str]] = []
    for name, value in out:
        if value == "\x00cont":
            segs = sorted(merged[name.lower()], key=lambda s: s[0])
            ext = any(s[2] for s in segs)
            result.append((name + ("*" if ext else ""), "".join(s[1] for s in segs)))
        else:
            result.append((name, value))
    return result


# ---------------------------------------------------------------- MIME tree

#: Deepest nesting of multiparts and message/rfc822 parts parsed (Dovecot: 100); a part
#: this deep is served as a leaf, whatever its Content-Type.
MAX_DEPTH = 50
#: Most parts parsed in one message (as Dovecot); the rest of the multipart being split
#: when the cap is reached is served as one leaf part, and so is any part begun later.
MAX_PARTS = 10_000
_BLANK_LINE = re.compile(rb"\n\r?\n")


@dataclass(slots=True)
class _Part:
    """A part as offsets into the message: header ``buf[start:body_start]``, body
    ``buf[body_start:end]`` (no copies; parsing is linear in the message size)."""

    buf: bytes
    start: int
    body_start: int
    end: int
    fields: list[_Field]
    ctype: str
    csub: str
    params: list[tuple[str, str]]
    explicit_subtype: bool = True
    children: list[_Part] = field(default_factory=list)
    multipart: bool = False
    message: _Part | None = None

    @property
    def header(self) -> bytes:
        return self.buf[self.start:self.body_start]

    @property
    def body(self) -> bytes:
        return self.buf[self.body_start:self.end]

    @property
    def body_size(self) -> int:
        return self.end - self.body_start

    def body_lines(self) -> int:
        return self.buf.count(b"\n", self.body_start, self.end)


def _param(part: _Part, name: str) -> str | None:
    for k, v in part.params:
        if k.lower() == name:
            return v
    return None


def _header_end(buf: bytes, start: int, end: int) -> int:
    """Where the header of ``buf[start:end]`` ends: after its first empty line (which it
    keeps), at ``end`` if there is none."""
    if buf.startswith(b"\r\n", start, end):
        return start + 2
    if buf.startswith(b"\n", start, end):
        return start + 1
    m = _BLANK_LINE.search(buf, start, end)
    return end if m is None else m.end()


def _content_type(fields: list[_Field], default: tuple[str, str]
                  ) -> tuple[str, str, list[tuple[str, str]], bool]:
    ctype, csub = default
    ct = _get(fields, "Content-Type")
    if ct is not None:
        toks = [t for t in _tokens(ct, _TSPECIALS) if t[0] != "comment"]
        if (
            len(toks) >= 3
            and toks[0][0] == "atom"
            and toks[1] == ("sp", "/")
            and toks[2][0] == "atom"
        ):
            return toks[0][1], toks[2][1], _parse_params(toks[3:]), True
        if toks and toks[0][0] == "atom" and (len(toks) == 1 or toks[1] == ("sp", ";")):
            return toks[0][1], "", _parse_params(toks[1:]), False
    return ctype, csub, [], True


class _Parser:
    """One pass over a message: every part parsed once, bytes never copied but for headers.

    ``steps`` counts the parser's units of work (parts, delimiter matches, close-delimiter
    checks) so that tests can assert the work grows linearly with the message.
    """

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.parts = 0  # parts begun so far = pre-order index of the last one
        self.steps = 0
        # boundary -> pre-order indices of the multiparts using it (ascending)
        self.multiparts: dict[bytes, list[int]] = {}

    def parse(self, start: int, end: int, default: tuple[str, str] = ("text", "plain"),
              depth: int = 0) -> _Part:
        part = self._leaf(start, end, default)
        index = self.parts
        if depth >= MAX_DEPTH or self.parts >= MAX_PARTS:
            return part
        lt, lsub = part.ctype.lower(), part.csub.lower()
        if lt == "multipart":
            boundary = _param(part, "boundary")
            if boundary:
                part.multipart = True
                raw_boundary = boundary.encode("utf-8", "surrogateescape")
                self.multiparts.setdefault(raw_boundary, []).append(index)
                child_default = ("message", "rfc822") if lsub == "digest" else ("text", "plain")
                for cstart, cend, eol in self._split(part.body_start, end, raw_boundary):
                    if self.parts >= MAX_PARTS:  # the rest as one leaf
                        part.children.append(self._leaf(cstart, end, child_default))
                        break
                    first = self.parts + 1
                    child = self.parse(cstart, cend, child_default, depth + 1)
                    if eol and self._ends_in_close_delimiter(first, cstart, cend):
                        self._extend(child, cend, cend + eol)
                    part.children.append(child)
        elif lt == "message" and lsub == "rfc822":
            part.message = self.parse(part.body_start, end, ("text", "plain"), depth + 1)
        return part

    def _leaf(self, start: int, end: int, default: tuple[str, str]) -> _Part:
        """The part at ``buf[start:end]`` with its header read, its body not (yet)."""
        self.parts += 1
        self.steps += 1
        body_start = _header_end(self.buf, start, end)
        fields = _parse_fields(self.buf[start:body_start])
        ctype, csub, params, explicit = _content_type(fields, default)
        return _Part(self.buf, start, body_start, end, fields, ctype, csub, params, explicit)

    def _split(self, start: int, end: int, boundary: bytes) -> Iterator[tuple[int, int, int]]:
        """The body parts of ``buf[start:end]``: ``(start, end, length of the line end
        before the next delimiter)``; that line end belongs to the delimiter (RFC 2046
        §5.1.1). A delimiter is a line that begins with ``--boundary``."""
        buf = self.buf
        delim = b"--" + boundary
        part_start: int | None = None
        pos = start
        while True:
            at = buf.find(delim, pos, end)
            if at < 0:
                break
            self.steps += 1
            if at != start and buf[at - 1] != 0x0A:  # not at a line start
                pos = at + 1
                continue
            if part_start is not None:
                eol = (2 if at - part_start >= 2 and buf.startswith(b"\r\n", at - 2)
                       else 1 if at > part_start and buf[at - 1] == 0x0A else 0)
                yield part_start, at - eol, eol
            if buf.startswith(b"--", at + len(delim), end):
                return
            nl = buf.find(b"\n", at, end)
            pos = part_start = end if nl < 0 else nl + 1
        if part_start is not None:
            yield part_start, end, 0

    def _ends_in_close_delimiter(self, first: int, start: int, end: int) -> bool:
        """Whether ``buf[start:end]`` ends with the close delimiter of a multipart among
        the parts numbered ``first`` to ``self.parts`` (the part just parsed and its parts).

        Dovecot consumes that delimiter line with its line end, so the line end before the
        next outer delimiter stays in the part (sizes and BODY[n] bytes include it).
        """
        self.steps += 1
        line = self.buf.rfind(b"\n", start, end) + 1 or start
        if not self.buf.startswith(b"--", line, end):
            return False
        last = self.buf[line:end].rstrip(b" \t\r")
        if not (len(last) > 4 and last.endswith(b"--")):
            return False
        owners = self.multiparts.get(last[2:-2], ())
        i = bisect.bisect_left(owners, first)
        return i < len(owners) and owners[i] <= self.parts

    def _extend(self, part: _Part, old: int, new: int) -> None:
        """Move the end of ``part`` from ``old`` to ``new``, and with it every offset at
        ``old`` in the parts that end there too (its last, unclosed, parts)."""
        node: _Part | None = part
        while node is not None:
            self.steps += 1
            if node.start == old:
                node.start = new
            if node.body_start == old:
                node.body_start = new
                if node.start != new:  # a header without an empty line grew
                    node.fields = _parse_fields(node.header)
            node.end = new
            if node.multipart and node.children and node.children[-1].end == old:
                node = node.children[-1]
            elif node.message is not None and node.message.end == old:
                node = node.message
            else:
                node = None


def parse(data: bytes) -> _Part:
    """The MIME tree of a message (bounded by ``MAX_DEPTH`` and ``MAX_PARTS``)."""
    return _Parser(data).parse(0, len(data))


# ---------------------------------------------------------------- ENVELOPE


def _phrase(toks: list[tuple[str, str]]) -> str | None:
    words = [v for k, v in toks if k in ("atom", "qs")]
    return " ".join(words) if words else None


def _addr_spec(toks: list[tuple[str, str]]) -> tuple[str | None, str, str]:
    """(adl, mailbox, host) from the tokens of a route-addr or addr-spec."""
    adl = None
    if ("sp", ":") in toks:
        idx = toks.index(("sp", ":"))
        route = "".join(v for k, v in toks[:idx] if k != "comment")
        adl, toks = route or None, toks[idx + 1 :]
    toks = [t for t in toks if t[0] != "comment"]
    if ("sp", "@") in toks:
        idx = len(toks) - 1 - toks[::-1].index(("sp", "@"))
        local = "".join(v for _, v in toks[:idx])
        host = "".join(v for _, v in toks[idx + 1 :])
    else:
        local, host = "".join(v for _, v in toks), ""
    return adl, local, host


def _mailbox(toks: list[tuple[str, str]]) -> bytes | None:
    if not [t for t in toks if t[0] != "comment"]:
        return None
    comments = [v for k, v in toks if k == "comment"]
    if ("sp", "<") in toks:
        lt = toks.index(("sp", "<"))
        gt = toks.index(("sp", ">")) if ("sp", ">") in toks[lt:] else len(toks)
        name = _phrase(toks[:lt])
        adl, local, host = _addr_spec(toks[lt + 1 : gt])
    else:
        adl, local, host = _addr_spec(toks)
        name = None
    if name is None and comments:
        name = comments[-1]
    return imap_list([human_string(name), nstring(adl), nstring(local), nstring(host)])


def _addresses(value: str | None) -> bytes:
    if value is None:
        return NIL
    toks = _tokens(value, _ADDR_SPECIALS)
    out: list[bytes] = []
    cur: list[tuple[str, str]] = []
    in_group = False
    in_angle = False
    for tok in [*toks, ("sp", ",")]:
        if tok == ("sp", "<"):
            in_angle = True
        elif tok == ("sp", ">"):
            in_angle = False
        if tok == ("sp", ":") and not in_group and not in_angle and ("sp", "<") not in cur:
            out.append(imap_list([NIL, NIL, nstring(_phrase(cur) or ""), NIL]))
            in_group, cur = True, []
        elif tok == ("sp", ";") and in_group and not in_angle:
            mb = _mailbox(cur)
            if mb is not None:
                out.append(mb)
            out.append(imap_list([NIL, NIL, NIL, NIL]))
            in_group, cur = False, []
        elif tok == ("sp", ",") and not in_angle:
            mb = _mailbox(cur)
            if mb is not None:
                out.append(mb)
            cur = []
        else:
            cur.append(tok)
    if in_group:
        out.append(imap_list([NIL, NIL, NIL, NIL]))
    return b"(" + b"".join(out) + b")" if out else NIL


def _envelope(fields: list[_Field]) -> bytes:
    frm = _addresses(_get(fields, "From"))
    sender = _addresses(_get(fields, "Sender"))
    reply_to = _addresses(_get(fields, "Reply-To"))
    return imap_list(
        [
            nstring(_get(fields, "Date")),
            human_string(_get(fields, "Subject", folded=True)),
            frm,
            frm if sender == NIL else sender,
            frm if reply_to == NIL else reply_to,
            _addresses(_get(fields, "To")),
            _addresses(_get(fields, "Cc")),
            _addresses(_get(fields, "Bcc")),
            nstring(_get(fields, "In-Reply-To")),
            nstring(_get(fields, "Message-ID")),
        ]
    )


def envelope(data: bytes) -> bytes:
    """The serialized ENVELOPE of a message (RFC 3501 §7.4.2)."""
    return _envelope(_parse_fields(data[:_header_end(data, 0, len(data))]))


# ---------------------------------------------------------------- BODYSTRUCTURE

_EMPTY_BODY = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0'


def _plist(params: list[tuple[str, str]]) -> bytes:
    if not params:
        return NIL
    return imap_list([x for k, v in params for x in (nstring(k), nstring(v))])


def _ext(part: _Part) -> list[bytes]:
    disp = _get(part.fields, "Content-Disposition")
    dval = NIL
    if disp is not None:
        toks = [t for t in _tokens(disp, _TSPECIALS) if t[0] != "comment"]
        if toks and toks[0][0] == "atom":
            dval = imap_list([nstring(toks[0][1]), _plist(_parse_params(toks[1:]))])
    lang = _get(part.fields, "Content-Language")
    lval = NIL
    if lang is not None:
        tags = [v for k, v in _tokens(lang, _TSPECIALS) if k == "atom"]
        lval = imap_list([nstring(t) for t in tags]) if tags else NIL
    return [dval, lval, nstring(_get(part.fields, "Content-Location"))]


def _body(part: _Part, ext: bool) -> bytes:
    if part.multipart:
        kids = b"".join(_body(c, ext) for c in part.children)
        if not part.children:
            kids = _EMPTY_BODY + (b" NIL NIL NIL NIL)" if ext else b")")
        items = [kids + b" " + nstring(part.csub or "x-unknown")]
        if ext:
            items += [_plist(part.params), *_ext(part)]
        return b"(" + b" ".join(items) + b")"
    is_text = part.ctype.lower() == "text"
    csub = part.csub if part.explicit_subtype else ("plain" if is_text else "unknown")
    params = list(part.params)
    if is_text and _param(part, "charset") is None:
        params.append(("charset", "us-ascii"))
    cte = _get(part.fields, "Content-Transfer-Encoding")
    cte_toks = [t for t in _tokens(cte or "", _TSPECIALS) if t[0] != "comment"]
    cte_tok = cte_toks[0][1] if cte_toks and cte_toks[0][0] == "atom" else "7bit"
    items = [
        nstring(part.ctype),
        nstring(csub),
        _plist(params),
        nstring(_get(part.fields, "Content-ID")),
        nstring(_get(part.fields, "Content-Description")),
        nstring(cte_tok),
        b"%d" % part.body_size,
    ]
    if part.message is not None:
        items += [_envelope(part.message.fields), _body(part.message, ext)]
    if is_text or part.message is not None:
        items.append(b"%d" % part.body_lines())
    if ext:
        items += [nstring(_get(part.fields, "Content-MD5")), *_ext(part)]
    return b"(" + b" ".join(items) + b")"


def bodystructure(data: bytes, *, extensible: bool = True) -> bytes:
    """BODYSTRUCTURE (``extensible=True``) or BODY (``False``) of a message."""
    return _body(parse(data), extensible)


# ---------------------------------------------------------------- BODY[section]

_KIND = r"(HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT|MIME)"
_SECTION = re.compile(
    rf"^(?:([0-9]+(?:\.[0-9]+)*)(?:\.{_KIND})?|{_KIND})?\s*(?:\((.*)\))?$",
    re.IGNORECASE | re.DOTALL,
)


def _resolve(root: _Part, nums: list[int]) -> _Part | None:
    """The part a section number names, as Dovecot walks it: in a multipart ``n`` is
    the n-th child; a non-multipart part is its own part 1, and only a message/rfc822
    part may be followed by further numbers (which then walk its message)."""
    cur = root
    for i, n in enumerate(nums):
        last = i == len(nums) - 1
        if cur.multipart:
            if not 1 <= n <= len(cur.children):
                return None
            cur = cur.children[n - 1]
        elif n != 1 or (not last and cur.message is None):
            return None
        if not last and cur.message is not None:
            cur = cur.message
    return cur


def _header_fields(msg: _Part, names: list[str], negate: bool) -> bytes:
    wanted = {n.lower() for n in names}
    out = [f.raw for f in msg.fields if (f.name.lower() in wanted) != negate]
    return b"".join(out) + b"\r\n"


def section(data: bytes, spec: str, root: _Part | None = None) -> bytes:
    """Bytes of ``BODY[spec]`` (RFC 3501 §6.4.5); unknown/missing parts give b''.

    ``root`` is ``parse(data)`` when the caller has it already.
    """
    m = _SECTION.match(spec.strip())
    if m is None:
        return b""
    nums_s, kind1, kind2, names_s = m.groups()
    kind = (kind1 or kind2 or "").upper()
    if kind == "MIME" and not nums_s:
        return b""
    if spec.strip() and not nums_s and not kind:
        return b""
    if (names_s is not None) != kind.startswith("HEADER.FIELDS"):
        return b""
    if root is None:
        root = parse(data)
    if not nums_s:
        if not kind:
            return data
        msg: _Part | None = root
    else:
        try:
            nums = [int(x) for x in nums_s.split(".")]
        except ValueError:
            return b""
        part = _resolve(root, nums)
        if part is None:
            return b""
        if not kind:
            return part.body
        if kind == "MIME":
            return part.header
        msg = part.message
    if msg is None or kind == "MIME":
        return b""
    if kind == "HEADER":
        return msg.header
    if kind == "TEXT":
        return msg.body
    names = [v for k, v in _tokens(names_s or "", set()) if k in ("atom", "qs")]
    return _header_fields(msg, names, kind.endswith(".NOT"))


MAX_REFERENCES = 4096
"""Kept of a References field for threading (the newest IDs are the ones at its end)."""


class Message:
    """A message parsed once, for any number of FETCH items."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._root: _Part | None = None

    @property
    def root(self) -> _Part:
        """The MIME tree, parsed when an item first needs it."""
        if self._root is None:
            self._root = parse(self.data)
        return self._root

    def envelope(self) -> bytes:
        """From the header alone unless the tree is parsed already (a listing's ENVELOPE
        reads no body)."""
        return _envelope(self._root.fields) if self._root is not None else envelope(self.data)

    def bodystructure(self, *, extensible: bool = True) -> bytes:
        return _body(self.root, extensible)

    def references(self) -> bytes:
        """The References field's value (unfolded, at most ``MAX_REFERENCES`` bytes)."""
        raw = _header_fields(self.root, ["references"], False)
        value = raw.partition(b":")[2] if b":" in raw else b""
        return b" ".join(value.split())[:MAX_REFERENCES]

    def section(self, spec: str) -> bytes:
        if not spec.strip():  # BODY[]: the message as it is
            return self.data
        return section(self.data, spec, self.root)
