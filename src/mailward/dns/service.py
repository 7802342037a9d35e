"""The records a customer domain must publish, and the check of what it published,
tenant-scoped (CLI ``dns records`` / ``dns check``, API), with the history of its MX
answers.

Builds on :func:`mailward.dns.records.records_to_paste`: looks the domain up as the
actor (another account's domain is "not found", as everywhere), adds its DKIM key, and
renders the records both as zone-file lines and as rows for a registrar's web form.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mailward.config import Settings
from mailward.db.engine import Database
from mailward.db.models import utcnow
from mailward.directory import Actor, Directory
from mailward.directory.facts import domain_facts
from mailward.dkim import DkimRecordView, DkimService
from mailward.dns import history
from mailward.dns.check import (
    DomainCheck,
    Observations,
    PreviousAnswer,
    current_answer,
    dkim_p_tag,
    evaluate,
    gather,
    observed_answers,
)
from mailward.dns.model import RecordToPaste
from mailward.dns.records import records_to_paste, registrar_rows, zone_lines

__all__ = ["DomainRecords", "dkim_key", "domain_check", "domain_records"]


@dataclass(frozen=True, slots=True)
class DomainRecords:
    """Everything to publish for one domain, in three forms."""

    domain: str  # ASCII (A-label) form, without the trailing dot
    hosted: bool  # hosting on: mailboxes here (adds the hosting records)
    records: list[RecordToPaste]
    zone: list[str]  # zone-file lines, each record's purpose as a "; " comment above it
    registrar: list[dict[str, str]]  # host, type, priority, value, ttl


def dkim_key(view: DkimRecordView) -> tuple[str, str] | None:
    """``(selector, public key base64)`` from the published record's ``p=`` tag."""
    key = dkim_p_tag(view.value)
    return (view.selector, key) if key else None


async def domain_records(
    directory: Directory, settings: Settings, actor: Actor, domain: str
) -> DomainRecords:
    """The records ``actor`` must publish for ``domain`` (raises NotFound if not theirs)."""
    view = await directory.domains.get(actor, domain)
    dkim = dkim_key(await DkimService(directory.db).record(actor, view.name))
    records = list(records_to_paste(settings, view.name, hosted=view.hosting, dkim=dkim))
    return DomainRecords(
        domain=view.name,
        hosted=view.hosting,
        records=records,
        zone=list(zone_lines(records)),
        registrar=[dict(row) for row in registrar_rows(records, view.name)],
    )


async def domain_check(
    directory: Directory, settings: Settings, actor: Actor, domain: str, *,
    now: datetime | None = None, hosted: bool | None = None,
) -> DomainCheck:
    """The DNS checklist of ``actor``'s ``domain`` (raises NotFound if not theirs).

    Every MX answer seen is added to the domain's history (:mod:`mailward.dns.history`),
    which gives the previous answer, hence when every cache has the new one. ``now`` is the
    time of the check (tests pass their own); ``hosted`` overrides the domain's hosting
    flag (the cut-over check looks at a domain as filtering-only).
    """
    view = await directory.domains.get(actor, domain)
    if hosted is None:
        hosted = view.hosting
    dkim = None
    if hosted:
        dkim = dkim_key(await DkimService(directory.db).record(actor, view.name))
    seen = await gather(settings, view.name, hosted=hosted, dkim=dkim)
    when = utcnow() if now is None else now
    prior = await _remember(directory.db, settings, view.name, seen, when)
    return evaluate(settings, seen, previous=prior, now=when)


async def _remember(db: Database, settings: Settings, name: str, seen: Observations,
                    now: datetime) -> PreviousAnswer | None:
    """Record the MX answers of ``seen``; the answer before the current one, if known."""
    async with db.session() as session:
        facts = await domain_facts(session, name)
    if facts is None:  # deleted meanwhile
        return None
    domain_id = facts.id
    await history.record(db, domain_id, "MX", observed_answers(seen), now)
    current = current_answer([(mx.host, mx.priority) for mx in settings.mx_hosts], seen)
    if current is None:
        return None
    return await history.previous(db, domain_id, "MX", current)
