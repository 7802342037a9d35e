"""Who the client is, and our ``Received:`` trace header (RFC 5321 §4.4, RFC 3848)."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import re
import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9.\-_:\[\]]")
_MAX_NAME = 255
_FOLD_AT = 78


@dataclass(frozen=True, slots=True)
class TlsInfo:
    """What was negotiated by STARTTLS."""

    version: str  # "TLSv1.3"
    cipher: str  # "TLS_AES_256_GCM_SHA384"
    bits: int

    def comment(self) -> str:
        return f"(using {self.version} with cipher {self.cipher} ({self.bits}/{self.bits} bits))"


def new_id() -> str:
    """A short random transaction id (upper-case base32, 16 characters)."""
    return base64.b32encode(secrets.token_bytes(10)).decode("ascii")


def address_literal(ip: str) -> str:
    """``192.0.2.1`` → ``[192.0.2.1]``, IPv6 → ``[IPv6:…]`` (RFC 5321 §4.1.3)."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return "[" + _safe(ip) + "]"
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return f"[{addr.ipv4_mapped}]"
        return f"[IPv6:{addr.compressed}]"
    return f"[{addr}]"


def peer_ip(peer: Any) -> str:
    """The IP address of a peername (IPv4-mapped IPv6 shown as IPv4)."""
    if not isinstance(peer, tuple) or not peer:
        return ""
    try:
        addr = ipaddress.ip_address(str(peer[0]).split("%", 1)[0])
    except ValueError:
        return str(peer[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


async def system_reverse_dns(ip: str) -> str | None:
    """Forward-confirmed reverse DNS with the system resolver (``None`` if unverified)."""
    loop = asyncio.get_running_loop()
    try:
        name, _ = await loop.getnameinfo((ip, 0), socket.NI_NAMEREQD)
        infos = await loop.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
        want = ipaddress.ip_address(ip)
        if any(ipaddress.ip_address(str(i[4][0]).split("%")[0]) == want for i in infos):
            return name.rstrip(".").lower()
    except (OSError, UnicodeError, ValueError):
        pass
    return None


def _safe(name: str) -> str:
    """Keep a client-supplied name to characters harmless in a header, bounded in length."""
    return _UNSAFE.sub("_", name)[:_MAX_NAME] or "unknown"


def protocol_name(*, esmtp: bool, tls: bool, smtputf8: bool, auth: bool = False) -> str:
    """SMTP, ESMTP, ESMTPS, ESMTPSA, UTF8SMTPS, … (RFC 3848, RFC 6531 §3.7.3)."""
    if not esmtp:
        return "SMTP"
    return ("UTF8SMTP" if smtputf8 else "ESMTP") + ("S" if tls else "") + ("A" if auth else "")


def received_header(
    *,
    helo: str,
    client_name: str | None,
    client_ip: str,
    hostname: str,
    protocol: str,
    smtp_id: str,
    tls: TlsInfo | None = None,
    recipient: str | None = None,
    when: datetime | None = None,
) -> bytes:
    """Build the folded header, CRLF-terminated.

    ``from <helo> (<rdns or unknown> [<ip>]) by <hostname> with <protocol> id <id>
    (<tls>) for <recipient>; <date>``. ``recipient`` is given only for single-recipient
    transactions (naming one of several would disclose Bcc recipients).
    """
    date = format_datetime((when or datetime.now(UTC)).astimezone(UTC))
    lines = [
        f"Received: from {_safe(helo)} ({_safe(client_name or 'unknown')}"
        f" {address_literal(client_ip)})",
        f"\tby {_safe(hostname)} with {protocol} id {smtp_id}",
    ]
    if tls is not None:
        lines.append("\t" + tls.comment())
    if recipient is not None:
        lines.append(f"\tfor <{recipient}>;")
    else:
        lines[-1] += ";"
    if len(lines[-1]) + 1 + len(date) <= _FOLD_AT:
        lines[-1] += " " + date
    else:
        lines.append("\t" + date)
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")
