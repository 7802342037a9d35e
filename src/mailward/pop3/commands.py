"""POP3 wire grammar: command lines in, response bytes out. Pure, no I/O.

Limits follow RFC 2449: a command line is at most 255 octets including CRLF.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_LINE = 255  # octets, CRLF included (RFC 2449 §4)
MAX_NUMBER_DIGITS = 10
CRLF = b"\r\n"
TERMINATOR = b".\r\n"


class CommandError(ValueError):
    """A malformed command line; ``str(error)`` is the text for ``-ERR``."""


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed command: upper-case ``verb``, its ``args`` and the raw ``rest`` after it."""

    verb: str
    args: tuple[str, ...]
    rest: str


def parse_command(line: bytes) -> Command:
    """Parse one command line (with or without its CRLF / LF)."""
    if len(line) > MAX_LINE:
        raise CommandError("Line too long")
    if line.endswith(b"\n"):
        line = line[:-1]
    if line.endswith(b"\r"):
        line = line[:-1]
    if b"\r" in line or b"\n" in line or b"\0" in line:
        raise CommandError("Invalid characters in command")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError("Command is not valid UTF-8") from None
    verb, sep, rest = text.partition(" ")
    if not (3 <= len(verb) <= 4 and verb.isascii() and verb.isalpha()):
        raise CommandError("Unknown command")
    args = tuple(rest.split(" ")) if sep else ()
    if any(not a for a in args):
        raise CommandError("Empty argument")
    return Command(verb.upper(), args, rest)


def parse_number(arg: str) -> int | None:
    """A positive decimal number (message number or line count); ``None`` if malformed."""
    if not arg.isascii() or not arg.isdigit() or len(arg) > MAX_NUMBER_DIGITS:
        return None
    return int(arg)


def ok(text: str = "") -> bytes:
    return (f"+OK {text}" if text else "+OK").encode() + CRLF


def err(text: str, code: str | None = None) -> bytes:
    prefix = f"[{code}] " if code else ""
    return f"-ERR {prefix}{text}".encode() + CRLF


def multiline(first: bytes, lines: list[str]) -> bytes:
    """A ``+OK`` line followed by ``lines`` (dot-stuffed) and the terminator."""
    return first + b"".join(_stuff(line.encode()) for line in lines) + TERMINATOR


def _stuff(line: bytes) -> bytes:
    return (b"." + line if line.startswith(b".") else line) + CRLF


def _split_lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def message_body(data: bytes, body_lines: int | None = None) -> bytes:
    """``data`` dot-stuffed with CRLF line endings plus the terminator.

    With ``body_lines`` (TOP), only the header, the blank separator line and that many
    body lines are sent.
    """
    lines = _split_lines(data)
    if body_lines is not None:
        try:
            end = lines.index(b"") + 1
        except ValueError:
            end = len(lines)
        lines = lines[: end + body_lines]
    return b"".join(_stuff(line) for line in lines) + TERMINATOR


def capabilities(*, auth_allowed: bool, stls: bool, authorization: bool) -> list[str]:
    """The CAPA list (RFC 2449); no IMPLEMENTATION line, to not reveal the software."""
    caps = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
    if authorization:
        if auth_allowed:
            caps += ["USER", "SASL PLAIN"]
        if stls:
            caps.append("STLS")
    return caps
