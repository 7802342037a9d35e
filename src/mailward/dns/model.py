"""What the DNS tools answer: looked-up records, lookup outcomes, records to publish.

Shared by the lookups (:mod:`mailward.dns.lookup`), the records to paste
(:mod:`mailward.dns.records`) and their CLI and API front ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    """How a lookup ended; only ``ANSWER`` carries records."""

    ANSWER = "answer"
    NXDOMAIN = "nxdomain"  # the name does not exist
    NO_ANSWER = "no-answer"  # the name exists, without records of this type
    TIMEOUT = "timeout"  # no server answered in time
    SERVFAIL = "servfail"  # a server failed or refused (detail says which)


@dataclass(frozen=True)
class Record:
    """One resource record as the lookup pages show it (the columns of docs/procedures.md,
    "DNS lookups")."""

    name: str  # owner name, absolute, with the trailing dot
    ttl: int
    rdclass: str  # "IN"
    rdtype: str  # "MX", "A", "AAAA", "CNAME", "TXT", "NS", "SOA"
    priority: int | None  # MX preference; None for other types
    answer: str  # MX/CNAME/NS target with trailing dot, address, or TXT text joined


@dataclass(frozen=True)
class Lookup:
    """The result of asking for ``rdtype`` records of ``name``."""

    name: str  # as asked, absolute with trailing dot
    rdtype: str
    outcome: Outcome
    records: tuple[Record, ...]  # the answer section: CNAME chain first, then rdtype records
    server: str | None  # "IP:PORT" asked directly, or None for the recursive resolvers
    detail: str = ""  # human explanation for non-answers ("timed out after 5 s", ...)


def outcome_message(lookup: Lookup) -> str:
    """One line for a lookup without an answer: what happened, told apart."""
    name, rdtype = lookup.name, lookup.rdtype
    asked = f" (asked {lookup.server})" if lookup.server else ""
    if lookup.outcome is Outcome.NXDOMAIN:
        what = lookup.detail or f"{name} does not exist"
        return f"no such domain: {what} (NXDOMAIN){asked}"
    if lookup.outcome is Outcome.NO_ANSWER:
        what = lookup.detail or f"{name} exists but has no {rdtype} records"
        return f"no answer: {what}{asked}"
    if lookup.outcome is Outcome.TIMEOUT:
        what = lookup.detail or "no DNS server answered in time"
        return f"timeout: {what} looking up {name} {rdtype}{asked}"
    what = lookup.detail or "the DNS server failed"
    return f"server failure looking up {name} {rdtype}: {what}{asked}"


@dataclass(frozen=True)
class RecordToPaste:
    """A record the customer must publish in their own DNS."""

    name: str  # absolute owner name with trailing dot, e.g. "acme.example."
    ttl: int
    rdtype: str  # "MX", "CNAME", "TXT", "SRV"
    priority: int | None  # MX/SRV priority
    value: str  # as in a zone file after the priority: "mailfilter1.example.net." or '"v=spf1 ..."'
    purpose: str  # one line: why the record is needed
