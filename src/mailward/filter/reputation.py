"""Reputation checks of the filter: the connecting IP on DNS blocklists (DNSBL), the HELO,
envelope and From domains on domain blocklists (RHSBL), the link domains of the body on
URI blocklists (URIBL), and HELO/PTR sanity.

Zones and their points come from the settings (``filter_dnsbl`` / ``filter_rhsbl`` /
``filter_uribl``, ``ZONE:POINTS``). A listing is an A answer in 127.0.0.0/8 outside
127.255.255.0/24 (the error codes Spamhaus answers with). Answers are cached for their
TTL (at most an hour). A lookup that fails is no finding: blocklist trouble never costs a
message its delivery.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import time
from collections import OrderedDict
from collections.abc import Sequence
from email.utils import getaddresses

import dns.asyncresolver
import dns.exception
import dns.resolver
import dns.reversename
from publicsuffixlist import PublicSuffixList

from mailward.config import Settings
from mailward.filter.features import header_text
from mailward.filter.parsed import ParsedMessage, parse
from mailward.filter.pipeline import FilterInput, Finding
from mailward.filter.stub import PTR, Stub
from mailward.filter.stub import A as A_RECORD
from mailward.net.resolver import make_resolver

__all__ = ["ReputationCheck"]

MAX_TTL = 3600
CACHE_SIZE = 10_000
MAX_LINK_DOMAINS = 10
HELO_OURS = 4.0  # a client claiming to be one of our own MX hosts
HELO_NOT_FQDN = 1.0
NO_PTR = 1.0
_LISTED = ipaddress.IPv4Network("127.0.0.0/8")
_ERRORS = ipaddress.IPv4Network("127.255.255.0/24")
_URL = re.compile(rb"(?i)\b(?:https?://|www\.)([a-z0-9.-]+\.[a-z]{2,})")
_PSL = PublicSuffixList()
_TYPES = {"A": A_RECORD, "PTR": PTR}


def _zones(entries: Sequence[str]) -> list[tuple[str, float]]:
    found = []
    for entry in entries:
        zone, _, points = entry.rpartition(":")
        found.append((zone.strip().strip("."), float(points)))
    return found


def _org(domain: str) -> str:
    domain = domain.lower().strip(".")
    return _PSL.privatesuffix(domain) or domain


class ReputationCheck:
    """Pipeline check: DNSBL, RHSBL, URIBL and HELO/PTR findings."""

    name = "reputation"

    def __init__(self, settings: Settings) -> None:
        self.resolver: dns.asyncresolver.Resolver = make_resolver(
            settings.dns_nameservers, settings.dns_timeout_seconds)
        self.dnsbl = _zones(settings.filter_dnsbl)
        self.rhsbl = _zones(settings.filter_rhsbl)
        self.uribl = _zones(settings.filter_uribl)
        self.our_hosts = {mx.host.lower() for mx in settings.mx_hosts}
        self._stub = Stub(self.resolver)
        self._cache: OrderedDict[tuple[str, str], tuple[float, list[str] | None]] = \
            OrderedDict()

    async def __call__(self, message: FilterInput) -> Sequence[Finding]:
        parsed = message.parsed  # the pipeline's one parse; else one now, off the loop
        if parsed is None:
            parsed = await asyncio.to_thread(parse, message.data)
        jobs = [self._ip_checks(message.peer), self._domain_checks(message, parsed),
                self._link_checks(parsed)]
        found: list[Finding] = []
        for part in await asyncio.gather(*jobs):
            found += part
        found += self._helo(message.helo)
        return found

    # -- the checks ------------------------------------------------------------------------

    async def _ip_checks(self, peer: str) -> list[Finding]:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return []
        if address.is_loopback or (address.version == 4
                                   and any(address in net for net in _PRIVATE)):
            return []  # our own relays and internal hosts
        found = []
        reverse = (".".join(reversed(peer.split("."))) + ".in-addr.arpa."  # as dnspython
                   if address.version == 4 else dns.reversename.from_address(peer).to_text())
        ptr = await self._query(reverse, "PTR")
        if ptr == []:  # looked up, and there is none (None: could not tell)
            found.append(Finding("ptr-missing", NO_PTR, f"{peer} has no reverse DNS name"))
        if address.version == 4:
            reversed_ip = ".".join(reversed(peer.split(".")))
            for zone, points in self.dnsbl:
                if await self._listed(f"{reversed_ip}.{zone}"):
                    found.append(Finding(f"dnsbl:{zone}", points, f"{peer} is listed on {zone}"))
        return found

    async def _domain_checks(self, message: FilterInput,
                             parsed: ParsedMessage) -> list[Finding]:
        domains = {_org(message.helo)} if "." in message.helo else set()
        if "@" in message.sender:
            domains.add(_org(message.sender.rsplit("@", 1)[1]))
        msg = parsed.root
        if msg is not None:
            for _name, address in getaddresses([header_text(str(v))
                                                for v in msg.get_all("From", [])]):
                if "@" in address:
                    domains.add(_org(address.rsplit("@", 1)[1]))
        return await self._domain_lists(sorted(d for d in domains if d), self.rhsbl, "rhsbl")

    async def _link_checks(self, parsed: ParsedMessage) -> list[Finding]:
        if not self.uribl:
            return []
        texts = []  # (decoded text is capped: the regex below reads a bounded amount)
        for part in parsed.walk():
            if part.get_content_maintype() == "text" and not part.is_multipart():
                payload = parsed.decoded(part)
                if payload:
                    texts.append(payload)
        domains: list[str] = []
        for text in texts:
            for match in _URL.finditer(text):
                domain = _org(match.group(1).decode("ascii", "replace"))
                if domain not in domains:
                    domains.append(domain)
        return await self._domain_lists(domains[:MAX_LINK_DOMAINS], self.uribl, "uribl")

    async def _domain_lists(self, domains: Sequence[str], zones: Sequence[tuple[str, float]],
                            kind: str) -> list[Finding]:
        found = []
        for zone, points in zones:
            for domain in domains:
                if await self._listed(f"{domain}.{zone}"):
                    found.append(Finding(f"{kind}:{zone}", points,
                                         f"{domain} is listed on {zone}"))
                    break  # one finding per zone
        return found

    def _helo(self, helo: str) -> list[Finding]:
        name = helo.strip().lower().rstrip(".")
        if name in self.our_hosts:
            return [Finding("helo-forged", HELO_OURS, f"HELO {helo} claims to be our host")]
        if name.startswith("[") or "." not in name:
            return [Finding("helo-not-fqdn", HELO_NOT_FQDN, f"HELO {helo!r} is not a "
                                                            "fully qualified name")]
        return []

    # -- DNS with a TTL cache ----------------------------------------------------------------

    async def _listed(self, name: str) -> bool:
        answers = await self._query(name, "A")
        for text in answers or ():
            address = ipaddress.ip_address(text)
            if address in _LISTED and address not in _ERRORS:
                return True
        return False

    async def _query(self, name: str, rdtype: str) -> list[str] | None:
        """The answers (``[]`` for none), or None when the lookup failed; cached."""
        key = (name.lower(), rdtype)
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            self._cache.move_to_end(key)
            return cached[1]
        reply = await self._stub.ask_async(name, _TYPES[rdtype])
        found: list[str] | None
        if reply is not None:  # the lean stub read it (else dnspython asks, as ever)
            found = [str(value) for value in reply.values]
            ttl = min(reply.ttl, MAX_TTL) if found else 300
            self._keep(key, now + ttl, found)
            return found
        try:
            answer = await self.resolver.resolve(name, rdtype, search=False)
            found = [r.to_text() for r in answer]
            ttl = min(answer.rrset.ttl if answer.rrset is not None else 0, MAX_TTL)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            found, ttl = [], 300
        except (dns.exception.Timeout, dns.resolver.NoNameservers, dns.exception.DNSException):
            return None  # not cached: ask again next time
        self._keep(key, now + ttl, found)
        return found

    def _keep(self, key: tuple[str, str], until: float, found: list[str]) -> None:
        self._cache[key] = (until, found)
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)


_PRIVATE = (ipaddress.IPv4Network("10.0.0.0/8"), ipaddress.IPv4Network("172.16.0.0/12"),
            ipaddress.IPv4Network("192.168.0.0/16"))
