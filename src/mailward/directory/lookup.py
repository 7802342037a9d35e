"""The one place that decides whether a recipient is accepted and where it goes.

An address on a domain we do not serve is never relayed; an address on one of our domains
is accepted only if it is listed (on either list), whatever its kind. Protocol code asks
here and maps the answer to its reply codes; local delivery asks here too
(:meth:`RecipientLookup.local`), so sub-addressing and destinations are decided once.

Postmaster (RFC 5321 §4.5.1): ``postmaster@`` every served domain, and the bare
``postmaster``, are always accepted. A domain that lists its own ``postmaster@`` address
gets it as usual; otherwise the answer is the configured postmaster address (the caller
delivers there, keeping the written address as ORCPT), on the Do Not Filter list: mail
to the postmaster must reach someone, so the spam filter never refuses it.

Catch-all and alias domains (:mod:`mailward.directory.aliases`): a recipient at a verified
alias domain is answered as the same local part of its target domain; an unlisted
recipient of a domain with a catch-all (after sub-addressing and the postmaster) as the
catch-all address, with its list and destinations. An unverified alias is not ours.

Answers (misses too: a dictionary attack asks for many unlisted names) are cached per
process in the database's lookup caches (:mod:`mailward.db.generation`): a directory change
is seen at once in the process that made it and within a second in every other.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from mailward.core.errors import InvalidInput
from mailward.core.normalize import domain_of, normalize_address, subaddress_base
from mailward.db import Database
from mailward.db.generation import (
    DEFAULT_ENTRIES,
    DEFAULT_SECONDS,
    MISS,
    UNCOUNTED,
    LookupCache,
)
from mailward.db.models import (
    Address,
    AddressKind,
    AddressList,
    Domain,
    DomainAlias,
    DomainCatchAll,
)


class Verdict(enum.StrEnum):
    MALFORMED = "malformed"  # not an address at all
    NOT_OURS = "not-ours"  # the domain is not served here: relaying is refused
    UNLISTED = "unlisted"  # our domain, but no such address on either list
    ACCEPTED = "accepted"


@dataclass(frozen=True, slots=True)
class Recipient:
    """What the MX tier needs to know of one RCPT TO address."""

    address: str
    verdict: Verdict
    list: AddressList | None = None
    kind: AddressKind | None = None
    account_id: int | None = None
    domain_hosting: bool | None = None
    quota_bytes: int | None = None
    used_bytes: int = 0
    address_id: int | None = None
    destinations: tuple[str, ...] = ()  # a forwarder's or auto-cc's targets
    catch_all: str | None = None  # UNLISTED: the domain's catch-all address, if any
    alias_of: str | None = None  # NOT_OURS: a verified alias domain of this domain

    @property
    def domain(self) -> str:
        return domain_of(self.address)

    @property
    def filtered(self) -> bool:
        """Whether the spam filter applies (the Filter list)."""
        return self.list is AddressList.FILTER

    @property
    def over_quota(self) -> bool:
        """A hosted mailbox that is full: new mail must wait (452 4.2.2), not vanish."""
        return (
            bool(self.domain_hosting)
            and self.kind in (AddressKind.MAILBOX, AddressKind.AUTOCC)
            and self.quota_bytes is not None
            and self.used_bytes >= self.quota_bytes
        )


POSTMASTER = "postmaster"


class RecipientLookup:
    def __init__(self, db: Database, delimiter: str = "+", postmaster: str | None = None,
                 *, cache_entries: int = DEFAULT_ENTRIES,
                 cache_seconds: float = DEFAULT_SECONDS) -> None:
        self.db = db
        self.delimiter = delimiter  # sub-addressing: "bob+tag@" is "bob@" unless listed
        self.postmaster = postmaster  # None: postmaster@ only if listed, like any address
        # normalised address: its Recipient; shared by every lookup over this database
        self._cache: LookupCache[str, Recipient] = db.lookups.cache(
            "recipients", cache_entries, cache_seconds)

    async def lookup(self, address: str) -> Recipient:
        """Classify ``address``; one indexed query (more for an unlisted ``bob+tag@``, an
        alias domain or a catch-all) unless cached, no tenant scope (the MX serves all). A
        sub-address is answered as its base address: everything downstream (filter policy,
        spool, delivery) sees ``bob@``. Unlisted postmaster addresses are answered as the
        configured postmaster (module doc), other unlisted ones as the domain's catch-all."""
        if self.postmaster is not None and address.strip().lower() == POSTMASTER:
            return await self._postmaster()
        try:
            normalized = normalize_address(address)
        except InvalidInput:
            return Recipient(address.strip(), Verdict.MALFORMED)
        found = await self._unaliased(normalized)
        base = subaddress_base(found.address, self.delimiter)
        if found.verdict is Verdict.UNLISTED and base is not None:
            via_base = await self._lookup(base)
            if via_base.verdict is Verdict.ACCEPTED:
                return via_base
        if (found.verdict is Verdict.UNLISTED and self.postmaster is not None
                and found.address.partition("@")[0] == POSTMASTER):
            return await self._postmaster()
        return await self._caught(found)

    async def local(self, address: str) -> Recipient:
        """The address mail queued to ``address`` goes to: itself, or the base of a
        sub-address such as a submitted ``bob+tag@`` when only that is listed (``ACCEPTED``
        if either is), else the domain's catch-all. Taken as queued (already normalised);
        no postmaster rewriting here: the MX did that before queueing."""
        found = await self._unaliased(address)
        base = subaddress_base(found.address, self.delimiter)
        if found.verdict is not Verdict.ACCEPTED and base is not None:
            via_base = await self._lookup(base)
            if via_base.verdict is Verdict.ACCEPTED:
                return via_base
        return await self._caught(found)

    async def _unaliased(self, normalized: str) -> Recipient:
        """``normalized``'s answer; at a verified alias domain, that of the same local part
        of its target domain."""
        found = await self._lookup(normalized)
        if found.verdict is Verdict.NOT_OURS and found.alias_of is not None:
            local = normalized.rpartition("@")[0]
            return await self._lookup(f"{local}@{found.alias_of}")
        return found

    async def _caught(self, found: Recipient) -> Recipient:
        """An unlisted recipient's domain catch-all (when it is listed), else ``found``."""
        if found.verdict is not Verdict.UNLISTED or found.catch_all is None:
            return found
        catch = await self._lookup(found.catch_all)
        return catch if catch.verdict is Verdict.ACCEPTED else found

    async def record_usage(self, address_id: int, used_bytes: int) -> None:
        """Keep a mailbox's usage figure (panel, RCPT-time quota check) current. Cached
        answers keep their figure until it crosses the quota (then every process reads
        the address again): only :attr:`Recipient.over_quota` depends on it."""
        same_side = or_(Address.quota_bytes.is_(None),
                        and_(Address.used_bytes >= Address.quota_bytes,
                             Address.quota_bytes <= used_bytes),
                        and_(Address.used_bytes < Address.quota_bytes,
                             Address.quota_bytes > used_bytes))
        async with self.db.session() as session, session.begin():
            quiet = await session.execute(
                update(Address).where(Address.id == address_id, same_side)
                .values(used_bytes=used_bytes).execution_options(**UNCOUNTED))
            if not quiet.rowcount:  # type: ignore[attr-defined]  # crossed (or gone)
                await session.execute(update(Address).where(Address.id == address_id)
                                      .values(used_bytes=used_bytes))

    async def _postmaster(self) -> Recipient:
        """The configured postmaster: accepted unfiltered even if it is not one of ours."""
        assert self.postmaster is not None
        try:
            target = normalize_address(self.postmaster)
        except InvalidInput:
            target = self.postmaster.strip().lower()
        found = await self._lookup(target)
        if found.verdict is Verdict.ACCEPTED:
            return replace(found, list=AddressList.NO_FILTER)
        return Recipient(target, Verdict.ACCEPTED, AddressList.NO_FILTER,
                         account_id=found.account_id, domain_hosting=found.domain_hosting)

    async def _lookup(self, normalized: str) -> Recipient:
        async with self.db.session() as session:
            epoch = await self._cache.fresh(session)
            found = self._cache.get(normalized)
            if found is not MISS:
                return found
            found = await self._query(session, normalized)
        self._cache.put(normalized, found, epoch)
        return found

    @staticmethod
    async def _query(session: AsyncSession, normalized: str) -> Recipient:
        catch = aliased(Address)
        domain = domain_of(normalized)
        query = (
            select(Domain.account_id, Domain.hosting, Address.list, Address.kind,
                   Address.quota_bytes, Address.used_bytes, Address.id, Address.destinations,
                   catch.email)
            .select_from(Domain)
            .outerjoin(Address, and_(Address.domain_id == Domain.id,
                                     Address.email == normalized))
            .outerjoin(DomainCatchAll, DomainCatchAll.domain_id == Domain.id)
            .outerjoin(catch, catch.id == DomainCatchAll.address_id)
            .where(Domain.name == domain)
        )
        row = (await session.execute(query)).first()
        if row is None:
            target = await session.scalar(
                select(Domain.name).join(DomainAlias, DomainAlias.domain_id == Domain.id)
                .where(DomainAlias.alias == domain, DomainAlias.verified_at.is_not(None)))
            return Recipient(normalized, Verdict.NOT_OURS, alias_of=target)
        account_id, hosting, on_list, kind, quota, used, address_id, destinations, caught = row
        if on_list is None:
            return Recipient(normalized, Verdict.UNLISTED, account_id=account_id,
                             domain_hosting=hosting, catch_all=caught)
        targets = tuple(d.strip() for d in (destinations or "").split(",") if d.strip())
        return Recipient(normalized, Verdict.ACCEPTED, on_list, kind, account_id, hosting,
                         quota, used or 0, address_id, targets)
