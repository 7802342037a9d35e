"""A domain's other ways of receiving mail: its catch-all and its alias domains.

**Catch-all**: one listed address of the domain (a mailbox, auto-cc or forwarder) that
receives mail for the domain's unlisted local parts; off by default. It invites spam
(dictionary attacks: every guessed name is accepted), so the panel warns. The
:class:`~mailward.directory.lookup.RecipientLookup` answers an unlisted recipient as the
catch-all address (its list, its mailbox or forwarding), after sub-addressing and the
postmaster; the MX keeps the address as written as ORCPT. Deleting the address turns the
catch-all off (the row goes with it).

**Alias domains**: ``alias.example`` delivers to the same local parts of ``acme.example``
(``bob@alias.example`` is answered as ``bob@acme.example``; an unlisted one only through
the target's catch-all). An alias is a domain name not in use as a domain or another
alias. Nothing is routed to a domain nobody proved: an alias receives mail only once
verified, by the same proof as a domain (its own TXT token at its apex, or MX records
naming our filtering hosts; an operator may vouch, and an alias an operator adds is
verified at once). Until then the MX refuses its recipients as not ours (5.7.1).

Every change is scoped to the caller's domains and audit-logged in its transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mailward.core.actor import Actor
from mailward.core.audit import record
from mailward.core.errors import Conflict, InvalidInput, NotFound
from mailward.core.normalize import display_domain, normalize_address, normalize_domain
from mailward.db import Database
from mailward.db.models import (
    Account,
    Address,
    AddressKind,
    Domain,
    DomainAlias,
    DomainCatchAll,
    utcnow,
)
from mailward.directory.facts import scoped_domain
from mailward.directory.views import VERIFICATION_PREFIX, DomainView

CATCH_ALL_WARNING = (
    "A catch-all accepts mail for every name at the domain, so it receives the spam of "
    "dictionary attacks (senders guessing names) and typos nobody is told about; unlisted "
    "recipients are no longer refused at the MX.")
CATCH_ALL_KINDS = (AddressKind.MAILBOX, AddressKind.AUTOCC, AddressKind.FORWARDER)
VERIFY_METHODS = ("txt", "mx", "operator")

ProofFinder = Callable[[DomainView], Awaitable[tuple[str | None, str]]]
"""Looks for DNS proof of control of a name (``dns.verify.find_proof`` bound to the
settings): ``(method, detail)``, method ``None`` when there is none."""


@dataclass(frozen=True, slots=True)
class CatchAllView:
    """A domain's catch-all address (``None``: off)."""

    domain: str
    address: str | None
    warning: str = CATCH_ALL_WARNING


@dataclass(frozen=True, slots=True)
class DomainAliasView:
    """An alias domain of ``domain``; ``verification_txt`` is the TXT record to publish at
    its apex (it receives mail only once ``verified``)."""

    alias: str
    display_alias: str
    domain: str
    account: str
    created_at: datetime
    verified: bool = False
    verified_by: str | None = None
    verified_at: datetime | None = None
    verification_txt: str = ""

    @classmethod
    def of(cls, alias: DomainAlias, domain: str, account: str) -> DomainAliasView:
        return cls(alias.alias, display_domain(alias.alias), domain, account, alias.created_at,
                   alias.verified_at is not None, alias.verified_by, alias.verified_at,
                   VERIFICATION_PREFIX + alias.verification_token)

    def proof_view(self) -> DomainView:
        """The alias as the domain whose proof :data:`ProofFinder` looks for."""
        return DomainView(self.alias, self.display_alias, self.account, False, self.created_at,
                          self.verified, self.verified_by, self.verified_at,
                          self.verification_txt)


@dataclass(frozen=True, slots=True)
class AliasVerification:
    """The outcome of verifying an alias: the alias as it is now, and what DNS showed."""

    alias: DomainAliasView
    verified: bool
    method: str | None
    detail: str
    record: str  # the TXT record to publish, as a zone-file line


def _record_line(view: DomainAliasView) -> str:
    return f'{view.alias}. 3600 IN TXT "{view.verification_txt}"'



