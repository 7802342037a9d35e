"""A mailbox's address book: contacts (several addresses, the first the primary), groups,
suggestions for the compose form, and import/export (:mod:`mailward.webmail.vcard`).

Every query is scoped to the mailbox (its lower-case address): another mailbox's contact
or group id is "not found". Addresses are validated and stored as ``normalize_address``
makes them. Re-importing a file updates what it imported before: a card matches a contact
by UID, else by primary address (else, having none, by name).
"""

from __future__ import annotations

import asyncio
import builtins
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.utils import getaddresses

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mailward.core.errors import Conflict, InvalidInput, NotFound
from mailward.core.normalize import normalize_address
from mailward.db import Database
from mailward.db.models import (
    WebmailContact,
    WebmailContactEmail,
    WebmailContactGroup,
    WebmailContactGroupMember,
)
from mailward.webmail.vcard import (
    MAX_EMAILS,
    MAX_PHONES,
    Card,
    CleanContact,
    ContactIn,
    ValidCard,
    clean_contact,
    group_name,
    read_file,
    to_csv,
    to_vcard,
    union,
)

__all__ = ["Contact", "ContactGroup", "ContactIn", "Contacts", "ImportIssue", "ImportResult"]

MAX_CONTACTS = 5000  # per mailbox
MAX_GROUPS = 500
MAX_IMPORT_BYTES = 5 * 1024 * 1024
MAX_IMPORT_CARDS = MAX_CONTACTS
MAX_USED = 500  # addresses one ``used`` call counts
FORMATS = {"vcard3": "text/vcard; charset=utf-8", "vcard4": "text/vcard; charset=utf-8",
           "csv": "text/csv; charset=utf-8"}


@dataclass(frozen=True, slots=True)
class Contact:
    id: int
    name: str
    emails: list[str]
    phones: list[str]
    organisation: str
    note: str
    groups: list[str]  # names of its groups
    used: int
    uid: str | None

    @property
    def primary(self) -> str | None:
        return self.emails[0] if self.emails else None

    @property
    def display(self) -> str:
        return self.name or self.primary or ""


@dataclass(frozen=True, slots=True)
class ContactGroup:
    id: int
    name: str
    members: list[int]  # contact ids


@dataclass(frozen=True, slots=True)
class ImportIssue:
    """A card (or CSV row), numbered from 1, that was not imported, and why."""

    index: int
    reason: str

    def __str__(self) -> str:
        return f"#{self.index}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ImportResult:
    added: int
    updated: int
    skipped: int  # empty cards, and cards already the same as their contact
    errors: list[ImportIssue]


@dataclass(slots=True, eq=False)
class _Entry:
    """A contact during an import: its row (new ones have no id until the flush)."""

    row: WebmailContact
    emails: list[str]
    groups: set[str] = field(default_factory=set)  # group keys it is in
    emails_changed: bool = False


