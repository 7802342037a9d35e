"""Address operations: set up, auto-cc, edit, move, delete, search (docs/procedures.md,
"Addresses")."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailward.core.actor import Actor, Q
from mailward.core.audit import record
from mailward.core.errors import Conflict, InvalidInput, NotFound
from mailward.core.normalize import (
    normalize_address,
    normalize_domain,
    parse_destinations,
)
from mailward.core.paging import Page
from mailward.db import Database
from mailward.db.models import Address, AddressKind, AddressList, Domain
from mailward.directory.forwarding import ForwardLimits, check_forwarding
from mailward.directory.passwords import Passwords
from mailward.directory.views import AddressView

MAX_PER_PAGE = 500
MAX_PAGE = 1_000_000


@dataclass(frozen=True, slots=True)
class AddressFilter:
    """Search criteria: substring of the address, plus optional domain/list/kind."""

    search: str = ""
    domain: str | None = None
    list: AddressList | None = None
    kind: AddressKind | None = None

    @property
    def is_empty(self) -> bool:
        return not (self.search.strip() or self.domain or self.list or self.kind)

    def apply(self, query: Q, actor: Actor) -> Q:
        """``query`` narrowed to the caller's accounts and these criteria."""
        query = actor.scope(query, Address.account_id)
        needle = self.search.strip().lower()
        if needle:
            escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(Address.email.like(f"%{escaped}%", escape="\\"))
        if self.domain:
            try:
                domain = normalize_domain(self.domain)
            except InvalidInput:
                domain = self.domain.strip().lower()  # matches nothing, as it should
            query = query.join(Domain, Domain.id == Address.domain_id).where(
                Domain.name == domain
            )
        if self.list is not None:
            query = query.where(Address.list == self.list)
        if self.kind is not None:
            query = query.where(Address.kind == self.kind)
        return query


def _dests(address: Address) -> str:
    """Audit detail: the address's destinations after the change."""
    return f"to {address.destinations or '-'}"


def _described(criteria: AddressFilter) -> str:
    """Audit target of a delete-matching: the search it was."""
    parts = [f"search {criteria.search.strip()!r}"] if criteria.search.strip() else []
    parts += [f"{name} {value}" for name, value in (
        ("domain", criteria.domain), ("list", criteria.list and criteria.list.value),
        ("kind", criteria.kind and criteria.kind.value)) if value]
    return "matching " + (", ".join(parts) or "everything")


def _require_pending(address: Address) -> None:
    if address.kind is not AddressKind.PENDING:
        raise Conflict(f"{address.email} is already set up as {address.kind.value}")