class AliasService:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- catch-all ----------------------------------------------------------------------

    async def catch_all(self, actor: Actor, domain: str) -> CatchAllView:
        async with self.db.session() as session:
            found = await scoped_domain(session, actor, domain)
            return CatchAllView(found.name, await _catch_all_of(session, found.id))

    async def set_catch_all(self, actor: Actor, domain: str, address: str | None
                            ) -> CatchAllView:
        """Make ``address`` (a listed mailbox, auto-cc or forwarder of ``domain``) the
        domain's catch-all, or turn it off (``None``)."""
        async with self.db.session() as session:
            found = await scoped_domain(session, actor, domain)
            before = await _catch_all_of(session, found.id)
            target: Address | None = None
            if address is not None:
                try:
                    email = normalize_address(address)
                except InvalidInput:
                    raise InvalidInput(f"not an address: {address.strip()!r}") from None
                target = await session.scalar(select(Address).where(
                    Address.email == email, Address.domain_id == found.id))
                if target is None:
                    raise InvalidInput(f"{email} is not an address of {found.name}: a "
                                       "catch-all is one of the domain's own addresses")
                if target.kind not in CATCH_ALL_KINDS:
                    raise Conflict(f"{email} is {target.kind.value}: set it up as a mailbox "
                                   "or forwarder first")
            after = target.email if target is not None else None
            if after == before:
                return CatchAllView(found.name, after)
            await session.execute(delete(DomainCatchAll)
                                  .where(DomainCatchAll.domain_id == found.id))
            if target is not None:
                session.add(DomainCatchAll(domain_id=found.id, address_id=target.id))
            try:
                await session.flush()
            except IntegrityError:  # a concurrent change: the other one won
                raise Conflict(f"the catch-all of {found.name} changed meanwhile; "
                               "try again") from None
            record(session, actor, "domain.catch-all", found.name, account_id=found.account_id,
                   detail=f"to {after}" if after else "off")
            await session.commit()
            return CatchAllView(found.name, after)

    # -- alias domains ------------------------------------------------------------------

    async def aliases(self, actor: Actor, domain: str) -> list[DomainAliasView]:
        async with self.db.session() as session:
            found = await scoped_domain(session, actor, domain)
            owner = await _account_name(session, found.account_id)
            rows = await session.scalars(select(DomainAlias).where(
                DomainAlias.domain_id == found.id).order_by(DomainAlias.alias))
            return [DomainAliasView.of(row, found.name, owner) for row in rows]

    async def add_alias(self, actor: Actor, domain: str, alias: str) -> DomainAliasView:
        """Add ``alias`` (a name used as no domain nor alias) to ``domain``: verified at
        once when an operator adds it, otherwise once its owner proves it in DNS."""
        name = normalize_domain(alias)
        async with self.db.session() as session:
            found = await scoped_domain(session, actor, domain)
            if name == found.name or await session.scalar(
                    select(Domain.id).where(Domain.name == name)) is not None:
                raise Conflict(f"{name} is in use as a domain: an alias is a name used "
                               "nowhere else")
            row = DomainAlias(alias=name, domain_id=found.id)
            if actor.is_operator:
                row.verified_at, row.verified_by = utcnow(), "operator"
            session.add(row)
            try:
                await session.flush()
            except IntegrityError:
                raise Conflict(f"{name} is already in use as an alias") from None
            record(session, actor, "domain.alias-add", found.name, account_id=found.account_id,
                   detail=f"{name}, " + ("verified (operator)" if actor.is_operator
                                         else "unverified"))
            await session.commit()
            return DomainAliasView.of(row, found.name,
                                      await _account_name(session, found.account_id))

    async def remove_alias(self, actor: Actor, alias: str) -> DomainAliasView:
        async with self.db.session() as session:
            row, domain = await self._find_alias(session, actor, alias)
            view = DomainAliasView.of(row, domain.name,
                                      await _account_name(session, domain.account_id))
            await session.delete(row)
            record(session, actor, "domain.alias-delete", domain.name,
                   account_id=domain.account_id, detail=row.alias)
            await session.commit()
            return view

    async def get_alias(self, actor: Actor, alias: str) -> DomainAliasView:
        async with self.db.session() as session:
            row, domain = await self._find_alias(session, actor, alias)
            return DomainAliasView.of(row, domain.name,
                                      await _account_name(session, domain.account_id))

    async def mark_alias_verified(self, actor: Actor, alias: str, method: str,
                                  detail: str = "") -> DomainAliasView:
        """Record proof of control of ``alias`` (as ``DomainService.mark_verified``)."""
        if method not in VERIFY_METHODS:
            raise InvalidInput(f"unknown verification method {method!r}")
        if method == "operator":
            actor.require_operator("mark an alias verified without DNS proof")
        async with self.db.session() as session:
            row, domain = await self._find_alias(session, actor, alias)
            if row.verified_at is None:
                row.verified_at, row.verified_by = utcnow(), method
                record(session, actor, "domain.alias-verify", domain.name,
                       account_id=domain.account_id,
                       detail=f"{row.alias} verified by {method}"
                              + (f": {detail}" if detail else ""))
                await session.commit()
            return DomainAliasView.of(row, domain.name,
                                      await _account_name(session, domain.account_id))

    async def verify_alias(self, actor: Actor, alias: str, find_proof: ProofFinder, *,
                           operator: bool = False) -> AliasVerification:
        """Check DNS now for ``alias``'s proof (or, ``operator``, vouch for it)."""
        view = await self.get_alias(actor, alias)
        if view.verified:
            return AliasVerification(view, True, view.verified_by, "already verified",
                                     _record_line(view))
        if operator:
            view = await self.mark_alias_verified(actor, view.alias, "operator")
            return AliasVerification(view, True, "operator", "marked verified by an operator",
                                     _record_line(view))
        method, detail = await find_proof(view.proof_view())
        if method is None:
            return AliasVerification(view, False, None, detail, _record_line(view))
        view = await self.mark_alias_verified(actor, view.alias, method, detail)
        return AliasVerification(view, True, method, detail, _record_line(view))

    async def _find_alias(self, session: AsyncSession, actor: Actor, alias: str
                          ) -> tuple[DomainAlias, Domain]:
        try:
            name = normalize_domain(alias)
        except InvalidInput:
            raise NotFound(f"no alias {alias.strip()!r}") from None
        row = (await session.execute(actor.scope(
            select(DomainAlias, Domain).join(Domain, Domain.id == DomainAlias.domain_id)
            .where(DomainAlias.alias == name), Domain.account_id))).first()
        if row is None:
            raise NotFound(f"no alias {name}")
        return row[0], row[1]


async def _catch_all_of(session: AsyncSession, domain_id: int) -> str | None:
    return await session.scalar(
        select(Address.email).join(DomainCatchAll, DomainCatchAll.address_id == Address.id)
        .where(DomainCatchAll.domain_id == domain_id))


async def _account_name(session: AsyncSession, account_id: int) -> str:
    return (await session.scalar(select(Account.name).where(Account.id == account_id))) or ""


async def alias_in_use(session: AsyncSession, name: str) -> bool:
    """Whether ``name`` (normalised) is an alias domain (a new domain may not take it)."""
    return await session.scalar(
        select(DomainAlias.id).where(DomainAlias.alias == name)) is not None
