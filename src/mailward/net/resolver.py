"""How we ask DNS: resolvers for the configured nameservers or one server, and valid names.

``make_resolver`` serves routing (MX lookups for outgoing mail); ``direct_resolver`` asks
one server only, e.g. a domain's authoritative nameserver, bypassing every cache.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

import dns.asyncresolver
import dns.name
import dns.nameserver
import dns.resolver
import idna

__all__ = [
    "absolute_name",
    "answer_cache",
    "direct_resolver",
    "make_resolver",
    "parse_nameserver",
    "private_address",
]

CACHE_SIZE = 10_000  # answers an ``answer_cache`` keeps (least recently used go first)
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


def parse_nameserver(text: str, port_default: int = 53) -> tuple[str, int]:
    """``IP``, ``IP:PORT``, ``IPv6`` or ``[IPv6]:PORT`` → (address, port); ValueError if bad."""
    raw = text.strip()
    host, port_text = raw, ""
    if raw.startswith("["):
        host, sep, rest = raw[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{raw!r}: write an IPv6 server as [address] or [address]:port")
        port_text = rest[1:]
    elif raw.count(":") == 1:
        host, _, port_text = raw.partition(":")
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        raise ValueError(f"{raw!r} is not a nameserver IP address (IP or IP:PORT)") from None
    if not port_text:
        return address, port_default
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{raw!r}: the port must be a number 1-65535")
    return address, int(port_text)


def private_address(address: str) -> str | None:
    """Why ``address`` (an IP) is not a public Internet address, or None when it is one.

    Loopback, link-local, private (RFC 1918, unique local, shared, documentation),
    unspecified, multicast and reserved addresses are refused as mail servers and as DNS
    servers to ask unless the operator allows them (``allow_private_mail_servers``): they
    would let a customer make us connect into the operator's own network.
    """
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for kind, test in (("a loopback", ip.is_loopback), ("a link-local", ip.is_link_local),
                       ("an unspecified", ip.is_unspecified), ("a multicast", ip.is_multicast),
                       ("a private", ip.is_private), ("a reserved", ip.is_reserved)):
        if test:
            return f"{ip} is {kind} address, not a public one"
    if not ip.is_global:  # shared (100.64.0.0/10) and other special-purpose ranges
        return f"{ip} is a special-purpose address, not a public one"
    return None


def _resolver(servers: list[tuple[str, int]], lifetime: float) -> dns.asyncresolver.Resolver:
    resolver = dns.asyncresolver.Resolver(configure=not servers)
    if servers:
        resolver.nameservers = [dns.nameserver.Do53Nameserver(a, p) for a, p in servers]
    resolver.lifetime = lifetime
    resolver.timeout = min(resolver.timeout, lifetime)
    return resolver


def answer_cache(size: int = CACHE_SIZE) -> dns.resolver.LRUCache:
    """A thread-safe DNS answer cache keeping each answer for its TTL (a negative answer
    for its SOA's minimum, and not at all when the server sent no SOA)."""
    return dns.resolver.LRUCache(size)


def make_sync_resolver(nameservers: Sequence[str], lifetime: float = 10.0,
                       cache: dns.resolver.LRUCache | None = None) -> dns.resolver.Resolver:
    """Like :func:`make_resolver`, blocking: for libraries that ask DNS themselves in a
    worker thread (pyspf, dkimpy). ``cache`` (:func:`answer_cache`) keeps answers for
    their TTL, as a recursive resolver would; the default asks every time."""
    resolver = dns.resolver.Resolver(configure=not nameservers)
    resolver.cache = cache
    if nameservers:
        resolver.nameservers = [dns.nameserver.Do53Nameserver(*parse_nameserver(entry))
                                for entry in nameservers]
    resolver.lifetime = lifetime
    resolver.timeout = min(resolver.timeout, lifetime)
    return resolver


def make_resolver(nameservers: Sequence[str], lifetime: float = 10.0,
                  cache: dns.resolver.LRUCache | None = None) -> dns.asyncresolver.Resolver:
    """The system's resolver, or the configured ``IP`` / ``IP:PORT`` / ``[IPv6]:PORT``;
    ``cache`` as for :func:`make_sync_resolver`."""
    resolver = _resolver([parse_nameserver(entry) for entry in nameservers], lifetime)
    resolver.cache = cache
    return resolver


def direct_resolver(server: str, port_default: int, lifetime: float = 5.0
                    ) -> dns.asyncresolver.Resolver:
    """A resolver asking only ``server`` (``IP`` or ``IP:PORT``), with no search domains.

    Queries keep the RD flag, so a recursive server works too; an authoritative server
    ignores it and answers from its zone.
    """
    resolver = _resolver([parse_nameserver(server, port_default)], lifetime)
    resolver.domain = dns.name.root
    resolver.search = []
    resolver.use_search_by_default = False
    return resolver


def absolute_name(name: str) -> str:
    """``name`` checked and in DNS form: lower-case ASCII (IDNA), absolute with the dot.

    Labels may hold underscores (``_dmarc``, ``sel._domainkey``). Raises ValueError.
    """
    raw = name.strip()
    text = raw[:-1] if raw.endswith(".") else raw
    if not text:
        raise ValueError("the name is empty: give a domain or host name")
    labels = []
    for label in text.split("."):
        if not label:
            raise ValueError(f"{raw!r} has an empty label (two dots in a row)")
        if not label.isascii():
            try:
                label = idna.encode(label, uts46=True).decode("ascii")
            except idna.IDNAError as exc:
                raise ValueError(f"{raw!r} is not a valid international name: {exc}") from None
        label = label.lower()
        if not _LABEL.match(label):
            raise ValueError(
                f"{raw!r}: label {label!r} must be 1-63 letters, digits, '-' or '_' "
                "and not start or end with '-'"
            )
        labels.append(label)
    ascii_name = ".".join(labels)
    if len(ascii_name) > 253:
        raise ValueError(f"{raw!r} is longer than 253 characters")
    return ascii_name + "."


def server_text(address: str, port: int) -> str:
    """``IP:PORT`` (``[IPv6]:PORT``) as the DNS tools show which server was asked."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
