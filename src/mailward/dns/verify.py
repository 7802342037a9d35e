"""Domain verification: proof that a domain's owner added it.

A domain is verified by a TXT record at its apex holding its token
(``mailward-verification=<token>``, shown in panel, CLI and API), or by MX records that
already name at least one of the operator's ``mx_hosts`` (only the domain's owner can
publish either). DNS is asked through the configured resolvers, as the domain check does.
Until verified, the domain's mail server settings and hosting are not used for mail that
starts inside mailward (see :mod:`mailward.routing.routes`). Operators may mark a domain
verified; a domain an operator adds is verified at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailward.config import Settings
from mailward.directory import Actor, Directory
from mailward.directory.views import DomainView
from mailward.dns.items import lookup_problem
from mailward.dns.lookup import DnsTools
from mailward.dns.model import Outcome
from mailward.net.resolver import absolute_name

__all__ = ["UNVERIFIED_EFFECT", "Verification", "find_proof", "verify_domain", "verify_record"]

UNVERIFIED_EFFECT = (
    "until verified, mail from other customers to this domain (and forwards, notices and "
    "bounces from here) goes to its public MX, not to these mail servers or mailboxes"
)


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of ``domain verify``: the domain as it is now, and what DNS showed."""

    domain: DomainView
    verified: bool
    method: str | None  # txt, mx, operator (None: not verified)
    detail: str  # what was found, or why the proof was not found
    record: str  # the TXT record to publish, as a zone-file line


def verify_record(view: DomainView) -> str:
    """The zone-file line proving control of ``view``'s domain."""
    return f'{view.name}. 3600 IN TXT "{view.verification_txt}"'


async def find_proof(settings: Settings, view: DomainView) -> tuple[str | None, str]:
    """``(method, detail)``: ``txt`` or ``mx`` when DNS proves control, else ``None`` and why."""
    tools = DnsTools(settings)
    apex = absolute_name(view.name)
    txt = await tools.txt(view.name)
    if txt.outcome is Outcome.ANSWER and any(
        r.rdtype == "TXT" and r.name.lower() == apex and r.answer.strip() == view.verification_txt
        for r in txt.records
    ):
        return "txt", f"TXT record {view.verification_txt} found at {apex}"
    ours = {absolute_name(mx.host) for mx in settings.mx_hosts}
    mx = await tools.mx(view.name)
    named = sorted({r.answer.lower() for r in mx.records
                    if r.rdtype == "MX" and r.name.lower() == apex})
    if mx.outcome is Outcome.ANSWER and ours.intersection(named):
        return "mx", f"MX records name our filtering hosts: {', '.join(named)}"
    why_txt = ("no TXT record with the token" if txt.outcome is Outcome.ANSWER
               or txt.outcome is Outcome.NO_ANSWER else f"TXT lookup: {lookup_problem(txt)}")
    why_mx = (f"MX records name {', '.join(named) or 'no host'}, none of ours"
              if mx.outcome is Outcome.ANSWER else f"MX lookup: {lookup_problem(mx)}")
    return None, f"not verified: {why_txt} at {apex}; {why_mx}"


async def verify_domain(directory: Directory, settings: Settings, actor: Actor, name: str, *,
                        operator: bool = False) -> Verification:
    """Check ``actor``'s domain now (or, ``operator``, mark it verified: operators only);
    NotFound if it is not theirs. A domain verified once stays verified."""
    view = await directory.domains.get(actor, name)
    if view.verified:
        return Verification(view, True, view.verified_by, "already verified",
                            verify_record(view))
    if operator:
        view = await directory.domains.mark_verified(actor, view.name, "operator")
        return Verification(view, True, "operator", "marked verified by an operator",
                            verify_record(view))
    method, detail = await find_proof(settings, view)
    if method is None:
        return Verification(view, False, None, detail, verify_record(view))
    view = await directory.domains.mark_verified(actor, view.name, method, detail)
    return Verification(view, True, method, detail, verify_record(view))
