"""Domain facts the layers above ask the directory for, inside their own transaction:
a caller's domain (or address) by name, whether and how a domain is served, and who owns
which.

DKIM, routing, the queue, the filter, the quarantine and the DNS tools read these here
instead of querying the directory's tables themselves; each function takes the caller's
open session. :func:`domain_facts` (asked for every message routed or signed) is cached per
process (:mod:`mailward.db.generation`), except in a session changing the directory.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailward.core.actor import Actor
from mailward.core.errors import InvalidInput, NotFound
from mailward.core.normalize import normalize_domain
from mailward.db.generation import MISS, caches_of, changing
from mailward.db.models import Address, AddressKind, Domain, Role, User

RouteChanged = Callable[[AsyncSession, str], Awaitable[None]]
"""A hook run inside the transaction that changed a domain's route (verified, hosting
switched, mail servers edited): the app layer passes the queue's "retry now"."""


@dataclass(frozen=True, slots=True)
class DomainFacts:
    """What routing needs of a served domain."""

    id: int
    name: str
    account_id: int
    hosting: bool
    verified: bool


async def scoped_domain(session: AsyncSession, actor: Actor, name: str) -> Domain:
    """``actor``'s domain ``name``; NotFound if it is malformed, missing or not theirs."""
    try:
        domain_name = normalize_domain(name)
    except InvalidInput:
        raise NotFound(f"no domain {name.strip()!r}") from None
    query = actor.scope(select(Domain).where(Domain.name == domain_name), Domain.account_id)
    found = await session.scalar(query)
    if found is None:
        raise NotFound(f"no domain {domain_name}")
    return found


async def domain_facts(session: AsyncSession, name: str) -> DomainFacts | None:
    """The served domain ``name`` (already normalised), or None if it is not ours."""
    caches = caches_of(session)
    if caches is None or changing(session):  # its own change must show
        return await _domain_facts(session, name)
    cache = caches.cache("domain_facts")
    epoch = await cache.fresh(session)
    found = cache.get(name)
    if found is MISS:
        found = await _domain_facts(session, name)
        cache.put(name, found, epoch)
    return found


async def _domain_facts(session: AsyncSession, name: str) -> DomainFacts | None:
    row = (await session.execute(
        select(Domain.id, Domain.name, Domain.account_id, Domain.hosting, Domain.verified_at)
        .where(Domain.name == name)
    )).first()
    if row is None:
        return None
    return DomainFacts(row[0], row[1], row[2], row[3], row[4] is not None)


async def domain_owners(session: AsyncSession, names: Iterable[str], *,
                        verified_only: bool) -> dict[str, int]:
    """The owning account of each of ``names`` we serve (only verified domains when
    ``verified_only``: nobody proved the others are theirs)."""
    rows = await session.execute(
        select(Domain.name, Domain.account_id, Domain.verified_at)
        .where(Domain.name.in_(set(names))))
    return {name: account_id for name, account_id, verified_at in rows.all()
            if not verified_only or verified_at is not None}


async def domain_keys(session: AsyncSession, names: Iterable[str]) -> dict[str, tuple[int, int]]:
    """``{name: (domain id, account id)}`` of those of ``names`` we serve."""
    rows = await session.execute(
        select(Domain.name, Domain.id, Domain.account_id)
        .where(Domain.name.in_(sorted(set(names)))))
    return {name: (domain_id, account_id) for name, domain_id, account_id in rows.all()}


async def address_emails(session: AsyncSession, ids: Iterable[int]) -> dict[int, str]:
    """``{address id: address}`` of those of ``ids`` that exist."""
    rows = await session.execute(
        select(Address.id, Address.email).where(Address.id.in_(sorted(set(ids)))))
    return {address_id: email for address_id, email in rows.all()}


async def address_ids(session: AsyncSession, emails: Iterable[str]) -> dict[str, int]:
    """``{address: address id}`` of those of ``emails`` (normalised) that are listed."""
    rows = await session.execute(
        select(Address.email, Address.id).where(Address.email.in_(sorted(set(emails)))))
    return {email: address_id for email, address_id in rows.all()}


async def address_domain_keys(session: AsyncSession, email: str) -> tuple[int, int] | None:
    """``(domain id, account id)`` of the listed address ``email`` (normalised)."""
    row = (await session.execute(
        select(Address.domain_id, Domain.account_id)
        .join(Domain, Domain.id == Address.domain_id).where(Address.email == email))).first()
    return None if row is None else (row[0], row[1])


async def domain_address(session: AsyncSession, domain: Domain, email: str) -> Address | None:
    """The address ``email`` (normalised) of ``domain``, if listed."""
    return await session.scalar(
        select(Address).where(Address.domain_id == domain.id, Address.email == email))


# -- for dkim and the DNS tools -------------------------------------------------------------


async def domain_by_id(session: AsyncSession, domain_id: int) -> DomainFacts | None:
    """The served domain with id ``domain_id``, or None if there is none (deleted)."""
    row = (await session.execute(
        select(Domain.id, Domain.name, Domain.account_id, Domain.hosting, Domain.verified_at)
        .where(Domain.id == domain_id)
    )).first()
    if row is None:
        return None
    return DomainFacts(row[0], row[1], row[2], row[3], row[4] is not None)


async def all_domain_ids(session: AsyncSession) -> list[int]:
    """The ids of every domain we serve, ascending."""
    return list(await session.scalars(select(Domain.id).order_by(Domain.id)))


async def domain_names(session: AsyncSession, actor: Actor) -> dict[int, str]:
    """``{domain id: name}`` of ``actor``'s domains, in name order."""
    rows = await session.execute(
        actor.scope(select(Domain.id, Domain.name), Domain.account_id).order_by(Domain.name))
    return {domain_id: name for domain_id, name in rows.all()}


async def account_admin_logins(session: AsyncSession, account_id: int) -> list[str]:
    """The logins of account ``account_id``'s admins, sorted (not all are addresses)."""
    return list(await session.scalars(
        select(User.login).where(User.account_id == account_id,
                                 User.role == Role.ACCOUNT_ADMIN).order_by(User.login)))


@dataclass(frozen=True, slots=True)
class AddressFacts:
    """What the cut-over check needs of one address (never its password hash itself)."""

    email: str
    kind: AddressKind
    has_password: bool
    destinations: int  # how many forward / auto-cc destinations


async def address_states(session: AsyncSession, actor: Actor, domain: str
                         ) -> list[AddressFacts]:
    """The addresses of domain ``domain`` (normalised) that ``actor`` may see, by email."""
    rows = await session.execute(actor.scope(
        select(Address.email, Address.kind, Address.password_hash.is_not(None),
               Address.destinations)
        .join(Domain, Domain.id == Address.domain_id).where(Domain.name == domain),
        Address.account_id).order_by(Address.email))
    return [AddressFacts(email, kind, bool(has_password),
                         len([d for d in (destinations or "").split(",") if d.strip()]))
            for email, kind, has_password, destinations in rows.all()]
