"""DNSBL check: are the operator's own MX hosts listed on the configured blocklists?

Spamhaus-style lists are asked for ``<reversed IPv4 octets>.<zone>``; IPv6 addresses are
not checked. One item per (host, zone), named ``dnsbl:HOST:ZONE``.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from mailward.dns.items import FAILED, CheckItem, lookup_problem, plain
from mailward.dns.lookup import DnsTools
from mailward.dns.model import Lookup, Outcome
from mailward.net.resolver import absolute_name


@dataclass(frozen=True)
class DnsblQuery:
    """One IPv4 address of an MX host, asked of one blocklist."""

    address: str  # IPv4, e.g. "192.0.2.10"
    zone: str  # absolute, e.g. "zen.spamhaus.org."
    lookup: Lookup  # A at <reversed octets>.<zone> (:func:`dnsbl_name`)


@dataclass(frozen=True)
class DnsblHost:
    """One of the operator's MX hosts, its IPv4 addresses and their blocklist lookups."""

    host: str  # absolute
    addresses: Lookup  # A lookup of the host (AAAA is not asked: IPv6 is not checked)
    queries: tuple[DnsblQuery, ...] = ()  # one per (address, zone)


# -- DNSBL listings of our MX hosts ------------------------------------------------------------

_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
_DNSBL_ERRORS = ipaddress.IPv4Network("127.255.255.0/24")  # Spamhaus: query refused, ...
_DNSBL_RETRY = ("check again later; a blocklist that keeps refusing (e.g. Spamhaus refuses "
                "queries through public resolvers) needs a resolver of your own in "
                "dns_nameservers")


def dnsbl_name(address: str, zone: str) -> str:
    """``10.2.0.192.zen.spamhaus.org.`` for 192.0.2.10: the name a DNSBL lists it at."""
    octets = str(ipaddress.IPv4Address(address)).split(".")
    return absolute_name(".".join([*reversed(octets), plain(absolute_name(zone))]))


def _dnsbl_answer(query: DnsblQuery) -> tuple[list[str], str]:
    """``(listing codes, problem)`` of one blocklist lookup: codes in 127.0.0.0/8 (not
    127.255.255.0/24) mean listed; a problem (failed lookup, error code, an answer outside
    127.0.0.0/8) means it could not be checked; neither means not listed."""
    lookup = query.lookup
    if lookup.outcome in FAILED:
        return [], lookup_problem(lookup)
    if lookup.outcome is not Outcome.ANSWER:  # NXDOMAIN (or no A records): not listed
        return [], ""
    listed, odd = [], []
    for record in lookup.records:
        if record.rdtype != "A":
            continue
        try:
            code = ipaddress.IPv4Address(record.answer)
        except ValueError:
            odd.append(record.answer)
            continue
        if code in _LOOPBACK and code not in _DNSBL_ERRORS:
            listed.append(record.answer)
        else:
            odd.append(record.answer)
    if listed:
        return listed, ""
    if odd:
        return [], f"the blocklist answered {', '.join(odd)}, which is not a listing"
    return [], ""


def check_dnsbl(host: DnsblHost, zone: str) -> CheckItem:
    """Is any IPv4 address of our MX host ``host`` listed on the blocklist ``zone``?

    One item per (host, zone), named ``dnsbl:HOST:ZONE``: fail when an address is listed
    (an A answer in 127.0.0.0/8), warn when one could not be checked (timeout, failure, an
    answer outside 127.0.0.0/8 or a Spamhaus error code in 127.255.255.0/24, or a host
    without IPv4 address), else pass.
    """
    name, where = plain(host.host), plain(absolute_name(zone))
    item = f"dnsbl:{name}:{where}"
    if host.addresses.outcome in FAILED:
        return CheckItem(item, "warn", f"{name} could not be checked on {where}: its "
                         f"addresses could not be looked up ({lookup_problem(host.addresses)})",
                         _DNSBL_RETRY)
    addresses = sorted({r.answer for r in host.addresses.records if r.rdtype == "A"})
    if not addresses:
        return CheckItem(item, "warn", f"{name} could not be checked on {where}: it has no "
                         "IPv4 address (IPv6 addresses are not checked)",
                         f"check the A records of {name}")
    queries = [q for q in host.queries if plain(q.zone) == where and q.address in addresses]
    listings, problems = [], []
    for address in addresses:
        mine = [q for q in queries if q.address == address]
        if not mine:
            problems.append(f"{name} ({address}) could not be checked on {where}: not asked")
            continue
        for query in mine:
            codes, problem = _dnsbl_answer(query)
            if codes:
                listings.append(f"{name} ({address}) is listed on {where} ({', '.join(codes)})")
            elif problem:
                problems.append(f"{name} ({address}) could not be checked on {where}: "
                                f"{problem}")
    if listings:
        return CheckItem(item, "fail", "; ".join(listings + problems),
                         "request delisting at the blocklist; until then mail from this "
                         "host may be refused")
    if problems:
        return CheckItem(item, "warn", "; ".join(problems), _DNSBL_RETRY)
    return CheckItem(item, "pass",
                     f"{name} ({', '.join(addresses)}) is not listed on {where}")


# -- all together ------------------------------------------------------------------------------


async def dnsbl_host(tools: DnsTools, host: str, zones: Sequence[str]) -> DnsblHost:
    """The A records of our MX ``host`` and each address asked of each blocklist."""
    addresses = await tools.lookup(host, "A")
    found = sorted({r.answer for r in addresses.records if r.rdtype == "A"})
    pairs = [(address, absolute_name(zone)) for address in found for zone in zones]
    lookups = await asyncio.gather(*(tools.lookup(dnsbl_name(address, zone), "A")
                                     for address, zone in pairs))
    return DnsblHost(absolute_name(host), addresses, tuple(
        DnsblQuery(address, zone, lookup)
        for (address, zone), lookup in zip(pairs, lookups, strict=True)))