class Contacts:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- contacts --------------------------------------------------------------------------

    async def list(self, mailbox: str, q: str | None = None,
                   group: int | None = None) -> list[Contact]:
        """The mailbox's contacts by name; ``q`` matches name, address or organisation
        (anywhere, case-insensitively); ``group`` keeps one group's members."""
        query = select(WebmailContact).where(WebmailContact.mailbox == mailbox)
        if q and q.strip():
            needle = "%" + _like(q.strip().casefold()) + "%"
            query = query.where(or_(
                WebmailContact.name_key.like(needle, escape="\\"),
                func.lower(WebmailContact.organisation).like(needle, escape="\\"),
                WebmailContact.id.in_(select(WebmailContactEmail.contact_id).where(
                    WebmailContactEmail.mailbox == mailbox,
                    WebmailContactEmail.email.like(needle, escape="\\")))))
        if group is not None:
            query = query.where(WebmailContact.id.in_(
                select(WebmailContactGroupMember.contact_id)
                .join(WebmailContactGroup)
                .where(WebmailContactGroup.mailbox == mailbox,
                       WebmailContactGroup.id == group)))
        async with self.db.session() as session:
            rows = list(await session.scalars(
                query.order_by(WebmailContact.name_key, WebmailContact.id)))
            return await _views(session, mailbox, rows)

    async def get(self, mailbox: str, contact_id: int) -> Contact:
        async with self.db.session() as session:
            row = await _contact(session, mailbox, contact_id)
            return (await _views(session, mailbox, [row]))[0]

    async def add(self, mailbox: str, contact: ContactIn) -> Contact:
        clean = clean_contact(contact)
        async with self.db.session() as session:
            if await _count(session, mailbox) >= MAX_CONTACTS:
                raise InvalidInput(f"the address book is full ({MAX_CONTACTS} contacts)")
            row = _new_row(mailbox, clean, None)
            session.add(row)
            await _flush(session)
            _add_emails(session, mailbox, row.id, clean.emails)
            await _commit(session)
            return (await _views(session, mailbox, [row]))[0]

    async def update(self, mailbox: str, contact_id: int, contact: ContactIn) -> Contact:
        clean = clean_contact(contact)
        async with self.db.session() as session:
            row = await _contact(session, mailbox, contact_id)
            _apply(row, clean)
            await session.execute(delete(WebmailContactEmail).where(
                WebmailContactEmail.contact_id == row.id))
            _add_emails(session, mailbox, row.id, clean.emails)
            await _commit(session)
            return (await _views(session, mailbox, [row]))[0]

    async def delete(self, mailbox: str, contact_id: int) -> None:
        async with self.db.session() as session:
            await session.delete(await _contact(session, mailbox, contact_id))
            await session.commit()

    async def set_contact_groups(self, mailbox: str, contact_id: int,
                                 group_ids: Iterable[int]) -> Contact:
        """Put a contact in exactly these groups (of the same mailbox)."""
        async with self.db.session() as session:
            row = await _contact(session, mailbox, contact_id)
            wanted = set(group_ids)
            found = set(await session.scalars(select(WebmailContactGroup.id).where(
                WebmailContactGroup.mailbox == mailbox, WebmailContactGroup.id.in_(wanted))))
            if found != wanted:
                raise NotFound("no such group")
            await session.execute(delete(WebmailContactGroupMember).where(
                WebmailContactGroupMember.contact_id == row.id))
            session.add_all(WebmailContactGroupMember(group_id=g, contact_id=row.id)
                            for g in sorted(wanted))
            await session.commit()
            return (await _views(session, mailbox, [row]))[0]

    # -- groups ----------------------------------------------------------------------------

    async def groups(self, mailbox: str) -> builtins.list[ContactGroup]:
        async with self.db.session() as session:
            groups = list(await session.scalars(select(WebmailContactGroup).where(
                WebmailContactGroup.mailbox == mailbox).order_by(WebmailContactGroup.name_key)))
            members: dict[int, list[int]] = {g.id: [] for g in groups}
            for group_id, contact_id in await session.execute(
                    select(WebmailContactGroupMember.group_id,
                           WebmailContactGroupMember.contact_id)
                    .where(WebmailContactGroupMember.group_id.in_(members))
                    .order_by(WebmailContactGroupMember.contact_id)):
                members[group_id].append(contact_id)
            return [ContactGroup(g.id, g.name, members[g.id]) for g in groups]

    async def add_group(self, mailbox: str, name: str) -> ContactGroup:
        name = group_name(name)
        async with self.db.session() as session:
            count = await session.scalar(select(func.count()).select_from(
                WebmailContactGroup).where(WebmailContactGroup.mailbox == mailbox)) or 0
            if count >= MAX_GROUPS:
                raise InvalidInput(f"at most {MAX_GROUPS} groups")
            group = WebmailContactGroup(mailbox=mailbox, name=name, name_key=name.casefold())
            session.add(group)
            await _commit(session, f"there is already a group {name!r}")
            return ContactGroup(group.id, group.name, [])

    async def rename_group(self, mailbox: str, group_id: int, name: str) -> ContactGroup:
        name = group_name(name)
        async with self.db.session() as session:
            group = await _group(session, mailbox, group_id)
            group.name, group.name_key = name, name.casefold()
            await _commit(session, f"there is already a group {name!r}")
        return next(g for g in await self.groups(mailbox) if g.id == group_id)

    async def set_members(self, mailbox: str, group_id: int,
                          contact_ids: Iterable[int]) -> ContactGroup:
        """Make the group's members exactly these contacts (of the same mailbox)."""
        wanted = set(contact_ids)
        async with self.db.session() as session:
            group = await _group(session, mailbox, group_id)
            found = set(await session.scalars(select(WebmailContact.id).where(
                WebmailContact.mailbox == mailbox, WebmailContact.id.in_(wanted))))
            if found != wanted:
                raise NotFound("no such contact")
            await session.execute(delete(WebmailContactGroupMember).where(
                WebmailContactGroupMember.group_id == group.id))
            session.add_all(WebmailContactGroupMember(group_id=group.id, contact_id=c)
                            for c in sorted(wanted))
            await session.commit()
            return ContactGroup(group.id, group.name, sorted(wanted))

    async def delete_group(self, mailbox: str, group_id: int) -> None:
        """Delete a group; its contacts stay."""
        async with self.db.session() as session:
            await session.delete(await _group(session, mailbox, group_id))
            await session.commit()

    # -- compose form ----------------------------------------------------------------------

    async def suggest(self, mailbox: str, prefix: str,
                      limit: int = 10) -> builtins.list[tuple[str, str]]:
        """``(name, address)`` for contacts whose name (or a word of it) or address starts
        with ``prefix``, most used first, then by name; a matching group gives ``(group
        name, "Name <a@x>, b@y")`` with its members' primary addresses."""
        key = " ".join(prefix.split()).casefold()
        if not key or limit < 1:
            return []
        starts, word = _like(key) + "%", "% " + _like(key) + "%"
        async with self.db.session() as session:
            by_email = select(WebmailContactEmail.contact_id).where(
                WebmailContactEmail.mailbox == mailbox,
                WebmailContactEmail.email.like(starts, escape="\\"))
            contacts = list(await session.execute(
                select(WebmailContact.id, WebmailContact.name, WebmailContact.name_key,
                       WebmailContact.used)
                .where(WebmailContact.mailbox == mailbox, or_(
                    WebmailContact.name_key.like(starts, escape="\\"),
                    WebmailContact.name_key.like(word, escape="\\"),
                    WebmailContact.id.in_(by_email)))
                .order_by(WebmailContact.used.desc(), WebmailContact.name_key,
                          WebmailContact.id)
                .limit(limit)))
            emails = await _emails(session, mailbox, [c.id for c in contacts])
            ranked: builtins.list[tuple[int, str, tuple[str, str]]] = []
            for contact in contacts:
                addresses = emails.get(contact.id, [])
                name_hit = contact.name_key.startswith(key) or f" {key}" in contact.name_key
                chosen = [a for i, a in enumerate(addresses)
                          if a.startswith(key) or (name_hit and i == 0)]
                ranked.extend((-contact.used, contact.name_key, (contact.name, a))
                              for a in chosen)
            groups = list(await session.execute(
                select(WebmailContactGroup.id, WebmailContactGroup.name,
                       WebmailContactGroup.name_key)
                .where(WebmailContactGroup.mailbox == mailbox, or_(
                    WebmailContactGroup.name_key.like(starts, escape="\\"),
                    WebmailContactGroup.name_key.like(word, escape="\\")))
                .order_by(WebmailContactGroup.name_key).limit(limit)))
            for group in groups:
                members = list(await session.execute(
                    select(WebmailContact.name, WebmailContactEmail.email)
                    .join(WebmailContactGroupMember,
                          WebmailContactGroupMember.contact_id == WebmailContact.id)
                    .join(WebmailContactEmail,
                          WebmailContactEmail.contact_id == WebmailContact.id)
                    .where(WebmailContactGroupMember.group_id == group.id,
                           WebmailContact.mailbox == mailbox,
                           WebmailContactEmail.position == 0)
                    .order_by(WebmailContact.name_key, WebmailContact.id)
                    .limit(MAX_CONTACTS)))
                if members:
                    joined = ", ".join(mailbox_text(n, e) for n, e in members)
                    ranked.append((0, group.name_key, (group.name, joined)))
        ranked.sort(key=lambda item: (item[0], item[1]))
        return [item for _, _, item in ranked][:limit]

    async def used(self, mailbox: str, addresses: Iterable[str]) -> None:
        """Count one more mail to each contact having one of ``addresses`` (bare or
        ``Name <a@x>``; others are ignored): the outbox calls it after sending."""
        keys: set[str] = set()
        for _, address in getaddresses([a for a in addresses][:MAX_USED]):
            try:
                keys.add(normalize_address(address))
            except InvalidInput:
                continue
        if not keys:
            return
        async with self.db.session() as session:
            await session.execute(
                update(WebmailContact)
                .where(WebmailContact.mailbox == mailbox, WebmailContact.id.in_(
                    select(WebmailContactEmail.contact_id).where(
                        WebmailContactEmail.mailbox == mailbox,
                        WebmailContactEmail.email.in_(keys))))
                .values(used=WebmailContact.used + 1)
                .execution_options(synchronize_session=False))
            await session.commit()

    # -- files -----------------------------------------------------------------------------

    async def import_(self, mailbox: str, data: bytes, filename: str) -> ImportResult:
        """Import a vCard (2.1, 3.0, 4.0) or CSV file: bad cards are reported by number,
        the others added or, when already there, updated; CATEGORIES become groups."""
        if len(data) > MAX_IMPORT_BYTES:
            raise InvalidInput(f"the file is larger than {MAX_IMPORT_BYTES // 2**20} MB")
        # parsing and validating thousands of cards is CPU work: not on the event loop
        read, more = await asyncio.to_thread(read_file, data, filename,
                                                MAX_IMPORT_CARDS)
        async with self.db.session() as session:
            run = _Import(session, mailbox)
            await run.load()
            for index, card in read:
                run.take(index, card)
            if more:
                run.errors.append(ImportIssue(MAX_IMPORT_CARDS + 1,
                                              f"only the first {MAX_IMPORT_CARDS} are read"))
            await run.save()
            await _commit(session)
            return ImportResult(run.added, run.updated, run.skipped, run.errors)

    async def export(self, mailbox: str, fmt: str) -> tuple[str, bytes]:
        """The address book as ``vcard3``, ``vcard4`` or ``csv``: content type and bytes."""
        if fmt not in FORMATS:
            raise InvalidInput("export as vcard3, vcard4 or csv")
        cards = [Card(c.name, list(c.emails), list(c.phones), c.organisation, c.note,
                      list(c.groups), c.uid) for c in await self.list(mailbox)]
        if fmt == "csv":
            text = await asyncio.to_thread(to_csv, cards)
        else:
            text = await asyncio.to_thread(to_vcard, cards, "3.0" if fmt == "vcard3" else "4.0")
        return FORMATS[fmt], text.encode()


