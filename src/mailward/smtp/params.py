"""The MAIL/RCPT argument grammar: paths (RFC 5321 §4.1.2, RFC 6531) and ESMTP parameters.

Pure functions, no I/O. Errors carry the reply the listener should send.
Parameters handled: SIZE (RFC 1870), BODY (RFC 6152), SMTPUTF8 (RFC 6531),
RET/ENVID/NOTIFY/ORCPT (RFC 3461), AUTH (RFC 4954).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from mailward.smtp.types import Reply

MAX_PATH_OCTETS = 256  # RFC 5321 §4.5.3.1.3, including the angle brackets
MAX_ENVID = 100  # RFC 3461 §4.4
MAX_ORCPT = 500  # RFC 3461 §4.2
DSN_NOTIFY = ("SUCCESS", "FAILURE", "DELAY")

_U = "\u0080-\U0010ffff"  # UTF8-non-ascii (RFC 6531 §3.3)
_ATOM = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~\\-" + _U + "]+"
_DOT_STRING = f"{_ATOM}(?:\\.{_ATOM})*"
_QUOTED = '"(?:[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e' + _U + ']|\\\\[\\x20-\\x7e])*"'
_LABEL = f"[A-Za-z0-9{_U}](?:[A-Za-z0-9\\-{_U}]*[A-Za-z0-9{_U}])?"
_DOMAIN = f"{_LABEL}(?:\\.{_LABEL})*"
_LITERAL = "\\[[\\x21-\\x5a\\x5e-\\x7e]+\\]"
_MAILBOX = re.compile(f"(?:{_DOT_STRING}|{_QUOTED})@(?:{_DOMAIN}|{_LITERAL})")
_ADL = re.compile(f"@(?:{_DOMAIN}|{_LITERAL})(?:,@(?:{_DOMAIN}|{_LITERAL}))*:")
_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]*")
_VALUE = re.compile(f"[\\x21-\\x3c\\x3e-\\x7e{_U}]+")
_XTEXT = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-Fa-f]{2})*")
_ADDR_TYPE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]+")
_UNI_ESCAPE = re.compile(r"\\x\{([0-9A-Fa-f]{1,6})\}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ParamError(ValueError):
    """A MAIL/RCPT argument was refused; ``reply`` is what to answer."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(str(reply))
        self.reply = reply


@dataclass(frozen=True, slots=True)
class MailParams:
    """Parameters of MAIL FROM, validated and decoded."""

    size: int | None = None
    body: str | None = None  # "7BIT" | "8BITMIME"
    smtputf8: bool = False
    ret: str | None = None  # "FULL" | "HDRS"
    envid: str | None = None  # xtext-decoded
    auth: str | None = None  # xtext-decoded AUTH= value; untrusted (RFC 4954 §5)


@dataclass(frozen=True, slots=True)
class RcptParams:
    """Parameters of RCPT TO, validated and decoded."""

    notify: tuple[str, ...] = ()
    orcpt: str | None = None  # "addr-type;decoded-address"


def _bad(text: str, status: str = "5.5.4", code: int = 501) -> ParamError:
    return ParamError(Reply(code, status, text))


def split_path(arg: str) -> tuple[str, str]:
    """Split ``<path> params`` into the text inside the brackets and the parameter text.

    Brackets are optional (lenient, like most MTAs). Raises ``ValueError`` on bad syntax.
    """
    arg = arg.lstrip(" ")
    if not arg.startswith("<"):
        path, _, rest = arg.partition(" ")
        if not path or "<" in path or ">" in path:
            raise ValueError("bad path")
        return path, rest
    quoted = escaped = False
    for i in range(1, len(arg)):
        ch = arg[i]
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ">" and not quoted:
            rest = arg[i + 1 :]
            if rest and not rest.startswith(" "):
                raise ValueError("text after path")
            return arg[1:i], rest
        elif ch == "<" and not quoted:
            break
    raise ValueError("unterminated path")


def parse_mailbox(path: str, *, allow_postmaster: bool = False) -> str | None:
    """Validate the inside of a path and return the mailbox, or ``None`` if malformed.

    A source route (``@a,@b:``) is dropped (RFC 5321 §4.1.1.3). ``allow_postmaster``
    admits the bare ``Postmaster`` recipient (§4.5.1).
    """
    if path.startswith("@"):
        m = _ADL.match(path)
        if m is None:
            return None
        path = path[m.end() :]
    if allow_postmaster and path.lower() == "postmaster":
        return path
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_OCTETS - 2:
        return None
    if _MAILBOX.fullmatch(path) is None:
        return None
    domain = path.rpartition("@")[2]
    if domain.startswith("[") and not _valid_literal(domain[1:-1]):
        return None
    return path


