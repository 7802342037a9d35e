"""Figures for an account's dashboard: addresses by kind and list, storage use, the
mailboxes closest to their quota. Read-only, scoped to the caller like every query."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select

from mailward.core.actor import Actor
from mailward.db import Database
from mailward.db.models import Address, AddressKind

__all__ = ["AccountSummary", "NearlyFull", "account_summary"]

NEARLY_FULL = 0.9  # share of the quota from which a mailbox is listed
TOP = 5


@dataclass(frozen=True, slots=True)
class NearlyFull:
    email: str
    used_bytes: int
    quota_bytes: int

    @property
    def percent(self) -> int:
        return min(100, round(100 * self.used_bytes / self.quota_bytes))


@dataclass(frozen=True, slots=True)
class AccountSummary:
    by_kind: dict[str, int]  # every AddressKind value, 0 when none
    by_list: dict[str, int]  # "filter" / "no-filter"
    used_bytes: int
    quota_bytes: int  # the sum of the quotas set (unlimited mailboxes add nothing)
    nearly_full: list[NearlyFull] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())


async def account_summary(db: Database, actor: Actor) -> AccountSummary:
    async with db.session() as session:
        kinds = dict((await session.execute(actor.scope(
            select(Address.kind, func.count()).group_by(Address.kind),
            Address.account_id))).all())
        lists = dict((await session.execute(actor.scope(
            select(Address.list, func.count()).group_by(Address.list),
            Address.account_id))).all())
        used, quota = (await session.execute(actor.scope(
            select(func.coalesce(func.sum(Address.used_bytes), 0),
                   func.coalesce(func.sum(Address.quota_bytes), 0)),
            Address.account_id))).one()
        full = await session.execute(actor.scope(
            select(Address.email, Address.used_bytes, Address.quota_bytes)
            .where(Address.quota_bytes > 0,
                   Address.used_bytes >= Address.quota_bytes * NEARLY_FULL)
            .order_by((Address.used_bytes * 1.0 / Address.quota_bytes).desc(), Address.email)
            .limit(TOP), Address.account_id))
        nearly = [NearlyFull(email, int(u), int(q or 0)) for email, u, q in full]  # q > 0
    return AccountSummary(
        by_kind={kind.value: int(kinds.get(kind, 0)) for kind in AddressKind},
        by_list={key.value: int(count) for key, count in lists.items()},
        used_bytes=int(used), quota_bytes=int(quota or 0),  # coalesced: never None
        nearly_full=nearly)
