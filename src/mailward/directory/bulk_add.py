"""The bulk "Add Addresses" operation: every line to ONE list, a result per line.

Result categories (docs/procedures.md, "Bulk add"):

* ``invalid``   — not an address, not in the caller's domains, or bad data (with reason);
* ``added``     — new address, put on the chosen list;
* ``updated``   — it was on the other list and has been moved (its data applied);
* ``unchanged`` — it was already on the chosen list (its data applied).
"""

from __future__ import annotations

import asyncio
import builtins
import enum
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import cast

from sqlalchemy import Table, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from mailward.core.actor import Actor
from mailward.core.audit import record
from mailward.core.errors import InvalidInput
from mailward.core.normalize import domain_of
from mailward.db import Database
from mailward.db.models import Address, AddressKind, AddressList, Domain
from mailward.directory.bulk import BulkLine, parse_bulk, single_line
from mailward.directory.forwarding import ForwardLimits, check_forwarding
from mailward.directory.passwords import Passwords

CHUNK = 1000


class LineStatus(enum.StrEnum):
    INVALID = "invalid"
    ADDED = "added"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class LineResult:
    line: int
    input: str
    status: LineStatus
    address: str | None = None
    kind: AddressKind | None = None
    reason: str | None = None
    warning: str | None = None


@dataclass(slots=True)
class BulkResult:
    list: AddressList
    results: builtins.list[LineResult] = field(default_factory=builtins.list)

    def of(self, status: LineStatus) -> builtins.list[LineResult]:
        return [r for r in self.results if r.status is status]

    @property
    def counts(self) -> dict[str, int]:
        counts = {status.value: 0 for status in LineStatus}
        for result in self.results:
            counts[result.status.value] += 1
        counts["warnings"] = sum(1 for r in self.results if r.warning)
        return counts


@dataclass(slots=True)
class _Known:
    """What the batch knows of an address that already exists (or was added earlier)."""

    id: int
    list: AddressList
    kind: AddressKind


@dataclass(slots=True)
class _Screened:
    """A chunk after the checks that need no database, its password hashes under way."""

    chunk: builtins.list[BulkLine]
    usable: builtins.list[BulkLine]
    invalid: dict[int, LineResult]
    hashes: asyncio.Future[dict[int, str]]


