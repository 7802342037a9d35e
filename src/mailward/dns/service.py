"""The records a customer domain must publish, and the check of what it published,
tenant-scoped (CLI ``dns records`` / ``dns check``, API).

Builds on :func:`mailward.dns.records.records_to_paste`: looks the domain up as the
actor (another account's domain is "not found", as everywhere), adds its DKIM key, and
renders the records both as zone-file lines and as rows for a registrar's web form.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailward.config import Settings
from mailward.directory import Actor, Directory
from mailward.dkim import DkimRecordView, DkimService
from mailward.dns.check import DomainCheck, check_domain, dkim_p_tag
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
    directory: Directory, settings: Settings, actor: Actor, domain: str
) -> DomainCheck:
    """The DNS checklist of ``actor``'s ``domain`` (raises NotFound if not theirs)."""
    view = await directory.domains.get(actor, domain)
    dkim = None
    if view.hosting:
        dkim = dkim_key(await DkimService(directory.db).record(actor, view.name))
    return await check_domain(settings, view.name, hosted=view.hosting, dkim=dkim)
