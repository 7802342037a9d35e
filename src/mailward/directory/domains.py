"""Customer domains: globally unique, owned by one account, hosting on or off, verified
(proof of control: a DNS TXT token, MX records naming our hosts, or an operator) or not.
A name in use as an alias domain (:mod:`mailward.directory.aliases`) is not free."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mailward.core.actor import Actor
from mailward.core.audit import record
from mailward.core.errors import Conflict, InvalidInput, NotFound
from mailward.core.normalize import normalize_domain
from mailward.db import Database
from mailward.db.models import Account, Address, Domain, utcnow
from mailward.directory.aliases import alias_in_use
from mailward.directory.facts import RouteChanged
from mailward.directory.views import DomainView

VERIFY_METHODS = ("txt", "mx", "operator")

DomainAdded = Callable[[AsyncSession, int, int], Awaitable[str]]
"""A step run inside the transaction that adds a domain, once it has an id:
``(session, domain id, account id)``; returns a note for the audit log."""
OnDomainAdded = Callable[[], Awaitable[DomainAdded]]
"""A hook called before a domain is added: it prepares (slow work, such as generating the
domain's DKIM key, runs here, outside the transaction) and returns the
:data:`DomainAdded` step. The app layer passes DKIM's key creation."""


class DomainService:
    def __init__(self, db: Database, on_route_change: RouteChanged | None = None,
                 on_domain_added: OnDomainAdded | None = None) -> None:
        self.db = db
        self.on_route_change = on_route_change  # e.g. retry the domain's deferred mail now
        self.on_domain_added = on_domain_added  # e.g. give the new domain its DKIM key

    async def create(
        self, actor: Actor, name: str, *, account: str, hosting: bool = False
    ) -> DomainView:
        actor.require_manager("add domains")
        domain_name = normalize_domain(name)
        # The hook's step (the domain's DKIM key) runs in the same transaction; its slow
        # preparation (the key's generation) before the transaction starts.
        added = await self.on_domain_added() if self.on_domain_added is not None else None
        async with self.db.session() as session:
            owner = await session.scalar(actor.scope(
                select(Account).where(Account.name == " ".join(account.split())), Account.id))
            if owner is None:
                raise NotFound(f"no account {account!r}")
            if await alias_in_use(session, domain_name):
                raise Conflict(f"domain {domain_name} is already in use (as an alias domain)")
            domain = Domain(name=domain_name, account_id=owner.id, hosting=hosting)
            if actor.is_operator:  # an operator vouches for it; others prove it in DNS
                domain.verified_at, domain.verified_by = utcnow(), "operator"
            session.add(domain)
            try:
                await session.flush()
                note = await added(session, domain.id, owner.id) if added else ""
                record(session, actor, "domain.create", domain_name, account_id=owner.id,
                       detail=f"account {owner.name}, hosting {'on' if hosting else 'off'}, "
                              + (f"{note}, " if note else "")
                              + ("verified (operator)" if actor.is_operator else "unverified"))
                await session.commit()
            except IntegrityError:
                raise Conflict(f"domain {domain_name} is already in use") from None
            return DomainView.of(domain, owner.name)

    async def list(self, actor: Actor, account: str | None = None) -> list[DomainView]:
        async with self.db.session() as session:
            query = select(Domain, Account.name).join(Account).order_by(Domain.name)
            if account is not None:
                query = query.where(Account.name == " ".join(account.split()))
            rows = await session.execute(actor.scope(query, Domain.account_id))
            return [DomainView.of(domain, owner) for domain, owner in rows]

    async def get(self, actor: Actor, name: str) -> DomainView:
        async with self.db.session() as session:
            domain, owner = await self._find(session, actor, name)
            return DomainView.of(domain, owner)

    async def set_hosting(self, actor: Actor, name: str, hosting: bool) -> DomainView:
        actor.require_manager("switch hosting on or off")
        async with self.db.session() as session:
            domain, owner = await self._find(session, actor, name)
            domain.hosting = hosting
            record(session, actor, "domain.hosting", domain.name, account_id=domain.account_id,
                   detail="on" if hosting else "off")
            await self._route_changed(session, domain.name)
            await session.commit()
            return DomainView.of(domain, owner)

    async def mark_verified(self, actor: Actor, name: str, method: str,
                            detail: str = "") -> DomainView:
        """Record proof of control: ``txt`` or ``mx`` (found in DNS, by the caller) or
        ``operator`` (operators only). Audit-logged; a verified domain stays verified."""
        if method not in VERIFY_METHODS:
            raise InvalidInput(f"unknown verification method {method!r}")
        if method == "operator":
            actor.require_operator("mark a domain verified without DNS proof")
        async with self.db.session() as session:
            domain, owner = await self._find(session, actor, name)
            if domain.verified_at is None:
                domain.verified_at, domain.verified_by = utcnow(), method
                record(session, actor, "domain.verify", domain.name,
                       account_id=domain.account_id,
                       detail=f"verified by {method}" + (f": {detail}" if detail else ""))
                await self._route_changed(session, domain.name)
                await session.commit()
            return DomainView.of(domain, owner)

    async def delete(self, actor: Actor, name: str, *, force: bool = False) -> int:
        """Delete a domain; with addresses on it only when ``force`` (returns their count)."""
        actor.require_manager("delete domains")
        async with self.db.session() as session:
            domain, _ = await self._find(session, actor, name)
            count = int(
                await session.scalar(
                    select(func.count()).select_from(Address).where(Address.domain_id == domain.id)
                )
                or 0
            )
            if count and not force:
                raise Conflict(f"domain {domain.name} still has {count} address(es)")
            record(session, actor, "domain.delete", domain.name, account_id=domain.account_id,
                   detail=f"with {count} address(es)")
            await session.delete(domain)
            await session.commit()
            return count

    async def _route_changed(self, session: AsyncSession, domain: str) -> None:
        """The domain's route changed: tell the hook, in the same transaction."""
        if self.on_route_change is not None:
            await self.on_route_change(session, domain)

    async def _find(self, session: AsyncSession, actor: Actor, name: str) -> tuple[Domain, str]:
        try:
            domain_name = normalize_domain(name)
        except Exception:
            raise NotFound(f"no domain {name!r}") from None
        query = select(Domain, Account.name).join(Account).where(Domain.name == domain_name)
        row = (await session.execute(actor.scope(query, Domain.account_id))).first()
        if row is None:
            raise NotFound(f"no domain {domain_name}")
        return row[0], row[1]