class BulkAddService:
    def __init__(self, db: Database, passwords: Passwords, default_quota_bytes: int | None,
                 limits: ForwardLimits | None = None):
        self.db = db
        self.passwords = passwords
        self.default_quota_bytes = default_quota_bytes
        self.limits = limits or ForwardLimits.of(passwords.settings)

    async def add_lines(
        self,
        actor: Actor,
        lines: Iterable[str] | str,
        list_: AddressList,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> BulkResult:
        """Apply a bulk submission in one transaction; ``progress`` gets lines done."""
        return await self._apply(actor, parse_bulk(lines), list_, progress, single=False)

    async def add_one(
        self,
        actor: Actor,
        email: str,
        list_: AddressList,
        *,
        password: str | None = None,
        destinations: str | None = None,
    ) -> LineResult:
        """Add (or move) a single address: the same rules as one bulk line."""
        line = single_line(email, password=password, destinations=destinations)
        result = await self._apply(actor, iter([line]), list_, None, single=True)
        return result.results[0]

    async def _apply(
        self,
        actor: Actor,
        parsed: Iterator[BulkLine],
        list_: AddressList,
        progress: Callable[[int], None] | None,
        *,
        single: bool,
    ) -> BulkResult:
        """Write chunk after chunk; the next chunk's passwords hash while this one writes."""
        result = BulkResult(list_)
        async with self.db.session() as session:
            domains = await self._domains(session, actor)
            known: dict[str, _Known] = {}
            ahead: _Screened | None = None
            screened: _Screened | None = None
            try:
                while True:
                    chunk = list(islice(parsed, CHUNK))
                    screened = self._screen(chunk, domains) if chunk else None
                    if ahead is not None:
                        result.results.extend(
                            await self._write(session, ahead, list_, domains, known)
                        )
                        if progress is not None:
                            progress(ahead.chunk[-1].number)
                    if screened is None:
                        break
                    ahead = screened
            except BaseException:
                for pending in (ahead, screened):
                    if pending is not None:
                        pending.hashes.cancel()
                raise
            forwarding = sorted({r.address for r in result.results if r.address and r.kind in (
                AddressKind.FORWARDER, AddressKind.AUTOCC)})
            if forwarding:
                try:
                    await check_forwarding(session, forwarding, self.limits)
                except InvalidInput as exc:
                    await session.rollback()
                    if single:
                        line = result.results[0]
                        return BulkResult(list_, [LineResult(
                            line.line, line.input, LineStatus.INVALID, line.address,
                            line.kind, reason=str(exc))])
                    raise InvalidInput(f"nothing was added: {exc}") from None
            _audit(session, actor, result, domains, single=single)
            await session.commit()
        return result

    async def _domains(self, session: AsyncSession, actor: Actor) -> dict[str, tuple[int, int]]:
        """The caller's domains: name → (domain id, account id)."""
        rows = await session.execute(
            actor.scope(select(Domain.name, Domain.id, Domain.account_id), Domain.account_id)
        )
        return {name: (domain_id, account_id) for name, domain_id, account_id in rows}

    def _screen(
        self, chunk: builtins.list[BulkLine], domains: dict[str, tuple[int, int]]
    ) -> _Screened:
        """Check lines that need no database, and start hashing the usable passwords."""
        usable: builtins.list[BulkLine] = []
        invalid: dict[int, LineResult] = {}
        for line in chunk:
            reason = line.error or self._reject_reason(line, domains)
            if reason:
                invalid[line.number] = LineResult(
                    line.number,
                    line.shown,
                    LineStatus.INVALID,
                    line.address,
                    reason=reason,
                    warning=line.warning,
                )
            else:
                usable.append(line)
        return _Screened(
            chunk, usable, invalid, asyncio.ensure_future(self._hash_passwords(usable))
        )

    async def _write(
        self,
        session: AsyncSession,
        screened: _Screened,
        list_: AddressList,
        domains: dict[str, tuple[int, int]],
        known: dict[str, _Known],
    ) -> builtins.list[LineResult]:
        chunk, usable, out = screened.chunk, screened.usable, screened.invalid
        hashes = await screened.hashes
        now = datetime.now(UTC)
        # Insert first sightings straight away (ON CONFLICT DO NOTHING): no lookup of rows
        # this transaction just wrote, whose query plans go bad on stale statistics.
        first: dict[str, BulkLine] = {}
        for line in usable:
            if line.address not in known and line.address not in first:
                first[line.address] = line  # type: ignore[index]
        rows = [self._new_row(ln, list_, hashes, domains, now) for ln in first.values()]
        added = await self._insert_missing(session, rows)
        for email, address_id in added.items():
            known[email] = _Known(address_id, list_, first[email].kind)  # type: ignore[arg-type]
        await self._load_existing(session, [e for e in first if e not in added], known)

        updates: builtins.list[dict] = []
        for line in usable:
            assert line.address is not None and line.kind is not None
            email = line.address
            if first.get(email) is line and email in added:
                out[line.number] = LineResult(
                    line.number,
                    line.shown,
                    LineStatus.ADDED,
                    email,
                    line.kind,
                    warning=line.warning,
                )
                continue
            existing = known[email]
            new_kind, reason = _merged_kind(existing.kind, line.kind)
            if reason:
                out[line.number] = LineResult(
                    line.number, line.shown, LineStatus.INVALID, email, existing.kind, reason=reason
                )
                continue
            status = LineStatus.UNCHANGED if existing.list is list_ else LineStatus.UPDATED
            changes: dict = {"list": list_, "kind": new_kind}
            if line.number in hashes:
                changes["password_hash"] = hashes[line.number]
            if line.destinations is not None:
                changes["destinations"] = line.destinations
            updates.append({"id": existing.id, "updated_at": now, **changes})
            warning = line.warning
            if new_kind is AddressKind.AUTOCC and line.kind is AddressKind.FORWARDER:
                warning = "already a mailbox: kept it and made it auto-cc to these destinations"
            existing.list, existing.kind = list_, new_kind
            out[line.number] = LineResult(
                line.number, line.shown, status, email, new_kind, warning=warning
            )

        for same_keys in _group_by_keys(updates):
            await session.execute(update(Address), same_keys)
        return [out[line.number] for line in chunk]

    def _new_row(
        self,
        line: BulkLine,
        list_: AddressList,
        hashes: dict[int, str],
        domains: dict[str, tuple[int, int]],
        now: datetime,
    ) -> dict:
        assert line.address is not None
        domain_id, account_id = domains[domain_of(line.address)]
        return {
            "email": line.address,
            "domain_id": domain_id,
            "account_id": account_id,
            "list": list_,
            "kind": line.kind,
            "password_hash": hashes.get(line.number),
            "destinations": line.destinations,
            "quota_bytes": self.default_quota_bytes,
            "used_bytes": 0,
            "created_at": now,
            "updated_at": now,
        }

    async def _insert_missing(
        self, session: AsyncSession, rows: builtins.list[dict]
    ) -> dict[str, int]:
        """Insert rows whose address does not exist yet; returns email → new id."""
        if not rows:
            return {}
        dialect_insert = (pg_insert if session.get_bind().dialect.name == "postgresql"
                          else sqlite_insert)
        table = cast(Table, Address.__table__)  # declared as a FromClause; it is the Table
        statement = (
            dialect_insert(table)
            .on_conflict_do_nothing(index_elements=["email"])
            .returning(table.c.email, table.c.id)
        )
        result = await session.execute(statement, rows)
        return {email: address_id for email, address_id in result}

    async def _load_existing(
        self, session: AsyncSession, emails: builtins.list[str], known: dict[str, _Known]
    ) -> None:
        if not emails:
            return
        rows = await session.execute(
            select(Address.email, Address.id, Address.list, Address.kind).where(
                Address.email.in_(emails)
            )
        )
        for email, address_id, on_list, kind in rows:
            known[email] = _Known(address_id, on_list, kind)

    def _reject_reason(self, line: BulkLine, domains: dict[str, tuple[int, int]]) -> str | None:
        assert line.address is not None
        if domain_of(line.address) not in domains:
            return f"{domain_of(line.address)} is not one of your domains"
        if line.password is not None:
            try:
                self.passwords.check_strength(line.password, address=line.address)
            except InvalidInput as exc:
                return str(exc)
        return None

    async def _hash_passwords(self, lines: builtins.list[BulkLine]) -> dict[int, str]:
        with_password = [ln for ln in lines if ln.password is not None]
        hashed = await asyncio.gather(
            *(self.passwords.hash_async(ln.password) for ln in with_password if ln.password)
        )
        return {ln.number: h for ln, h in zip(with_password, hashed, strict=True)}


MAX_TARGET_DOMAINS = 5


def _audit(session: AsyncSession, actor: Actor, result: BulkResult,
           domains: dict[str, tuple[int, int]], *, single: bool) -> None:
    """One audit entry for the whole submission (none when every line was refused)."""
    applied = [r for r in result.results if r.status is not LineStatus.INVALID]
    if not applied:
        return
    touched = sorted({domain_of(r.address) for r in applied if r.address})
    accounts = {domains[name][1] for name in touched if name in domains}
    account_id = actor.account_id if actor.account_id is not None else (
        next(iter(accounts)) if len(accounts) == 1 else None)
    if single:
        line = applied[0]
        kind = line.kind.value if line.kind else "-"
        record(session, actor, "address.add", line.address or line.input,
               account_id=account_id, detail=f"{line.status.value} ({kind}) on {result.list.value}")
        return
    target = ", ".join(touched)
    if len(touched) > MAX_TARGET_DOMAINS or len(target) > 320:
        target = f"{len(result.results)} lines"
    counts = ", ".join(f"{name} {count}" for name, count in result.counts.items())
    record(session, actor, "address.bulk-add", target, account_id=account_id,
           detail=f"{len(result.results)} lines to {result.list.value}: {counts}")


def _merged_kind(current: AddressKind, wanted: AddressKind) -> tuple[AddressKind, str | None]:
    """The kind an existing address takes when a line brings new data; or a refusal."""
    if wanted is AddressKind.PENDING:
        return current, None
    if wanted is AddressKind.MAILBOX:
        if current is AddressKind.FORWARDER:
            return current, (
                "is an alias/forwarder: giving it a password would drop its "
                "forwarding; set it up again explicitly"
            )
        return (AddressKind.MAILBOX if current is AddressKind.PENDING else current), None
    # wanted is FORWARDER: a mailbox keeps its mail and gains destinations (auto-cc)
    if current in (AddressKind.MAILBOX, AddressKind.AUTOCC):
        return AddressKind.AUTOCC, None
    return AddressKind.FORWARDER, None


def _group_by_keys(rows: builtins.list[dict]) -> Iterator[builtins.list[dict]]:
    """Group update rows by their key set (executemany needs uniform parameters)."""
    groups: dict[tuple[str, ...], builtins.list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    yield from groups.values()