class _Import:
    """One import's state inside its transaction: what the mailbox has, what changes."""

    def __init__(self, session: AsyncSession, mailbox: str) -> None:
        self.session, self.mailbox = session, mailbox
        self.entries: list[_Entry] = []
        self.by_uid: dict[str, _Entry] = {}
        self.by_email: dict[str, _Entry] = {}
        self.by_name: dict[str, _Entry] = {}  # contacts without addresses
        self.groups: dict[str, WebmailContactGroup] = {}
        self.added = self.updated = self.skipped = 0
        self.errors: list[ImportIssue] = []
        self.full = False

    async def load(self) -> None:
        rows = list(await self.session.scalars(select(WebmailContact).where(
            WebmailContact.mailbox == self.mailbox).order_by(WebmailContact.id)))
        emails = await _emails(self.session, self.mailbox, None)
        memberships = await _memberships(self.session, self.mailbox)
        for group in await self.session.scalars(select(WebmailContactGroup).where(
                WebmailContactGroup.mailbox == self.mailbox)):
            self.groups[group.name_key] = group
        for row in rows:
            entry = _Entry(row, emails.get(row.id, []),
                           {n.casefold() for n in memberships.get(row.id, [])})
            self.entries.append(entry)
            self._index(entry)

    def _index(self, entry: _Entry) -> None:
        if entry.row.uid:
            self.by_uid.setdefault(entry.row.uid, entry)
        if entry.emails:
            self.by_email.setdefault(entry.emails[0], entry)
        else:
            self.by_name.setdefault(entry.row.name_key, entry)

    def take(self, index: int, card: ValidCard | str | None) -> None:
        if card is None:
            self.skipped += 1
            return
        if isinstance(card, str):
            self.errors.append(ImportIssue(index, card))
            return
        clean, groups, uid = card
        entry = (self.by_uid.get(uid) if uid else None) or (
            self.by_email.get(clean.emails[0]) if clean.emails
            else self.by_name.get(clean.name.casefold()))
        if entry is None:
            if len(self.entries) >= MAX_CONTACTS:
                self.errors.append(ImportIssue(
                    index, f"the address book is full ({MAX_CONTACTS} contacts)"))
                return
            entry = _Entry(_new_row(self.mailbox, clean, uid), clean.emails,
                           emails_changed=True)
            self.session.add(entry.row)
            self.entries.append(entry)
            self.added += 1
        else:
            changed = self._merge(entry, clean)
            if not self._group_keys(groups) <= entry.groups:
                changed = True
            if entry.row.id is not None:  # (a card repeated in the file counts once)
                if changed:
                    self.updated += 1
                else:
                    self.skipped += 1
        for name in groups:
            if self._group(name, index) is not None:
                entry.groups.add(name.casefold())
        self._index(entry)

    @staticmethod
    def _group_keys(names: list[str]) -> set[str]:
        return {name.casefold() for name in names}

    def _merge(self, entry: _Entry, clean: CleanContact) -> bool:
        """The card's values over the contact's (addresses and phones it lacks kept)."""
        row = entry.row
        old = (row.name, row.organisation, row.note, row.phones, list(entry.emails))
        merged = CleanContact(
            clean.name or row.name,
            union(clean.emails, entry.emails)[:MAX_EMAILS],
            union(clean.phones, json.loads(row.phones))[:MAX_PHONES],
            clean.organisation or row.organisation, clean.note or row.note)
        _apply(row, merged)
        if merged.emails != entry.emails:
            entry.emails, entry.emails_changed = merged.emails, True
        return old != (row.name, row.organisation, row.note, row.phones, entry.emails)

    def _group(self, name: str, index: int) -> WebmailContactGroup | None:
        key = name.casefold()
        if key not in self.groups:
            if len(self.groups) >= MAX_GROUPS:
                self.errors.append(ImportIssue(index, f"group {name!r} not made: at most "
                                                      f"{MAX_GROUPS} groups"))
                return None
            self.groups[key] = WebmailContactGroup(mailbox=self.mailbox, name=name,
                                                   name_key=key)
            self.session.add(self.groups[key])
        return self.groups[key]

    async def save(self) -> None:
        """Write the new and changed contacts, their addresses and group memberships."""
        await _flush(self.session)
        changed = [e for e in self.entries if e.emails_changed]
        if changed:
            await self.session.execute(delete(WebmailContactEmail).where(
                WebmailContactEmail.contact_id.in_([e.row.id for e in changed])))
        for entry in changed:
            _add_emails(self.session, self.mailbox, entry.row.id, entry.emails)
        have = set(tuple(pair) for pair in await self.session.execute(
            select(WebmailContactGroupMember.group_id, WebmailContactGroupMember.contact_id)
            .join(WebmailContactGroup)
            .where(WebmailContactGroup.mailbox == self.mailbox)))
        for entry in self.entries:
            for key in entry.groups:
                pair = (self.groups[key].id, entry.row.id)
                if pair not in have:
                    self.session.add(WebmailContactGroupMember(group_id=pair[0],
                                                               contact_id=pair[1]))
                    have.add(pair)


