"""Resellers: a reseller sells the service on and looks after its own customers' accounts
(its users see and manage only those). Operators create resellers and their users."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from mailward.core.actor import Actor
from mailward.core.audit import record
from mailward.core.errors import Conflict, InvalidInput
from mailward.db import Database
from mailward.db.models import Account, Reseller

__all__ = ["ResellerService", "ResellerView"]


@dataclass(frozen=True, slots=True)
class ResellerView:
    id: int
    name: str
    accounts: int
    created_at: datetime


def _name(text: str) -> str:
    name = " ".join(text.split())
    if not 1 <= len(name) <= 100:
        raise InvalidInput("a reseller name is 1-100 characters")
    return name


class ResellerService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, actor: Actor, name: str) -> ResellerView:
        actor.require_operator("create resellers")
        async with self.db.session() as session:
            reseller = Reseller(name=_name(name))
            session.add(reseller)
            record(session, actor, "reseller.create", reseller.name, account_id=None)
            try:
                await session.commit()
            except IntegrityError:
                raise Conflict(f"reseller {name!r} already exists") from None
            return ResellerView(reseller.id, reseller.name, 0, reseller.created_at)

    async def list(self, actor: Actor) -> list[ResellerView]:
        """Every reseller (operators), or the caller's own (a reseller)."""
        actor.require_manager("list resellers")
        query = (select(Reseller, func.count(Account.id))
                 .outerjoin(Account, Account.reseller_id == Reseller.id)
                 .group_by(Reseller.id).order_by(Reseller.name))
        if actor.is_reseller:
            query = query.where(Reseller.id == actor.reseller_id)
        async with self.db.session() as session:
            rows = (await session.execute(query)).all()
        return [ResellerView(r.id, r.name, int(n), r.created_at) for r, n in rows]
