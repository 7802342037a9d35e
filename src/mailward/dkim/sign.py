"""DKIM signing of outbound mail and a verifier (dkimpy), off the event loop.

dkimpy's own async verifier needs aiodns; instead the key record is resolved first with
dnspython's async resolver (or any ``TxtLookup``), then the synchronous verifier runs in a
thread with a ``dnsfunc`` answering from that result.

Each message is split into header fields and body once (``dkim.rfc822_parse``, in the
worker thread) and dkimpy's signer or verifier is given that split, instead of splitting
it again itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

import dkim
import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver
from dkim.util import parse_tag_value

# Signed when present (RFC 6376 §5.4.1's recommendations); From is also over-signed so
# that a second From cannot be added without breaking the signature.
SIGNED_HEADERS: tuple[str, ...] = (
    "from",
    "sender",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "to",
    "cc",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-id",
    "content-description",
    "in-reply-to",
    "references",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
)
OVERSIGNED_HEADERS: tuple[str, ...] = ("from",)

TxtLookup = Callable[[str], Awaitable[bytes | None]]


def _split(message: bytes, **options: object) -> dkim.DKIM:
    """A dkimpy signer/verifier of ``message``, split once into fields and body."""
    fields, body = dkim.rfc822_parse(message)
    handler = dkim.DKIM(None, **options)
    handler.headers, handler.body = fields, body
    return handler


def _sign_sync(
    message: bytes, domain: str, selector: str, private_key: bytes, headers: Iterable[str]
) -> bytes:
    linesep = b"\r\n" if b"\r\n" in message else b"\n"
    signer = _split(message, signature_algorithm=b"rsa-sha256", linesep=linesep)
    present = {name.decode("ascii", "replace").lower() for name, _ in signer.headers}
    if "from" not in present:
        raise ValueError("a message without a From header cannot be DKIM-signed")
    include = [h for h in dict.fromkeys(h.lower() for h in headers) if h in present]
    include += [h for h in OVERSIGNED_HEADERS if h in include]
    signature = signer.sign(
        selector.encode("ascii"),
        domain.encode("ascii"),
        private_key,
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=[h.encode("ascii") for h in include],
    )
    if linesep == b"\n":
        signature = signature.replace(b"\r\n", b"\n")
    return signature + message


async def sign(
    message: bytes,
    *,
    domain: str,
    selector: str,
    private_key: bytes,
    headers: Iterable[str] = SIGNED_HEADERS,
) -> bytes:
    """``message`` with a ``DKIM-Signature:`` header prepended (relaxed/relaxed, rsa-sha256).

    ``domain`` is the ASCII (IDNA) d= domain; of ``headers`` those present are signed.
    """
    return await asyncio.to_thread(
        _sign_sync, message, domain, selector, private_key, tuple(headers)
    )


def _nameserver(spec: str) -> dns.nameserver.Do53Nameserver:
    """``"127.0.0.1"``, ``"127.0.0.1:5353"``, ``"::1"`` or ``"[::1]:5353"``."""
    if spec.startswith("["):
        host, _, port = spec[1:].partition("]:")
        return dns.nameserver.Do53Nameserver(host.rstrip("]"), int(port or 53))
    if spec.count(":") == 1:
        host, port = spec.split(":")
        return dns.nameserver.Do53Nameserver(host, int(port))
    return dns.nameserver.Do53Nameserver(spec, 53)


def dns_txt_lookup(nameservers: list[str] | None = None, *, timeout: float = 5.0) -> TxtLookup:
    """A TXT lookup through dnspython (the system resolvers when ``nameservers`` is None)."""
    if nameservers:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [_nameserver(ns) for ns in nameservers]
    else:
        resolver = dns.asyncresolver.Resolver()
    resolver.lifetime = timeout

    async def lookup(name: str) -> bytes | None:
        try:
            answer = await resolver.resolve(name, dns.rdatatype.TXT)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.exception.DNSException):
            return None
        for rdata in answer:
            return b"".join(rdata.strings)  # first record, strings concatenated
        return None

    return lookup


def _key_name(headers: list[list[bytes]]) -> str | None:
    """``<s>._domainkey.<d>`` of the topmost DKIM-Signature, if any and well-formed."""
    for name, value in headers:
        if name.lower() == b"dkim-signature":
            try:
                tags = parse_tag_value(value)
                return f"{tags[b's'].decode('ascii')}._domainkey.{tags[b'd'].decode('ascii')}"
            except Exception:
                return None
    return None


async def verify(
    message: bytes,
    *,
    nameservers: list[str] | None = None,
    lookup: TxtLookup | None = None,
    dns_timeout: float = 5.0,
) -> bool:
    """Whether the topmost DKIM signature of ``message`` verifies.

    The key record is fetched with ``lookup`` if given, else from ``nameservers`` (see
    :func:`dns_txt_lookup`).
    """
    try:
        verifier = await asyncio.to_thread(_split, message)
    except dkim.DKIMException:  # a header dkimpy cannot read
        return False
    name = _key_name(verifier.headers)
    if name is None:
        return False
    if lookup is None:
        lookup = dns_txt_lookup(nameservers, timeout=dns_timeout)
    record = await lookup(name)
    if record is None:
        return False
    wanted = name.rstrip(".").lower()

    def dnsfunc(qname: bytes | str, timeout: float = 5) -> bytes | None:
        asked = qname.decode("ascii") if isinstance(qname, bytes) else qname
        return record if asked.rstrip(".").lower() == wanted else None

    def run() -> bool:
        try:
            return bool(verifier.verify(dnsfunc=dnsfunc))
        except dkim.DKIMException:
            return False

    return await asyncio.to_thread(run)
