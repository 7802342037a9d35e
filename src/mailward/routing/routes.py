"""Where a recipient's mail goes: the one place deciding the route (docs/architecture.md).

Our domains follow their mail server settings, lowest preference first, equal preferences
in random order; a server that is the operator's hosting host means local delivery (only
while the domain has hosting: otherwise the mail is held). Other domains (forwards leaving
us, bounces) go to the configured smarthost or to their MX.

A domain not verified yet (:mod:`mailward.dns.verify`) may have been added by someone who
does not own it: its settings are used only for mail that reached our MX tier from outside
(the sender's MTA chose us by the domain's MX). Mail that starts here (submission,
forwards, auto-cc copies, DSNs, notices) goes by its public MX, like any outside domain,
so no tenant can pull another tenant's mail to a domain it claims.

A domain's facts and mail server settings are cached per process in the database's lookup
caches (:mod:`mailward.db.generation`): a change is seen at once by the process that made
it, within a second by every other. The order within a preference is drawn per route.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import groupby

import dns.exception
import dns.resolver
from sqlalchemy import select

from mailward.config import Settings
from mailward.db import Database
from mailward.db.generation import MISS, LookupCache
from mailward.db.models import EXTERNAL_ORIGINS, MailServer
from mailward.directory.facts import DomainFacts, domain_facts
from mailward.net.resolver import make_resolver
from mailward.routing.servers import DEFAULT_PORT, normalize_host, parse_server

HOSTING_OFF = ("4.3.5 hosting is off for {domain}, but its mail server settings name the "
               "hosting host: mail is held until hosting is switched on or the settings "
               "name the customer's own server")
UNVERIFIED = ("{domain} is not verified, so its mail server settings are not used for "
              "mail from here")


@dataclass(frozen=True, slots=True)
class Hop:
    """One server to try; ``local`` means deliver into our own mailboxes."""

    host: str  # what to connect to: a host name or an IP address
    port: int = DEFAULT_PORT
    local: bool = False
    name: str | None = None  # the MX host name when ``host`` is one of its addresses
    # the operator's own smarthost (``relay_host``): may be a private address
    trusted: bool = field(default=False, compare=False)

    def __str__(self) -> str:
        if self.local:
            return "local mailboxes"
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.name} ({shown}:{self.port})" if self.name else f"{shown}:{self.port}"


@dataclass(frozen=True, slots=True)
class Route:
    """The hops to try in order, or why there are none."""

    hops: tuple[Hop, ...] = ()
    temporary: str | None = None  # no hops now; keep the mail and retry
    permanent: str | None = None  # no hops ever; bounce (RFC 3463 status first)


def _noted(route: Route, note: str) -> Route:
    """``route`` with ``note`` added to its reason when it has no hops."""
    if route.hops:
        return route
    return Route(temporary=route.temporary and f"{route.temporary} ({note})",
                 permanent=route.permanent and f"{route.permanent} ({note})")


def order_by_preference(servers: Sequence[tuple[int, Hop]]) -> list[Hop]:
    """Lowest preference first; within one preference a random order (RFC 5321 §5.1)."""
    ordered: list[Hop] = []
    for _, group in groupby(sorted(servers, key=lambda s: s[0]), key=lambda s: s[0]):
        hops = [hop for _, hop in group]
        random.shuffle(hops)
        ordered.extend(hops)
    return ordered


Servers = tuple[tuple[int, str, int], ...]  # a domain's (preference, host, port) settings


class Router:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.hosting_host = settings.hosting_host.lower()
        self.resolver = make_resolver(settings.dns_nameservers)
        # domain: (its facts or None if not ours, its (preference, host, port) rows)
        self._cache: LookupCache[str, tuple[DomainFacts | None, Servers]] = db.lookups.cache(
            "routes", settings.lookup_cache_entries, settings.lookup_cache_seconds)

    async def route(self, domain: str, origin: str | None = None) -> Route:
        """Where mail for ``domain`` goes; ``origin`` is the queue row's origin (``None``:
        unknown, treated as mail that starts here)."""
        served, rows = await self._settings(domain)
        if served is None:
            return await self._external(domain)
        if not (served.verified or origin in EXTERNAL_ORIGINS):
            return _noted(await self._external(domain), UNVERIFIED.format(domain=domain))
        hosting = served.hosting
        if not rows:
            return Route(temporary="4.3.5 the domain has no mail server settings; "
                                   "mail is held until one is added")
        hops = [(pref, self._hop(host, port)) for pref, host, port in rows]
        if not hosting:  # legacy rows, or hosting switched off since: never local mailboxes
            hops = [(pref, hop) for pref, hop in hops if not hop.local]
            if not hops:
                return Route(temporary=HOSTING_OFF.format(domain=domain))
        return Route(tuple(order_by_preference(hops)))

    async def _settings(self, domain: str) -> tuple[DomainFacts | None, Servers]:
        """The served domain ``domain`` (None: not ours) and its mail server settings."""
        async with self.db.session() as session:
            epoch = await self._cache.fresh(session)
            found = self._cache.get(domain)
            if found is not MISS:
                return found
            served = await domain_facts(session, domain)
            rows: Servers = () if served is None else tuple(
                (pref, host, port) for pref, host, port in (await session.execute(
                    select(MailServer.preference, MailServer.host, MailServer.port)
                    .where(MailServer.domain_id == served.id))).all())
        self._cache.put(domain, (served, rows), epoch)
        return served, rows

    def _hop(self, host: str, port: int) -> Hop:
        if host.lower() == self.hosting_host:
            return Hop(host, port, local=True)
        return Hop(host, port)

    async def _external(self, domain: str) -> Route:
        if self.settings.relay_host:
            host, port = parse_server(self.settings.relay_host)
            return Route((Hop(normalize_host(host), port or DEFAULT_PORT, trusted=True),))
        return await self._mx(domain)

    async def _mx(self, domain: str) -> Route:
        """MX lookup with the implicit-MX fallback (RFC 5321 §5.1) and null MX (RFC 7505)."""
        try:
            answer = await self.resolver.resolve(domain, "MX")
        except dns.resolver.NXDOMAIN:
            return Route(permanent=f"5.1.2 domain {domain} does not exist")
        except dns.resolver.NoAnswer:
            return await self._implicit_mx(domain)
        except (dns.exception.DNSException, OSError) as exc:
            return Route(temporary=f"4.4.3 MX lookup for {domain} failed: {exc}")
        records = [(r.preference, str(r.exchange).rstrip(".").lower()) for r in answer]
        if any(host in ("", ".") for _, host in records):
            return Route(permanent=f"5.1.10 domain {domain} accepts no mail (null MX)")
        ordered = order_by_preference([(pref, Hop(host)) for pref, host in records])
        return await self._connect_to([hop.host for hop in ordered], domain)

    async def _implicit_mx(self, domain: str) -> Route:
        route = await self._connect_to([domain], domain)
        if route.permanent:
            return Route(permanent=f"5.1.2 domain {domain} has no mail server "
                                   "(no MX, no address)")
        return route

    async def _connect_to(self, hosts: list[str], domain: str) -> Route:
        """Hops to every address of ``hosts`` (resolved here, with our resolver), in order."""
        hops: list[Hop] = []
        failure: str | None = None
        for host in hosts:
            for rdtype in ("A", "AAAA"):
                try:
                    answer = await self.resolver.resolve(host, rdtype)
                except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
                    continue
                except (dns.exception.DNSException, OSError) as exc:
                    failure = f"4.4.3 address lookup for {host} failed: {exc}"
                    continue
                hops += [Hop(r.address, DEFAULT_PORT, name=host) for r in answer]
        if hops:
            return Route(tuple(hops))
        if failure:
            return Route(temporary=failure)
        return Route(permanent=f"5.4.4 no address for the mail servers of {domain}")
