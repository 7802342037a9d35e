"""The ManageSieve wire grammar (RFC 5804 section 4), without I/O.

A command is an atom followed by arguments: quoted strings, literals (``{n+}`` or, as
some clients send, ``{n}``, each followed by CRLF and ``n`` octets) and numbers. A line
ending in a literal marker continues after the literal's octets, so the session reads
lines with :func:`split_literal` and tokenises each piece with :func:`tokenize`; the
literal's octets become a :class:`Literal` token. Responses are built by :func:`response`
and :func:`string`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_QUOTED = 1024  # octets in a quoted string (RFC 5804 section 4)
MAX_NUMBER = 4294967295

_LITERAL_AT_END = re.compile(rb"\{(\d{1,10})(\+?)\}\r?\n\Z")
_ATOM = re.compile(rb"[A-Za-z][A-Za-z0-9_-]*")
_NUMBER = re.compile(rb"\d+")


class ParseError(Exception):
    """The command is malformed; ``str(error)`` is the reason to answer with ``NO``."""


@dataclass(frozen=True, slots=True)
class Literal:
    """A literal argument's octets (decoded later: a script must be UTF-8)."""

    data: bytes

    def text(self) -> str:
        try:
            return self.data.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError("String is not valid UTF-8") from None


Token = str | int | Literal
"""An argument: a quoted string (``str``), a number (``int``) or a :class:`Literal`;
the first token of a command is its name (an atom, as ``str``)."""


def split_literal(line: bytes) -> tuple[bytes, int | None]:
    """``line`` without its line end and, if it ends in a literal marker, the literal's
    size (the marker removed)."""
    match = _LITERAL_AT_END.search(line)
    if match is None:
        return line.rstrip(b"\r\n"), None
    return line[: match.start()], int(match.group(1))


def tokenize(chunk: bytes, *, first: bool) -> list[Token]:
    """The tokens of one line piece (without line end or literal marker).

    ``first``: the piece starts the command, so it starts with the command name; a piece
    after a literal starts with a space or is empty.
    """
    tokens: list[Token] = []
    pos = 0
    if first:
        match = _ATOM.match(chunk)
        if match is None:
            raise ParseError("Expected a command name")
        tokens.append(match.group().decode("ascii").upper())
        pos = match.end()
    elif chunk and not chunk.startswith(b" "):
        raise ParseError("Expected a space after the literal")
    while pos < len(chunk):
        if chunk[pos : pos + 1] != b" ":
            raise ParseError("Expected a space between arguments")
        while chunk[pos : pos + 1] == b" ":
            pos += 1
        if pos == len(chunk):
            break
        head = chunk[pos : pos + 1]
        if head == b'"':
            value, pos = _quoted(chunk, pos)
            tokens.append(value)
        elif head.isdigit():
            match = _NUMBER.match(chunk, pos)
            assert match is not None
            number = int(match.group())
            if number > MAX_NUMBER:
                raise ParseError("Number too large")
            tokens.append(number)
            pos = match.end()
        elif head == b"{":
            raise ParseError("A literal must end its line")
        else:
            raise ParseError("Expected a string or a number")
    return tokens


def _quoted(chunk: bytes, start: int) -> tuple[str, int]:
    """The quoted string starting at ``chunk[start]`` (a quote) and the position after it."""
    out = bytearray()
    pos = start + 1
    while pos < len(chunk):
        char = chunk[pos]
        if char == 0x22:  # closing quote
            if len(out) > MAX_QUOTED:
                raise ParseError(f"Quoted string longer than {MAX_QUOTED} octets")
            try:
                return out.decode("utf-8"), pos + 1
            except UnicodeDecodeError:
                raise ParseError("String is not valid UTF-8") from None
        if char == 0x5C:  # backslash: only \" and \\ are allowed
            escaped = chunk[pos + 1 : pos + 2]
            if escaped not in (b'"', b"\\"):
                raise ParseError("Invalid escape in quoted string")
            out += escaped
            pos += 2
            continue
        if char in (0x00, 0x0A, 0x0D):
            raise ParseError("Invalid character in quoted string")
        out.append(char)
        pos += 1
    raise ParseError("Unterminated quoted string")


def string(text: str) -> bytes:
    """``text`` as a quoted string, or as a literal (``{n}`` CRLF octets) when it cannot
    be quoted (line breaks, NUL, over :data:`MAX_QUOTED` octets)."""
    data = text.encode("utf-8")
    if len(data) > MAX_QUOTED or any(c in data for c in (0x00, 0x0A, 0x0D)):
        return b"{%d}\r\n%s" % (len(data), data)
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def response(kind: str, text: str | None = None, code: str | None = None) -> bytes:
    """``OK``, ``NO`` or ``BYE`` with an optional response code and text, CRLF-ended."""
    out = kind.encode("ascii")
    if code is not None:
        out += b" (" + code.encode("utf-8") + b")"
    if text is not None:
        out += b" " + string(text)
    return out + b"\r\n"


def text_argument(token: Token) -> str:
    """A string argument's text (quoted or literal); a number is not a string."""
    if isinstance(token, Literal):
        return token.text()
    if isinstance(token, int):
        raise ParseError("Expected a string, not a number")
    return token
