"""FETCH attributes (RFC 3501 §6.4.5, §9 ``fetch-att`` and ``section``)."""

from __future__ import annotations

from dataclasses import dataclass

from .core import MAX_ITEMS, Reader

__all__ = ["FetchAtt", "Section", "parse_fetch_atts"]

_SIMPLE = frozenset(
    {
        "ENVELOPE",
        "FLAGS",
        "INTERNALDATE",
        "RFC822",
        "RFC822.HEADER",
        "RFC822.SIZE",
        "RFC822.TEXT",
        "BODYSTRUCTURE",
        "UID",
        "MODSEQ",
    }
)
_TOKEN_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.")
_SECTION_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.")


@dataclass(frozen=True, slots=True)
class Section:
    """``section-spec``: ``BODY[1.2.HEADER.FIELDS (From To)]`` is
    ``Section(part=(1, 2), text="HEADER.FIELDS", fields=("From", "To"))``.

    ``part`` is empty for the top-level message; ``text`` is ``None`` (whole part),
    ``"HEADER"``, ``"HEADER.FIELDS"``, ``"HEADER.FIELDS.NOT"``, ``"TEXT"`` or ``"MIME"``
    (MIME only with a part). ``fields`` keep the client's spelling; compare them
    case-insensitively.
    """

    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        parts = [str(n) for n in self.part]
        if self.text:
            parts.append(self.text)
        spec = ".".join(parts)
        if self.fields:
            spec += " (" + " ".join(self.fields) + ")"
        return spec


@dataclass(frozen=True, slots=True)
class FetchAtt:
    """One fetch attribute.

    ``name`` is one of ENVELOPE, FLAGS, INTERNALDATE, RFC822, RFC822.HEADER,
    RFC822.SIZE, RFC822.TEXT, BODY, BODYSTRUCTURE, UID, MODSEQ (RFC 7162). ``BODY`` with ``section``
    ``None`` is the non-extensible BODYSTRUCTURE; with a section it is ``BODY[...]``
    (``peek`` for ``BODY.PEEK[...]``), ``partial`` the optional ``(start, count)``.
    """

    name: str
    section: Section | None = None
    partial: tuple[int, int] | None = None
    peek: bool = False

    def __str__(self) -> str:
        if self.section is None:
            return self.name
        out = f"{'BODY.PEEK' if self.peek else self.name}[{self.section}]"
        if self.partial:
            out += f"<{self.partial[0]}.{self.partial[1]}>"
        return out


_FAST = (FetchAtt("FLAGS"), FetchAtt("INTERNALDATE"), FetchAtt("RFC822.SIZE"))
_ALL = (*_FAST, FetchAtt("ENVELOPE"))
MACROS = {"FAST": _FAST, "ALL": _ALL, "FULL": (*_ALL, FetchAtt("BODY"))}


def parse_fetch_atts(r: Reader) -> tuple[FetchAtt, ...]:
    """``"ALL" / "FULL" / "FAST" / fetch-att / "(" fetch-att *(SP fetch-att) ")"``.

    Macros are expanded; duplicates are kept (the response may simply repeat).
    """
    if r.maybe(b"("):
        items = [_att(r)]
        while not r.maybe(b")"):
            r.sp()
            items.append(_att(r))
            if len(items) > MAX_ITEMS:
                raise r.error("too many fetch attributes")
        return tuple(items)
    start = r.pos
    token = r.take(_TOKEN_CHARS).upper().decode("ascii")
    if token in MACROS and r.peek() != 0x5B:
        return MACROS[token]
    r.pos = start
    return (_att(r),)


def _att(r: Reader) -> FetchAtt:
    token = r.take(_TOKEN_CHARS).upper().decode("ascii")
    if not token:
        raise r.error("expected fetch attribute")
    if r.peek() == 0x5B:  # "["
        if token not in ("BODY", "BODY.PEEK"):
            raise r.error(f"unexpected section after {token[:40]}")
        section = _section(r)
        partial = None
        if r.maybe(b"<"):
            start = r.number()
            r.expect(b".", "'.' in partial")
            count = r.number(nonzero=True)
            r.expect(b">", "'>' closing partial")
            partial = (start, count)
        return FetchAtt("BODY", section=section, partial=partial, peek=token == "BODY.PEEK")
    if token in _SIMPLE or token == "BODY":
        return FetchAtt(token)
    raise r.error(f"unknown fetch attribute {token[:40]}")


def _section(r: Reader) -> Section:
    r.expect(b"[")
    part: list[int] = []
    text: str | None = None
    fields: tuple[str, ...] = ()
    while r.peek() is not None and 0x30 <= r.peek() <= 0x39:  # type: ignore[operator]
        part.append(r.number(nonzero=True))
        if len(part) > MAX_ITEMS:
            raise r.error("section part too deep")
        if not r.maybe(b"."):
            break
    else:
        if r.peek() != 0x5D:
            text = r.take(_SECTION_CHARS).upper().decode("ascii")
            if text not in ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"):
                raise r.error("invalid section")
            if text == "MIME" and not part:
                raise r.error("MIME requires a part number")
            if text.startswith("HEADER.FIELDS"):
                r.sp()
                fields = _header_list(r)
    if part and text is None and r.data[r.pos - 1] == 0x2E:  # trailing "."
        raise r.error("invalid section")
    r.expect(b"]", "']' closing section")
    return Section(tuple(part), text, fields)


def _header_list(r: Reader) -> tuple[str, ...]:
    r.expect(b"(", "header list")
    names = [r.text(r.astring("header field name"), "header field name")]
    while not r.maybe(b")"):
        r.sp()
        names.append(r.text(r.astring("header field name"), "header field name"))
        if len(names) > MAX_ITEMS:
            raise r.error("too many header fields")
    return tuple(names)
