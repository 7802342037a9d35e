"""Cut-over readiness: is it safe to "throw the switch" to hosting?

An active domain moves in two steps (docs/procedures.md, "Throwing the switch"). First its
MX records point at our filtering hosts while the mail is still delivered to the
customer's own server; then, once
the MX change has propagated everywhere and every address is ready, the domain's mail
server settings are switched to the hosting host (``mailward servers auto-configure``).
This module says whether that second step is safe, and lists what blocks it.

Two halves, kept apart like :mod:`mailward.dns.check`:

* :func:`evaluate` (and the ``*_blockers`` functions) decide from plain values: the
  domain's DNS check as a filtering-only domain, its addresses, its hosting flag and its
  mail server settings; no network, no database;
* :func:`cutover_readiness` gathers those values for ``actor``'s domain, tenant-scoped
  (another account's domain is "not found", as everywhere).

The rules:

* hosting must be switched on for the domain (an operator's decision), else ``hosting``;
* if the mail server settings already point at the hosting host the switch is thrown:
  not a blocker, an ``already-hosted`` warning, and DNS is not asked;
* the MX items of the check must pass (the MX set is exactly our filtering hosts), else
  ``mx`` blockers with the check's fixes;
* the propagation must be complete: every nameserver and resolver answered, and agreed,
  else ``propagation`` blockers;
* every address becomes hosted: a pending one blocks (it needs a password or
  destinations), a mailbox or auto-cc needs a password, a forwarder destinations, else
  ``address`` blockers (the first :data:`MAX_LISTED`, then one line counting the rest).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from mailward.config import Settings
from mailward.db.models import AddressKind
from mailward.directory import Actor, Directory
from mailward.directory.facts import address_states
from mailward.dns.check import CheckItem, DomainCheck
from mailward.dns.service import domain_check
from mailward.routing.servers import ServerService

__all__ = [
    "MAX_LISTED",
    "AddressState",
    "Blocker",
    "Readiness",
    "address_blockers",
    "cutover_readiness",
    "dns_blockers",
    "domain_addresses",
    "evaluate",
    "is_switched",
]

Kind = Literal["hosting", "already-hosted", "servers", "mx", "propagation", "address", "dns"]
MAX_LISTED = 50  # blocking addresses listed one by one; the rest are counted
_MX_ITEMS = ("mx-missing:", "mx-foreign:")
_PROPAGATION_ITEMS = ("propagation", "nameservers", "nameservers-unreachable")
_MX_WARNINGS = ("mx-order", "mx-ttl")


@dataclass(frozen=True)
class Blocker:
    """What stands in the way (or, among the warnings, what to know) and the fix."""

    kind: Kind
    message: str
    fix: str = ""  # one line; empty when there is nothing to do


@dataclass(frozen=True)
class AddressState:
    """What the rules need of one address (never its password hash itself)."""

    email: str
    kind: AddressKind
    has_password: bool
    destinations: int  # how many forward / auto-cc destinations


@dataclass(frozen=True)
class Readiness:
    """Whether ``domain`` can be switched to hosting now."""

    domain: str
    ready: bool  # no blockers (also true once switched: nothing stands in the way)
    switched: bool  # the mail server settings already point at the hosting host
    blockers: list[Blocker]
    warnings: list[Blocker]
    addresses: int  # the domain's addresses, all of which become hosted
    blocked_addresses: int  # of those, the ones not ready (all counted, not only listed)
    checked: datetime  # when this was worked out (UTC)
    check: DomainCheck | None = None  # the DNS check it rests on; None when not asked
    hosting_host: str = ""
    servers: list[str] = field(default_factory=list)  # current mail server hosts


# -- the rules ---------------------------------------------------------------------------------


def _host(name: str) -> str:
    return name.strip().rstrip(".").lower()


def is_switched(servers: Sequence[str], hosting_host: str) -> bool:
    """The mail server settings are exactly the hosting host (what auto-configure sets)."""
    return bool(servers) and all(_host(s) == _host(hosting_host) for s in servers)


def dns_blockers(check: DomainCheck) -> tuple[list[Blocker], list[Blocker]]:
    """``(blockers, warnings)`` from the filtering-only DNS check of the domain."""
    blockers: list[Blocker] = []
    warnings: list[Blocker] = []
    mx_pass = propagation_pass = False
    for item in check.items:
        if item.name == "mx" or item.name.startswith(_MX_ITEMS):
            if item.status == "pass":
                mx_pass = mx_pass or item.name == "mx"
            else:
                blockers.append(_from_item("mx", item))
        elif item.name in _PROPAGATION_ITEMS:
            if item.status == "pass":
                propagation_pass = propagation_pass or item.name == "propagation"
            else:
                blockers.append(_from_item("propagation", item))
        elif item.status != "pass":
            warnings.append(_from_item("mx" if item.name in _MX_WARNINGS else "dns", item))
    if not mx_pass and not any(b.kind == "mx" for b in blockers):
        blockers.append(Blocker("mx", "the MX set could not be confirmed to be exactly our "
                                "filtering hosts", "check again: mailward dns check "
                                f"{check.domain}"))
    if not propagation_pass and not any(b.kind == "propagation" for b in blockers):
        blockers.append(Blocker("propagation", "no server confirmed the MX set, so the "
                                "change cannot be known to have propagated",
                                f"check again: mailward dns check {check.domain}"))
    return blockers, warnings


def _from_item(kind: Kind, item: CheckItem) -> Blocker:
    return Blocker(kind, f"{item.name}: {item.message}", item.fix)


def _address_problem(address: AddressState) -> Blocker | None:
    email = address.email
    if address.kind is AddressKind.PENDING:
        return Blocker("address", f"{email} is pending setup: give it a password or "
                       "destinations", f"mailward address setup {email} --mailbox (or "
                       "--forward DEST1,DEST2)")
    if address.kind in (AddressKind.MAILBOX, AddressKind.AUTOCC) and not address.has_password:
        what = "an auto-cc mailbox" if address.kind is AddressKind.AUTOCC else "a mailbox"
        return Blocker("address", f"{email} is {what} without a password: nobody could "
                       "collect its mail", f"mailward address password {email}")
    if address.kind is AddressKind.FORWARDER and address.destinations <= 0:
        return Blocker("address", f"{email} is a forwarder without destinations: its mail "
                       "would go nowhere", f"mailward address forward {email} DEST1,DEST2")
    return None


def address_blockers(addresses: Sequence[AddressState], *, domain: str = "",
                     limit: int = MAX_LISTED) -> tuple[list[Blocker], int]:
    """``(blockers, how many addresses block)``: the first ``limit`` listed, then a count."""
    problems = [p for a in sorted(addresses, key=lambda a: a.email)
                if (p := _address_problem(a)) is not None]
    listed = problems[:limit]
    rest = len(problems) - len(listed)
    if rest:
        listed.append(Blocker("address", f"and {rest} more address"
                              f"{'es' if rest != 1 else ''} not ready",
                              "list the pending ones: mailward address list "
                              f"{f'--domain {domain} ' if domain else ''}--kind pending"))
    return listed, len(problems)


def evaluate(
    domain: str,
    *,
    hosting: bool,
    servers: Sequence[str],
    hosting_host: str,
    addresses: Sequence[AddressState],
    check: DomainCheck | None,
    now: datetime | None = None,
) -> Readiness:
    """The readiness of ``domain`` from plain values (no network, no database).

    ``check`` is the domain's DNS check as a filtering-only domain; it may be None once
    the domain is switched (DNS is then not asked).
    """
    blockers: list[Blocker] = []
    warnings: list[Blocker] = []
    switched = hosting and is_switched(servers, hosting_host)
    if not hosting:
        blockers.append(Blocker(
            "hosting", f"hosting is off for {domain}: its mail cannot be delivered to the "
            "hosting servers", f"an operator switches it on: mailward domain hosting {domain} on"))
    if switched:
        warnings.append(Blocker(
            "already-hosted", f"already switched: {domain} delivers its mail to the hosting "
            f"servers ({hosting_host})"))
    elif any(_host(s) == _host(hosting_host) for s in servers):
        warnings.append(Blocker(
            "servers", f"the mail server settings mix the hosting host with other servers "
            f"({', '.join(servers)})",
            f"throwing the switch replaces them all: mailward servers auto-configure {domain}"))
    if not switched:
        if check is None:
            blockers.append(Blocker("mx", "DNS was not checked",
                                    f"check it: mailward dns check {domain}"))
        else:
            dns, dns_warnings = dns_blockers(check)
            blockers += dns
            warnings += dns_warnings
    problems, blocked = address_blockers(addresses, domain=domain)
    (warnings if switched else blockers).extend(problems)
    if not addresses:
        warnings.append(Blocker(
            "address", f"{domain} has no addresses: once hosted, mail to it has nowhere to go",
            "add them: mailward address add --list filter"))
    return Readiness(
        domain=domain,
        ready=not blockers,
        switched=switched,
        blockers=blockers,
        warnings=warnings,
        addresses=len(addresses),
        blocked_addresses=blocked,
        checked=now or datetime.now(UTC),
        check=check,
        hosting_host=hosting_host,
        servers=list(servers),
    )


# -- gathering, tenant-scoped ------------------------------------------------------------------


async def domain_addresses(directory: Directory, actor: Actor, domain: str
                           ) -> list[AddressState]:
    """The addresses of ``domain`` (normalised) that ``actor`` may see (the directory's
    scoping)."""
    async with directory.db.session() as session:
        found = await address_states(session, actor, domain)
    return [AddressState(a.email, a.kind, a.has_password, a.destinations) for a in found]


async def cutover_readiness(
    directory: Directory, mail_servers: ServerService, settings: Settings, actor: Actor,
    domain: str,
) -> Readiness:
    """Whether ``actor``'s ``domain`` can be switched to hosting (NotFound if not theirs)."""
    view = await directory.domains.get(actor, domain)
    servers = [s.host for s in await mail_servers.list(actor, view.name)]
    addresses = await domain_addresses(directory, actor, view.name)
    check = None
    if not (view.hosting and is_switched(servers, settings.hosting_host)):
        check = await domain_check(directory, settings, actor, view.name, hosted=False)
    return evaluate(view.name, hosting=view.hosting, servers=servers,
                    hosting_host=settings.hosting_host, addresses=addresses, check=check)
