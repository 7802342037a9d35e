"""Scheduled DNS re-checks: every domain's check runs again every
``dns_recheck_interval_seconds``; the result is stored (``domain_dns_status``) and the
account's admins are emailed when the status (pass / warn / fail) changes. Domains not
verified yet are verified first when DNS now proves control (:mod:`mailward.dns.verify`).

Several nodes may run this at once over a shared database: a node claims a due domain
by moving its ``next_check_at`` forward in one conditional UPDATE, and only the node
whose UPDATE matched checks it. A node that dies mid-check just leaves that domain for
the next round. The first check of a domain sets the baseline and sends nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from mailward.config import Settings
from mailward.db.models import DomainDnsStatus, utcnow
from mailward.directory import Actor, Directory, NotFound
from mailward.directory.facts import (
    account_admin_logins,
    all_domain_ids,
    domain_by_id,
    domain_names,
)
from mailward.dns.check import DomainCheck
from mailward.dns.items import CheckItem, Status
from mailward.dns.notice import build_notice
from mailward.dns.service import domain_check
from mailward.dns.verify import verify_domain
from mailward.queue.spool import NewRecipient, Spool

__all__ = ["DnsRechecker", "Recheck", "StoredStatus", "stored_statuses"]

log = logging.getLogger(__name__)

BATCH = 100  # domains claimed per round trip
CONCURRENCY = 4  # domain checks in flight at once (each asks several servers)
TICK_SECONDS = 60.0  # how often due domains are looked for
STATUS_BATCH = 500  # stored statuses read per query (bounded IN lists)


@dataclass(frozen=True, slots=True)
class StoredStatus:
    """A domain's latest scheduled check, as stored."""

    domain: str
    status: Status | None  # None: not checked yet
    problems: list[dict[str, str]]  # the warn/fail items: name, status, message, fix
    checked_at: datetime | None
    changed_at: datetime | None  # when the status last changed
    next_check_at: datetime


@dataclass(frozen=True, slots=True)
class Recheck:
    """What one scheduled check of one domain found."""

    domain: str
    old: Status | None
    new: Status
    notified: tuple[str, ...]  # who was emailed (empty: no change, or no admin address)


