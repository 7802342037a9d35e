"""Customer domains: globally unique, owned by one account, hosting on or off."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from mailward.db import Database
from mailward.db.models import Account, Address, Domain
from mailward.directory.actor import Actor
from mailward.directory.audit import record
from mailward.directory.errors import Conflict, NotFound
from mailward.directory.normalize import normalize_domain
from mailward.directory.views import DomainView
from mailward.dkim import keys as dkim_keys  # module import: dkim.keys imports directory


class DomainService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self, actor: Actor, name: str, *, account: str, hosting: bool = False
    ) -> DomainView:
        actor.require_manager("add domains")
        domain_name = normalize_domain(name)
        # The domain's DKIM key is made with it, in the same transaction; the CPU-bound
        # generation runs in a thread before the transaction starts.
        keypair = await dkim_keys.new_keypair()
        async with self.db.session() as session:
            owner = await session.scalar(actor.scope(
                select(Account).where(Account.name == " ".join(account.split())), Account.id))
            if owner is None:
                raise NotFound(f"no account {account!r}")
            domain = Domain(name=domain_name, account_id=owner.id, hosting=hosting)
            session.add(domain)
            try:
                await session.flush()
                key = await dkim_keys.DkimService.add_key(session, domain, keypair=keypair)
                record(session, actor, "domain.create", domain_name, account_id=owner.id,
                       detail=f"account {owner.name}, hosting {'on' if hosting else 'off'}, "
                              f"DKIM selector {key.selector}")
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

    async def _find(self, session, actor: Actor, name: str) -> tuple[Domain, str]:  # type: ignore[no-untyped-def]
        try:
            domain_name = normalize_domain(name)
        except Exception:
            raise NotFound(f"no domain {name!r}") from None
        query = select(Domain, Account.name).join(Account).where(Domain.name == domain_name)
        row = (await session.execute(actor.scope(query, Domain.account_id))).first()
        if row is None:
            raise NotFound(f"no domain {domain_name}")
        return row[0], row[1]
