"""DNS lookups for the operator and customers: what the world sees, outcome by outcome.

Lookups never raise on DNS failures: NXDOMAIN, "no records of this type", timeouts and
failing servers are :class:`~mailward.dns.model.Outcome` values. Bad input (a name that
is not a DNS name, an unsupported type, a server that is not an IP) raises ValueError.
"""

from __future__ import annotations

import asyncio

import dns.asyncresolver
import dns.exception
import dns.message
import dns.rdatatype
import dns.resolver
import dns.rrset

from mailward.config import Settings
from mailward.dns.model import Lookup, Outcome, Record
from mailward.net.resolver import (
    absolute_name,
    direct_resolver,
    make_resolver,
    parse_nameserver,
    private_address,
    server_text,
)

__all__ = ["RDTYPES", "DnsTools"]

RDTYPES = ("A", "AAAA", "CNAME", "MX", "NS", "SOA", "SRV", "TXT")


class DnsTools:
    """Lookups through the configured resolvers, or directly at one server (``server=``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.timeout = settings.dns_timeout_seconds
        self.resolver = make_resolver(settings.dns_nameservers, lifetime=self.timeout)

    async def lookup(self, name: str, rdtype: str, *, server: str | None = None,
                     checked: bool = True) -> Lookup:
        """The ``rdtype`` records of ``name``; ``server`` (``IP`` or ``IP:PORT``) asks only it.

        Without a port, ``server`` is asked at ``settings.dns_authoritative_port``; a
        loopback, private or link-local ``server`` is refused (ValueError) unless
        ``settings.allow_private_mail_servers`` (``checked=False``: a server the domain
        check found itself, a domain's nameserver or a configured resolver).
        """
        qname = absolute_name(name)
        qtype = rdtype.strip().upper()
        if qtype not in RDTYPES:
            raise ValueError(f"record type {rdtype!r} is not one of {', '.join(RDTYPES)}")
        resolver, asked = self.resolver, None
        if server is not None:
            port_default = self.settings.dns_authoritative_port
            why = self.refused_server(server) if checked else None
            if why:
                raise ValueError(f"DNS server {server.strip()!r} refused: {why} "
                                 "(allow_private_mail_servers is off)")
            resolver = direct_resolver(server, port_default, lifetime=self.timeout)
            asked = server_text(*parse_nameserver(server, port_default))

        def outcome(kind: Outcome, detail: str, records: tuple[Record, ...] = ()) -> Lookup:
            return Lookup(qname, qtype, kind, records, asked, detail)

        try:
            answer = await resolver.resolve(qname, qtype, search=False)
        except dns.resolver.NXDOMAIN as exc:
            return outcome(Outcome.NXDOMAIN, _nxdomain(qname, exc))
        except dns.resolver.NoAnswer as exc:
            return outcome(Outcome.NO_ANSWER, _no_answer(qname, qtype, exc))
        except dns.exception.Timeout:
            return outcome(Outcome.TIMEOUT, f"no answer within {self.timeout:g} s")
        except dns.resolver.NoNameservers as exc:
            return outcome(Outcome.SERVFAIL, _failures(exc))
        except (dns.exception.DNSException, OSError) as exc:
            return outcome(Outcome.SERVFAIL, str(exc) or type(exc).__name__)
        return outcome(Outcome.ANSWER, "", _records(answer.response))

    def refused_server(self, server: str) -> str | None:
        """Why ``server`` may not be asked directly (a private address, unless allowed or
        configured as one of ``dns_nameservers``); None when it may. ValueError if bad."""
        asked = parse_nameserver(server, self.settings.dns_authoritative_port)
        if self.settings.allow_private_mail_servers:
            return None
        configured = {parse_nameserver(entry) for entry in self.settings.dns_nameservers}
        return None if asked in configured else private_address(asked[0])

    async def mx(self, domain: str, *, server: str | None = None, checked: bool = True
                 ) -> Lookup:
        return await self.lookup(domain, "MX", server=server, checked=checked)

    async def a(self, name: str, *, server: str | None = None) -> tuple[Lookup, Lookup]:
        """Both address lookups, asked at once: ``(A lookup, AAAA lookup)``."""
        four, six = await asyncio.gather(self.lookup(name, "A", server=server),
                                         self.lookup(name, "AAAA", server=server))
        return four, six

    async def cname(self, name: str, *, server: str | None = None) -> Lookup:
        return await self.lookup(name, "CNAME", server=server)

    async def txt(self, name: str, *, server: str | None = None) -> Lookup:
        return await self.lookup(name, "TXT", server=server)

    async def ns(self, domain: str, *, server: str | None = None) -> Lookup:
        return await self.lookup(domain, "NS", server=server)


def _records(response: dns.message.Message) -> tuple[Record, ...]:
    """The answer section in chain order: the CNAMEs followed, then the asked records."""
    assert isinstance(response, dns.message.QueryMessage)
    chain = response.resolve_chaining()
    rrsets = [*chain.cnames, *([chain.answer] if chain.answer is not None else [])]
    return tuple(record for rrset in rrsets for record in _rrset_records(rrset))


def _rrset_records(rrset: dns.rrset.RRset) -> list[Record]:
    name, ttl = rrset.name.to_text(), rrset.ttl
    rdtype = dns.rdatatype.to_text(rrset.rdtype)
    records = []
    for rdata in rrset:
        priority = None
        if rrset.rdtype == dns.rdatatype.MX:
            priority, answer = rdata.preference, rdata.exchange.to_text()
        elif rrset.rdtype in (dns.rdatatype.CNAME, dns.rdatatype.NS):
            answer = rdata.target.to_text()
        elif rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            answer = rdata.address
        elif rrset.rdtype == dns.rdatatype.TXT:
            answer = b"".join(rdata.strings).decode("utf-8", "replace")
        else:  # SOA, SRV: their zone-file text
            answer = rdata.to_text()
        records.append(Record(name, ttl, "IN", rdtype, priority, answer))
    return sorted(records, key=lambda r: (r.priority or 0, r.answer))


def _nxdomain(qname: str, exc: dns.resolver.NXDOMAIN) -> str:
    try:
        canonical = exc.canonical_name.to_text()
    except (dns.exception.DNSException, KeyError, TypeError):
        canonical = qname
    if canonical != qname:
        return f"{qname} is an alias of {canonical}, which does not exist"
    return f"{qname} does not exist"


def _no_answer(qname: str, qtype: str, exc: dns.resolver.NoAnswer) -> str:
    response = exc.kwargs.get("response")
    canonical = qname
    if isinstance(response, dns.message.QueryMessage):
        canonical = response.canonical_name().to_text()
    if canonical != qname:
        return f"{qname} is an alias of {canonical}, which has no {qtype} records"
    return f"{qname} exists but has no {qtype} records"


def _failures(exc: dns.resolver.NoNameservers) -> str:
    """``"127.0.0.1:53 answered SERVFAIL; ..."`` from the errors dnspython collected."""
    parts = []
    for server, _tcp, port, error, _response in exc.kwargs.get("errors", []):
        address = str(server).removeprefix("Do53:").rsplit("@", 1)[0]
        parts.append(f"{server_text(address, port)} answered {error}")
    return "; ".join(parts) or "every server failed"