class AddressService:
    def __init__(self, db: Database, passwords: Passwords,
                 limits: ForwardLimits | None = None) -> None:
        self.db = db
        self.passwords = passwords
        self.limits = limits or ForwardLimits.of(passwords.settings)

    # -- reading -------------------------------------------------------------------------

    async def search(
        self, actor: Actor, criteria: AddressFilter = AddressFilter(), *,
        page: int = 1, per_page: int = 50,
    ) -> Page[AddressView]:
        if not 1 <= page <= MAX_PAGE:
            raise InvalidInput(f"page must be between 1 and {MAX_PAGE}")
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise InvalidInput(f"per_page must be between 1 and {MAX_PER_PAGE}")
        async with self.db.session() as session:
            total = await session.scalar(
                criteria.apply(select(func.count(Address.id)), actor)
            )
            rows = await session.scalars(
                criteria.apply(select(Address), actor)
                .order_by(Address.email)
                .limit(per_page)
                .offset((page - 1) * per_page)
            )
            return Page([AddressView.of(a) for a in rows], int(total or 0), page, per_page)

    async def get(self, actor: Actor, email: str) -> AddressView:
        async with self.db.session() as session:
            return AddressView.of(await self._find(session, actor, email))

    # -- set-up and editing --------------------------------------------------------------

    async def setup_mailbox(
        self, actor: Actor, email: str, password: str, repeat: str
    ) -> AddressView:
        """Pending address → mailbox ("POP account"): password typed twice."""

        async def change(address: Address) -> None:
            _require_pending(address)
            await self._set_password_hash(address, password, repeat)
            address.kind = AddressKind.MAILBOX

        return await self._edit(actor, email, change, "address.setup-mailbox")

    async def setup_forwarder(self, actor: Actor, email: str, destinations: str) -> AddressView:
        """Pending address → alias/forwarder with one or more destinations."""

        async def change(address: Address) -> None:
            _require_pending(address)
            address.destinations = parse_destinations(destinations, owner=address.email)
            address.kind = AddressKind.FORWARDER

        return await self._edit(actor, email, change, "address.setup-forwarder", _dests,
                                forwards=True)

    async def set_password(
        self, actor: Actor, email: str, password: str, repeat: str
    ) -> AddressView:
        """Change the password of a mailbox or auto-cc address."""

        async def change(address: Address) -> None:
            if address.kind not in (AddressKind.MAILBOX, AddressKind.AUTOCC):
                raise Conflict(f"{address.email} is {address.kind.value}: it has no mailbox "
                               "password (set it up as a mailbox first)")
            await self._set_password_hash(address, password, repeat)

        return await self._edit(actor, email, change, "address.set-password")

    async def set_destinations(self, actor: Actor, email: str, destinations: str) -> AddressView:
        """Change the destinations of a forwarder or auto-cc address."""

        async def change(address: Address) -> None:
            if address.kind not in (AddressKind.FORWARDER, AddressKind.AUTOCC):
                raise Conflict(f"{address.email} is {address.kind.value}: it has no destinations")
            address.destinations = parse_destinations(destinations, owner=address.email)

        return await self._edit(actor, email, change, "address.set-destinations", _dests,
                                forwards=True)

    async def set_autocc(self, actor: Actor, email: str, destinations: str) -> AddressView:
        """Give a mailbox auto-cc destinations (or change an auto-cc's destinations)."""

        async def change(address: Address) -> None:
            if address.kind is AddressKind.FORWARDER:
                raise Conflict(f"{address.email} is an alias/forwarder: it has no mailbox, "
                               "so it cannot auto-cc")
            if address.kind is AddressKind.PENDING:
                raise Conflict(f"{address.email} needs setting up as a mailbox first")
            address.destinations = parse_destinations(destinations, owner=address.email)
            address.kind = AddressKind.AUTOCC

        return await self._edit(actor, email, change, "address.set-autocc", _dests, forwards=True)

    async def remove_autocc(self, actor: Actor, email: str) -> AddressView:
        """Drop an auto-cc's destinations: it becomes a plain mailbox."""

        async def change(address: Address) -> None:
            if address.kind is not AddressKind.AUTOCC:
                raise Conflict(f"{address.email} is {address.kind.value}, not auto-cc")
            address.destinations = None
            address.kind = AddressKind.MAILBOX

        return await self._edit(actor, email, change, "address.remove-autocc")

    async def set_list(self, actor: Actor, email: str, list_: AddressList) -> AddressView:
        """Move an address to the Filter or the Do Not Filter list."""

        async def change(address: Address) -> None:
            address.list = list_

        return await self._edit(actor, email, change, "address.move",
                                lambda address: f"to {list_.value}")

    async def set_quota(self, actor: Actor, email: str, quota_bytes: int | None) -> AddressView:
        actor.require_operator("change quotas")
        if quota_bytes is not None and quota_bytes < 0:
            raise InvalidInput("quota may not be negative")

        async def change(address: Address) -> None:
            address.quota_bytes = quota_bytes

        return await self._edit(
            actor, email, change, "address.quota",
            lambda address: "unlimited" if quota_bytes is None else f"{quota_bytes} bytes")

    # -- deleting ------------------------------------------------------------------------

    async def delete(self, actor: Actor, emails: Sequence[str]) -> list[str]:
        """Delete the given addresses, all or none; returns the deleted addresses."""
        wanted = []
        for email in emails:
            try:
                wanted.append(normalize_address(email))
            except InvalidInput:
                raise NotFound(f"no address {email.strip()!r}") from None
        wanted = sorted(set(wanted))
        if not wanted:
            raise InvalidInput("no addresses given")
        async with self.db.session() as session:
            query = actor.scope(
                select(Address.email, Address.account_id).where(Address.email.in_(wanted)),
                Address.account_id,
            )
            found = {email: account for email, account in await session.execute(query)}
            missing = [email for email in wanted if email not in found]
            if missing:
                raise NotFound(f"no address {missing[0]!r}"
                               + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
            await session.execute(delete(Address).where(Address.email.in_(wanted)))
            for email in wanted:
                record(session, actor, "address.delete", email, account_id=found[email])
            await session.commit()
            return wanted

    async def delete_matching(self, actor: Actor, criteria: AddressFilter) -> int:
        """Delete every address the search matches ("Check All" + delete).

        An operator must narrow the search: unscoped, it would empty every account.
        """
        if actor.is_operator and criteria.is_empty:
            raise InvalidInput("give a search, domain, list or kind: as an operator, deleting "
                               "every match of an empty search would empty every account")
        async with self.db.session() as session:
            ids = select(Address.id)
            subquery = criteria.apply(ids, actor).scalar_subquery()
            per_account = [tuple(row) for row in await session.execute(
                select(Address.account_id, func.count(Address.id))
                .where(Address.id.in_(subquery)).group_by(Address.account_id))]
            result = cast(CursorResult[Any], await session.execute(
                delete(Address).where(Address.id.in_(subquery))))  # a DML result has rowcount
            for account_id, count in per_account:  # one entry per account it touched
                record(session, actor, "address.delete-matching", _described(criteria),
                       account_id=account_id, detail=f"{count} address(es) deleted")
            await session.commit()
            return int(result.rowcount or 0)

    # -- helpers -------------------------------------------------------------------------

    async def _edit(
        self, actor: Actor, email: str, change: Callable[[Address], Awaitable[None]],
        action: str, detail: Callable[[Address], str] | None = None, *,
        forwards: bool = False,
    ) -> AddressView:
        """Find the caller's address, apply ``change`` (which may refuse), audit, commit;
        ``forwards``: the change touches forwarding, so check the fan-out caps."""
        async with self.db.session() as session:
            address = await self._find(session, actor, email)
            await change(address)
            if forwards:
                await check_forwarding(session, [address.email], self.limits)
            record(session, actor, action, address.email, account_id=address.account_id,
                   detail=detail(address) if detail is not None else "")
            await session.commit()
            return AddressView.of(address)

    async def _set_password_hash(self, address: Address, password: str, repeat: str) -> None:
        self.passwords.check_new(password, repeat, address=address.email)
        address.password_hash = await self.passwords.hash_async(password)

    async def _find(self, session: AsyncSession, actor: Actor, email: str) -> Address:
        try:
            normalized = normalize_address(email)
        except InvalidInput:
            raise NotFound(f"no address {email.strip()!r}") from None
        query = actor.scope(select(Address).where(Address.email == normalized),
                            Address.account_id)
        address = await session.scalar(query)
        if address is None:
            raise NotFound(f"no address {normalized!r}")
        return address