def _valid_literal(text: str) -> bool:
    try:
        if text[:5].lower() == "ipv6:":
            ipaddress.IPv6Address(text[5:])
        elif ":" in text:  # General-address-literal: tag ":" dcontent
            return _KEYWORD.fullmatch(text.partition(":")[0]) is not None
        else:
            ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def split_params(text: str) -> dict[str, str | None]:
    """``KEY[=value] ...`` → {KEY (upper-case): value (case kept) or None}."""
    result: dict[str, str | None] = {}
    for item in text.split():
        key, eq, value = item.partition("=")
        if _KEYWORD.fullmatch(key) is None or (eq and _VALUE.fullmatch(value) is None):
            raise _bad(f"Syntax error in parameter {item[:40]!r}")
        key = key.upper()
        if key in result:
            raise _bad(f"Duplicate parameter {key}")
        result[key] = value if eq else None
    return result


def xtext_decode(text: str) -> str:
    """Decode RFC 3461 §4 xtext (``+HH`` escapes).

    Raises ``ValueError`` if malformed or if the result holds control characters (the
    values end up in DSN header fields, so CR/LF must never get through).
    """
    if _XTEXT.fullmatch(text) is None:
        raise ValueError("malformed xtext")
    raw = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "+":
            raw.append(int(text[i + 1 : i + 3], 16))
            i += 3
        else:
            raw.append(ord(text[i]))
            i += 1
    decoded = raw.decode("utf-8")  # UnicodeDecodeError is a ValueError
    if _CONTROL.search(decoded):
        raise ValueError("control character in xtext")
    return decoded


def _unitext_decode(text: str) -> str:
    """Decode RFC 6533 utf-8-addr-xtext/unitext: xtext, then ``\\x{HEX}`` escapes."""
    decoded = xtext_decode(text) if text.isascii() else text
    decoded = _UNI_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), decoded)
    decoded.encode("utf-8")  # lone surrogates raise UnicodeEncodeError (a ValueError)
    if _CONTROL.search(decoded):
        raise ValueError("control character in address")
    return decoded


def _need(key: str, value: str | None) -> str:
    if value is None:
        raise _bad(f"{key} requires a value")
    return value


def parse_mail_params(text: str, *, size_limit: int | None) -> MailParams:
    """Validate MAIL FROM parameters; raises ``ParamError``."""
    params = split_params(text)
    size = body = ret = envid = auth = None
    smtputf8 = False
    for key, value in params.items():
        if key == "SIZE":
            value = _need(key, value)
            if not value.isascii() or not value.isdigit() or len(value) > 20:
                raise _bad("SIZE requires a number")
            size = int(value)
            if size_limit and size > size_limit:
                raise ParamError(
                    Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
                )
        elif key == "BODY":
            body = _need(key, value).upper()
            if body not in ("7BIT", "8BITMIME"):
                raise _bad("BODY must be 7BIT or 8BITMIME")
        elif key == "SMTPUTF8":
            if value is not None:
                raise _bad("SMTPUTF8 takes no value")
            smtputf8 = True
        elif key == "RET":
            ret = _need(key, value).upper()
            if ret not in ("FULL", "HDRS"):
                raise _bad("RET must be FULL or HDRS")
        elif key == "ENVID":
            value = _need(key, value)
            try:
                envid = xtext_decode(value)
            except ValueError:
                raise _bad("ENVID must be xtext") from None
            if len(value) > MAX_ENVID:
                raise _bad("ENVID too long")
        elif key == "AUTH":
            try:
                auth = xtext_decode(_need(key, value))
            except ValueError:
                raise _bad("AUTH must be xtext") from None
        else:
            raise _bad(f"MAIL FROM parameter {key} not recognized", code=555)
    return MailParams(size, body, smtputf8, ret, envid, auth)


def parse_notify(value: str) -> tuple[str, ...]:
    """NOTIFY=NEVER or a set of SUCCESS,FAILURE,DELAY (RFC 3461 §4.1)."""
    items = tuple(v.upper() for v in value.split(","))
    if items == ("NEVER",):
        return items
    if not items or any(i not in DSN_NOTIFY for i in items) or len(set(items)) != len(items):
        raise _bad("NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY")
    return items


def parse_orcpt(value: str) -> str:
    """ORCPT=addr-type;xtext → ``addr-type;decoded`` (RFC 3461 §4.2, RFC 6533)."""
    addr_type, sep, encoded = value.partition(";")
    if not sep or _ADDR_TYPE.fullmatch(addr_type) is None or not encoded:
        raise _bad("ORCPT must be addr-type;xtext")
    if len(value) > MAX_ORCPT:
        raise _bad("ORCPT too long")
    try:
        if addr_type.lower() == "utf-8":
            decoded = _unitext_decode(encoded)
        else:
            decoded = xtext_decode(encoded)
    except ValueError:
        raise _bad("ORCPT must be addr-type;xtext") from None
    return f"{addr_type};{decoded}"


def parse_rcpt_params(text: str) -> RcptParams:
    """Validate RCPT TO parameters; raises ``ParamError``."""
    notify: tuple[str, ...] = ()
    orcpt = None
    for key, value in split_params(text).items():
        if key == "NOTIFY":
            notify = parse_notify(_need(key, value))
        elif key == "ORCPT":
            orcpt = parse_orcpt(_need(key, value))
        else:
            raise _bad(f"RCPT TO parameter {key} not recognized", code=555)
    return RcptParams(notify, orcpt)
