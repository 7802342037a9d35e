"""IMAP FETCH data items computed from raw message bytes (RFC 3501 §7.4.2, §6.4.5).

A small, tolerant MIME parser working on bytes so that offsets stay exact.
Broken input never raises; it degrades the way Dovecot does where known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mailward.imap.respond import NIL, human_string, imap_list, nstring

_MAX_DEPTH = 50
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


def _split_header(data: bytes) -> tuple[bytes, bytes]:
    """Split at the first empty line; the header keeps the blank line."""
    if data.startswith(b"\r\n"):
        return data[:2], data[2:]
    if data.startswith(b"\n"):
        return data[:1], data[1:]
    pos = 0
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            return data, b""
        nxt = nl + 1
        if data.startswith(b"\r\n", nxt):
            return data[: nxt + 2], data[nxt + 2 :]
        if data.startswith(b"\n", nxt):
            return data[: nxt + 1], data[nxt + 1 :]
        pos = nxt


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


@dataclass
class _Part:
    header: bytes
    body: bytes
    fields: list[_Field]
    ctype: str
    csub: str
    params: list[tuple[str, str]]
    explicit_subtype: bool = True
    children: list[_Part] = field(default_factory=list)
    multipart: bool = False
    message: _Part | None = None


def _param(part: _Part, name: str) -> str | None:
    for k, v in part.params:
        if k.lower() == name:
            return v
    return None


def _parse(data: bytes, default: tuple[str, str] = ("text", "plain"), depth: int = 0) -> _Part:
    header, body = _split_header(data)
    fields = _parse_fields(header)
    ctype, csub = default
    params: list[tuple[str, str]] = []
    explicit_subtype = True
    ct = _get(fields, "Content-Type")
    if ct is not None:
        toks = [t for t in _tokens(ct, _TSPECIALS) if t[0] != "comment"]
        if (
            len(toks) >= 3
            and toks[0][0] == "atom"
            and toks[1] == ("sp", "/")
            and toks[2][0] == "atom"
        ):
            ctype, csub = toks[0][1], toks[2][1]
            params = _parse_params(toks[3:])
        elif toks and toks[0][0] == "atom" and (len(toks) == 1 or toks[1] == ("sp", ";")):
            ctype, csub, explicit_subtype = toks[0][1], "", False
            params = _parse_params(toks[1:])
    part = _Part(header, body, fields, ctype, csub, params, explicit_subtype)
    if depth >= _MAX_DEPTH:
        return part
    lt = ctype.lower()
    if lt == "multipart":
        boundary = _param(part, "boundary")
        if boundary:
            part.multipart = True
            child_default = ("message", "rfc822") if csub.lower() == "digest" else ("text", "plain")
            for chunk, eol in _split(body, boundary):
                child = _parse(chunk, child_default, depth + 1)
                if eol and _ends_in_close_delimiter(child, chunk):
                    child = _parse(chunk + eol, child_default, depth + 1)
                part.children.append(child)
    elif lt == "message" and csub.lower() == "rfc822":
        part.message = _parse(body, ("text", "plain"), depth + 1)
    return part


def _split(body: bytes, boundary: str) -> list[tuple[bytes, bytes]]:
    """The body parts between the delimiters: ``(content, line end before the next
    delimiter)``; that line end belongs to the delimiter (RFC 2046 §5.1.1)."""
    delim = b"--" + boundary.encode("utf-8", "surrogateescape")
    parts: list[tuple[bytes, bytes]] = []
    start: int | None = None  # start of current part's content
    pos = 0
    n = len(body)
    while pos < n:
        nl = body.find(b"\n", pos)
        end = n if nl < 0 else nl + 1
        if body.startswith(delim, pos):
            if start is not None:
                chunk = body[start:pos]
                eol = b"\r\n" if chunk.endswith(b"\r\n") else chunk[-1:] if chunk.endswith(
                    b"\n") else b""
                parts.append((chunk[: len(chunk) - len(eol)], eol))
            if body.startswith(b"--", pos + len(delim)):
                return parts
            start = end
        pos = end
    if start is not None:
        parts.append((body[start:], b""))
    return parts


def _boundaries(part: _Part) -> set[bytes]:
    """Boundaries of every multipart inside ``part`` (itself included)."""
    found: set[bytes] = set()
    if part.multipart:
        found.add((_param(part, "boundary") or "").encode("utf-8", "surrogateescape"))
    for child in part.children:
        found |= _boundaries(child)
    if part.message is not None:
        found |= _boundaries(part.message)
    return found


def _ends_in_close_delimiter(part: _Part, content: bytes) -> bool:
    """Whether ``content`` ends with the close delimiter of a multipart nested in it.

    Dovecot consumes that delimiter line with its line end, so the line end before the
    next outer delimiter stays in the part (sizes and BODY[n] bytes include it).
    """
    last = content.rsplit(b"\n", 1)[-1].rstrip(b" \t\r")
    return (len(last) > 4 and last.startswith(b"--") and last.endswith(b"--")
            and last[2:-2] in _boundaries(part))


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
    return _envelope(_parse_fields(_split_header(data)[0]))


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
        b"%d" % len(part.body),
    ]
    if part.message is not None:
        items += [_envelope(part.message.fields), _body(part.message, ext)]
    if is_text or part.message is not None:
        items.append(b"%d" % part.body.count(b"\n"))
    if ext:
        items += [nstring(_get(part.fields, "Content-MD5")), *_ext(part)]
    return b"(" + b" ".join(items) + b")"


def bodystructure(data: bytes, *, extensible: bool = True) -> bytes:
    """BODYSTRUCTURE (``extensible=True``) or BODY (``False``) of a message."""
    return _body(_parse(data), extensible)


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


def section(data: bytes, spec: str) -> bytes:
    """Bytes of ``BODY[spec]`` (RFC 3501 §6.4.5); unknown/missing parts give b''."""
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
    root = _parse(data)
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