# -- helpers --------------------------------------------------------------------------------


def mailbox_text(name: str, address: str) -> str:
    """``Name <a@x>`` for a To field (quoted when the name has specials), or ``a@x``."""
    if not name or name == address:
        return address
    if any(c in name for c in '",;<>@()[]:\\.'):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{address}>"


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _new_row(mailbox: str, clean: CleanContact, uid: str | None) -> WebmailContact:
    row = WebmailContact(mailbox=mailbox, uid=uid or f"urn:uuid:{uuid.uuid4()}", used=0)
    _apply(row, clean)
    return row


def _apply(row: WebmailContact, clean: CleanContact) -> None:
    row.name, row.name_key = clean.name, clean.name.casefold()
    row.organisation, row.note = clean.organisation, clean.note
    row.phones = json.dumps(clean.phones, ensure_ascii=False)


def _add_emails(session: AsyncSession, mailbox: str, contact_id: int,
                emails: Sequence[str]) -> None:
    session.add_all(WebmailContactEmail(contact_id=contact_id, mailbox=mailbox, email=email,
                                        position=position)
                    for position, email in enumerate(emails))


async def _count(session: AsyncSession, mailbox: str) -> int:
    return await session.scalar(select(func.count()).select_from(WebmailContact).where(
        WebmailContact.mailbox == mailbox)) or 0


