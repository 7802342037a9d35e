"""Domain facts the layers above ask the directory for, inside their own transaction:
a caller's domain (or address) by name, whether and how a domain is served, and who owns
which.

Routing, the queue and the DNS tools read these here instead of querying the domain
table themselves; each function takes the caller's open session.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailward.core.actor import Actor
from mailward.core.errors import InvalidInput, NotFound
from mailward.core.normalize import normalize_domain
from mailward.db.models import Address, Domain

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


async def domain_address(session: AsyncSession, domain: Domain, email: str) -> Address | None:
    """The address ``email`` (normalised) of ``domain``, if listed."""
    return await session.scalar(
        select(Address).where(Address.domain_id == domain.id, Address.email == email))