class DnsRechecker:
    """Finds due domains, checks them, stores the results and sends the change notices."""

    def __init__(self, directory: Directory, settings: Settings, spool: Spool, *,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.directory = directory
        self.settings = settings
        self.spool = spool  # the change notices go out through the queue
        self.clock = clock
        # 0 turns the schedule off; a round run by hand still needs to move the claim on
        self.interval = timedelta(seconds=max(settings.dns_recheck_interval_seconds, 1))

    async def run(self) -> None:
        """Re-check due domains every :data:`TICK_SECONDS` until cancelled."""
        tick = min(TICK_SECONDS, self.interval.total_seconds())
        while True:
            try:
                await self.run_once()
            except Exception:  # the database may be away for a moment: next tick
                log.exception("scheduled DNS re-check failed")
            await asyncio.sleep(tick)

    async def run_once(self, *, everything: bool = False) -> list[Recheck]:
        """Check every domain due now (claimed by this node); what each check found.

        ``everything`` makes every domain due first (``mailward dns recheck --all``).
        """
        now = self.clock()
        await self._add_new_domains(now)
        if everything:
            async with self.directory.db.session() as session:
                await session.execute(update(DomainDnsStatus).values(next_check_at=now))
                await session.commit()
        results: list[Recheck] = []
        limit = asyncio.Semaphore(CONCURRENCY)

        async def one(domain_id: int) -> None:
            async with limit:
                try:
                    found = await self._recheck(domain_id, now)
                except Exception:
                    log.exception("DNS re-check of domain #%d failed", domain_id)
                    return
                if found is not None:
                    results.append(found)

        seen: set[int] = set()
        while claimed := [d for d in await self._claim(now) if d not in seen]:
            seen.update(claimed)
            await asyncio.gather(*(one(domain_id) for domain_id in claimed))
        return sorted(results, key=lambda r: r.domain)

    async def _add_new_domains(self, now: datetime) -> None:
        """A status row, due now, for every domain without one."""
        async with self.directory.db.session() as session:
            have = set(await session.scalars(select(DomainDnsStatus.domain_id)))
            missing = [d for d in await all_domain_ids(session) if d not in have]
            if not missing:
                return
            try:
                await session.execute(insert(DomainDnsStatus), [
                    {"domain_id": d, "next_check_at": now, "problems": "[]"} for d in missing])
                await session.commit()
            except IntegrityError:  # another node added them first (or one was deleted):
                await session.rollback()  # the next round adds what is still missing

    async def _claim(self, now: datetime) -> list[int]:
        """Take up to :data:`BATCH` due domains: each moved to the next round, if still due."""
        table = DomainDnsStatus
        async with self.directory.db.session() as session:
            due = list(await session.scalars(
                select(table.domain_id).where(table.next_check_at <= now)
                .order_by(table.next_check_at, table.domain_id).limit(BATCH)))
            claimed = []
            for domain_id in due:
                moved = await session.execute(
                    update(table)
                    .where(table.domain_id == domain_id, table.next_check_at <= now)
                    .values(next_check_at=now + self.interval))
                await session.commit()
                if moved.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append(domain_id)
        return claimed

    async def _recheck(self, domain_id: int, now: datetime) -> Recheck | None:
        async with self.directory.db.session() as session:
            domain = await domain_by_id(session, domain_id)
            if domain is None:  # deleted meanwhile (its row went with it)
                return None
            name, account_id = domain.name, domain.account_id
            unverified = not domain.verified
        actor = Actor.operator("dns-recheck")
        if unverified:  # proof of control may have been published since
            try:
                await verify_domain(self.directory, self.settings, actor, name)
            except NotFound:
                return None
            except Exception:
                log.exception("verification of %s failed", name)
        try:
            result = await domain_check(self.directory, self.settings, actor, name, now=now)
        except NotFound:
            return None
        old = await self._store(domain_id, result, now)
        if old is None or old == result.status:
            return Recheck(result.domain, old, result.status, ())
        notified = await self._notify(account_id, result, old, now)
        return Recheck(result.domain, old, result.status, notified)

    async def _store(self, domain_id: int, result: DomainCheck, now: datetime) -> Status | None:
        """Save ``result``; the status it replaces."""
        async with self.directory.db.session() as session:
            row = await session.get(DomainDnsStatus, domain_id)
            if row is None:
                return None
            old: Status | None = row.status  # type: ignore[assignment]
            row.status = result.status
            row.problems = json.dumps([_problem(i) for i in result.items if i.status != "pass"])
            row.checked_at = now
            if old != result.status:
                row.changed_at = now
            await session.commit()
        return old

    async def _notify(self, account_id: int, result: DomainCheck, old: Status,
                      now: datetime) -> tuple[str, ...]:
        """Email the account's admins (those whose login is an address) through the queue."""
        admins = await self._admin_addresses(account_id)
        if not admins:
            log.warning("DNS status of %s changed to %s; its account has no admin with an "
                        "email address to tell", result.domain, result.status)
            return ()
        settings = self.settings
        data = build_notice(
            sender=settings.notice_sender, recipients=admins, domain=result.domain, old=old,
            new=result.status, items=result.items, checked_at=now, node=settings.node_name,
            panel_url=settings.web_url)
        await self.spool.enqueue(
            sender="", recipients=[NewRecipient(a) for a in admins], data=data,
            origin="notice")
        log.info("DNS status of %s: %s → %s; told %s", result.domain, old, result.status,
                 ", ".join(admins))
        return tuple(admins)

    async def _admin_addresses(self, account_id: int) -> list[str]:
        async with self.directory.db.session() as session:
            logins = await account_admin_logins(session, account_id)
        return [login for login in logins if _is_address(login)]


def _is_address(login: str) -> bool:
    try:
        validate_email(login, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def _problem(item: CheckItem) -> dict[str, str]:
    return {"name": item.name, "status": item.status, "message": item.message, "fix": item.fix}


async def stored_statuses(directory: Directory, actor: Actor,
                          domain: str | None = None) -> list[StoredStatus]:
    """The stored scheduled-check results of ``actor``'s domains (or of one of them;
    NotFound if it is not theirs). Domains not checked yet have status ``None``."""
    only = None
    if domain is not None:
        only = (await directory.domains.get(actor, domain)).name  # NotFound unless theirs
    async with directory.db.session() as session:
        names = {domain_id: name for domain_id, name in (await domain_names(session, actor)).items()
                 if only is None or name == only}
        ids = sorted(names)
        rows: dict[int, DomainDnsStatus] = {}
        for start in range(0, len(ids), STATUS_BATCH):
            chunk = ids[start : start + STATUS_BATCH]
            rows.update((row.domain_id, row) for row in await session.scalars(
                select(DomainDnsStatus).where(DomainDnsStatus.domain_id.in_(chunk))))
    return [_stored(name, rows.get(domain_id)) for domain_id, name in names.items()]


def _stored(name: str, row: DomainDnsStatus | None) -> StoredStatus:
    if row is None:  # added since the last round
        return StoredStatus(name, None, [], None, None, utcnow())
    return StoredStatus(name, row.status, json.loads(row.problems),  # type: ignore[arg-type]
                        row.checked_at, row.changed_at, row.next_check_at)