async def _contact(session: AsyncSession, mailbox: str, contact_id: int) -> WebmailContact:
    row = await session.scalar(select(WebmailContact).where(
        WebmailContact.mailbox == mailbox, WebmailContact.id == contact_id))
    if row is None:
        raise NotFound("no such contact")
    return row


async def _group(session: AsyncSession, mailbox: str, group_id: int) -> WebmailContactGroup:
    group = await session.scalar(select(WebmailContactGroup).where(
        WebmailContactGroup.mailbox == mailbox, WebmailContactGroup.id == group_id))
    if group is None:
        raise NotFound("no such group")
    return group


async def _emails(session: AsyncSession, mailbox: str,
                  ids: Sequence[int] | None) -> dict[int, list[str]]:
    """Each contact's addresses, primary first (``ids`` None: all the mailbox's)."""
    query = select(WebmailContactEmail.contact_id, WebmailContactEmail.email).where(
        WebmailContactEmail.mailbox == mailbox)
    if ids is not None:
        if not ids:
            return {}
        query = query.where(WebmailContactEmail.contact_id.in_(ids))
    out: dict[int, list[str]] = {}
    for contact_id, email in await session.execute(
            query.order_by(WebmailContactEmail.contact_id, WebmailContactEmail.position)):
        out.setdefault(contact_id, []).append(email)
    return out


async def _memberships(session: AsyncSession, mailbox: str,
                       ids: Sequence[int] | None = None) -> dict[int, list[str]]:
    """The names of each contact's groups (``ids`` None: all the mailbox's contacts)."""
    query = (select(WebmailContactGroupMember.contact_id, WebmailContactGroup.name)
             .join(WebmailContactGroup).where(WebmailContactGroup.mailbox == mailbox))
    if ids is not None:
        query = query.where(WebmailContactGroupMember.contact_id.in_(ids))
    out: dict[int, list[str]] = {}
    for contact_id, name in await session.execute(
            query.order_by(WebmailContactGroup.name_key)):
        out.setdefault(contact_id, []).append(name)
    return out


async def _views(session: AsyncSession, mailbox: str,
                 rows: Sequence[WebmailContact]) -> list[Contact]:
    ids = None if len(rows) > 50 else [r.id for r in rows]  # many: read all, no long IN
    emails = await _emails(session, mailbox, ids)
    groups = await _memberships(session, mailbox, ids)
    return [Contact(r.id, r.name, emails.get(r.id, []), json.loads(r.phones), r.organisation,
                    r.note, groups.get(r.id, []), r.used, r.uid) for r in rows]


async def _flush(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        await session.rollback()
        raise _integrity(exc, None) from None


async def _commit(session: AsyncSession, conflict: str | None = None) -> None:
    """Commit; an unknown mailbox is ``NotFound``, a clash ``Conflict`` (``conflict``)."""
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise _integrity(exc, conflict) from None


def _integrity(exc: IntegrityError, conflict: str | None) -> Exception:
    if "foreign key" in str(exc.orig).lower():  # the address is not (or no longer) there
        return NotFound("no such mailbox")
    return Conflict(conflict or "changed by another request at the same time: try again")
