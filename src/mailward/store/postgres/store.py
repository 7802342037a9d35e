"""``PostgresStore``: the :class:`~mailward.store.interface.MailStore` on PostgreSQL.

Several hosting nodes can serve the same mailboxes. Tables (see ``mailward.db.models``)::

    store_mailboxes  address (unique), usage_bytes, last_uidvalidity
    store_folders    mailbox_id, name (unique per mailbox), uidvalidity, uidnext
    store_messages   folder_id, uid (unique per folder), size, flags, internal_date, body
    store_subscriptions  mailbox_id, name (unique per mailbox)

Every change runs in one transaction that first locks the mailbox row
(``SELECT ... FOR UPDATE``): quota is checked against ``usage_bytes`` and the usage is
updated in the same transaction as the insert or delete, so it is exact across nodes.
UIDs come from ``UPDATE store_folders SET uidnext = uidnext + n ... RETURNING``, so
concurrent deliveries never collide. A change is committed before its call returns.
Flags are stored as their canonical spellings joined by single spaces.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import BigInteger, delete, func, insert, literal, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from mailward.db.engine import Database
from mailward.db.models import StoreFolder, StoreMailbox, StoreMessage, utcnow
from mailward.store.interface import (
    DELETED,
    INBOX,
    SEEN,
    FolderExists,
    FolderHasChildren,
    FolderStatus,
    InvalidFolderName,
    MessageInfo,
    NoSuchFolder,
    NoSuchMessage,
    QuotaExceeded,
    Stored,
)
from mailward.store.maildir.flags import normalize_flags
from mailward.store.maildir.names import (
    is_inferior,
    normalize_folder,
    split_mailbox,
    superiors,
)
from mailward.store.postgres import subscriptions as subs

MAX_UID = 2**63 - 1

_MOVE = text(
    "UPDATE store_messages SET folder_id = :target, uid = :new "
    "WHERE folder_id = :source AND uid = :old"
)
_COPY = text(
    "INSERT INTO store_messages (folder_id, uid, size, flags, internal_date, body) "
    "SELECT :target, :new, size, flags, internal_date, body FROM store_messages "
    "WHERE folder_id = :source AND uid = :old"
)


@dataclass(frozen=True, slots=True)
class _Box:
    id: int
    usage: int


@dataclass(frozen=True, slots=True)
class _Folder:
    id: int
    uidvalidity: int


class PostgresStore:
    """Mailboxes as rows of ``store_*`` tables in the PostgreSQL database of ``db``."""

    def __init__(self, db: Database) -> None:
        if db.engine.dialect.name != "postgresql":
            raise ValueError("PostgresStore needs a PostgreSQL database")
        self.db = db

    @asynccontextmanager
    async def _write(self, mailbox: str) -> AsyncIterator[tuple[AsyncConnection, _Box]]:
        """A transaction holding the mailbox row lock (creating the mailbox if needed)."""
        split_mailbox(mailbox)
        async with self.db.engine.begin() as conn:
            yield conn, await _lock_mailbox(conn, mailbox)

    async def _box_id(self, mailbox: str) -> int:
        """The mailbox's id for reading, creating its storage (with INBOX) on first use."""
        split_mailbox(mailbox)
        async with self.db.engine.connect() as conn:
            box_id = (
                await conn.execute(select(StoreMailbox.id).where(StoreMailbox.address == mailbox))
            ).scalar()
        if box_id is not None:
            return int(box_id)
        async with self._write(mailbox) as (_conn, box):
            return box.id

    # -- delivery ------------------------------------------------------------------

    async def deliver(
        self,
        mailbox: str,
        data: bytes,
        *,
        folder: str = INBOX,
        flags: frozenset[str] = frozenset(),
        quota_bytes: int | None = None,
        internal_date: datetime | None = None,
    ) -> Stored:
        """Store ``data``; committed (durable) before returning."""
        split_mailbox(mailbox)
        name = normalize_folder(folder)
        wanted = normalize_flags(flags)
        if quota_bytes is not None and quota_bytes < 0:
            raise ValueError("quota_bytes must be None (unlimited) or >= 0")
        data = bytes(data)
        size = len(data)
        when = utcnow() if internal_date is None else _aware(internal_date)
        async with self._write(mailbox) as (conn, box):
            target = await _folder(conn, box.id, name, mailbox)
            _check_quota(mailbox, box.usage, size, quota_bytes)
            uid = await _allocate(conn, target.id, 1)
            await conn.execute(
                insert(StoreMessage).values(
                    folder_id=target.id,
                    uid=uid,
                    size=size,
                    flags=_flags_text(wanted),
                    internal_date=when,
                    body=data,
                )
            )
            await _add_usage(conn, box.id, size)
        return Stored(folder=name, uid=uid, size=size, uidvalidity=target.uidvalidity)

    async def usage(self, mailbox: str) -> int:
        split_mailbox(mailbox)
        async with self.db.engine.connect() as conn:
            used = (
                await conn.execute(
                    select(StoreMailbox.usage_bytes).where(StoreMailbox.address == mailbox)
                )
            ).scalar()
        return int(used or 0)

    # -- folders -------------------------------------------------------------------

    async def folders(self, mailbox: str) -> list[FolderStatus]:
        box_id = await self._box_id(mailbox)
        async with self.db.engine.connect() as conn:
            found = await _statuses(conn, box_id)
        return sorted(found, key=lambda s: (s.name != INBOX, s.name))

    async def folder_status(self, mailbox: str, folder: str) -> FolderStatus:
        name = normalize_folder(folder)
        box_id = await self._box_id(mailbox)
        async with self.db.engine.connect() as conn:
            found = await _statuses(conn, box_id, name)
        if not found:
            raise NoSuchFolder(f"folder {name!r} does not exist in {mailbox}")
        return found[0]

    async def create_folder(self, mailbox: str, folder: str) -> None:
        name = normalize_folder(folder)
        async with self._write(mailbox) as (conn, box):
            existing = await _names(conn, box.id)
            if name in existing:
                raise FolderExists(f"folder {name!r} already exists in {mailbox}")
            for parent in superiors(name):
                if parent not in existing:
                    await _insert_folder(conn, box.id, parent)
            await _insert_folder(conn, box.id, name)

    async def delete_folder(self, mailbox: str, folder: str) -> None:
        name = normalize_folder(folder)
        if name == INBOX:
            raise InvalidFolderName("INBOX cannot be deleted")
        async with self._write(mailbox) as (conn, box):
            existing = await _names(conn, box.id)
            if name not in existing:
                raise NoSuchFolder(f"folder {name!r} does not exist in {mailbox}")
            children = sorted(f for f in existing if is_inferior(f, name))
            if children:
                raise FolderHasChildren(
                    f"folder {name!r} has sub-folders ({', '.join(children[:3])}); "
                    "delete them first"
                )
            target = await _folder(conn, box.id, name, mailbox)
            size = (
                await conn.execute(
                    select(func.coalesce(func.sum(StoreMessage.size), 0)).where(
                        StoreMessage.folder_id == target.id
                    )
                )
            ).scalar_one()
            await conn.execute(delete(StoreFolder).where(StoreFolder.id == target.id))
            await _add_usage(conn, box.id, -int(size))

    async def rename_folder(self, mailbox: str, folder: str, new_name: str) -> None:
        """Rename with inferiors; each renamed folder gets a new UIDVALIDITY."""
        old, new = normalize_folder(folder), normalize_folder(new_name)
        if old == INBOX:
            raise InvalidFolderName("renaming INBOX is not supported")
        if new == old or is_inferior(new, old):
            raise InvalidFolderName(f"cannot rename {old!r} to {new!r} (under itself)")
        async with self._write(mailbox) as (conn, box):
            existing = await _names(conn, box.id)
            if old not in existing:
                raise NoSuchFolder(f"folder {old!r} does not exist in {mailbox}")
            if new in existing:
                raise FolderExists(f"folder {new!r} already exists in {mailbox}")
            moving = [old, *sorted(f for f in existing if is_inferior(f, old))]
            targets = {f: new + f[len(old) :] for f in moving}
            clash = [t for t in targets.values() if t in existing]
            if clash:
                raise FolderExists(f"folder {clash[0]!r} already exists in {mailbox}")
            for parent in superiors(new):
                if parent not in existing:
                    await _insert_folder(conn, box.id, parent)
            for source, target in targets.items():
                uidvalidity = await _next_uidvalidity(conn, box.id)
                await conn.execute(
                    update(StoreFolder)
                    .where(StoreFolder.mailbox_id == box.id, StoreFolder.name == source)
                    .values(name=target, uidvalidity=uidvalidity)
                )
            await subs.rename_subscriptions(conn, box.id, old, new)

    # -- subscriptions -------------------------------------------------------------

    async def subscriptions(self, mailbox: str) -> list[str]:
        split_mailbox(mailbox)
        async with self.db.engine.connect() as conn:
            return await subs.list_subscriptions(conn, mailbox)

    async def subscribe(self, mailbox: str, folder: str) -> None:
        name = normalize_folder(folder)
        async with self._write(mailbox) as (conn, box):
            await subs.add_subscriptions(conn, box.id, [name])

    async def unsubscribe(self, mailbox: str, folder: str) -> None:
        name = normalize_folder(folder)
        async with self._write(mailbox) as (conn, box):
            await subs.remove_subscription(conn, box.id, name)

    # -- messages ------------------------------------------------------------------

    async def messages(self, mailbox: str, folder: str) -> list[MessageInfo]:
        name = normalize_folder(folder)
        box_id = await self._box_id(mailbox)
        async with self.db.engine.connect() as conn:
            source = await _folder(conn, box_id, name, mailbox)
            rows = await conn.execute(
                select(
                    StoreMessage.uid,
                    StoreMessage.size,
                    StoreMessage.flags,
                    StoreMessage.internal_date,
                )
                .where(StoreMessage.folder_id == source.id)
                .order_by(StoreMessage.uid)
            )
            return [
                MessageInfo(
                    uid=int(row.uid),
                    size=int(row.size),
                    flags=_flags_set(row.flags),
                    internal_date=row.internal_date,
                )
                for row in rows
            ]

    async def fetch(self, mailbox: str, folder: str, uid: int) -> bytes:
        name = normalize_folder(folder)
        box_id = await self._box_id(mailbox)
        async with self.db.engine.connect() as conn:
            source = await _folder(conn, box_id, name, mailbox)
            _check_uid(uid, name)
            body = (
                await conn.execute(
                    select(StoreMessage.body).where(
                        StoreMessage.folder_id == source.id, StoreMessage.uid == uid
                    )
                )
            ).scalar()
        if body is None:
            raise NoSuchMessage(f"no message with UID {uid} in {name!r}")
        return bytes(body)

    async def fetch_many(self, mailbox: str, folder: str, uids: Iterable[int]) -> dict[int, bytes]:
        name = normalize_folder(folder)
        wanted = sorted({uid for uid in uids if 0 < uid <= MAX_UID})
        box_id = await self._box_id(mailbox)
        async with self.db.engine.connect() as conn:
            source = await _folder(conn, box_id, name, mailbox)
            if not wanted:
                return {}
            rows = await conn.execute(
                select(StoreMessage.uid, StoreMessage.body).where(
                    StoreMessage.folder_id == source.id, StoreMessage.uid.in_(wanted)
                )
            )
            return {int(uid): bytes(body) for uid, body in rows}

    async def set_flags(
        self, mailbox: str, folder: str, uid: int, flags: Iterable[str]
    ) -> frozenset[str]:
        name = normalize_folder(folder)
        wanted = normalize_flags(flags)
        async with self._write(mailbox) as (conn, box):
            source = await _folder(conn, box.id, name, mailbox)
            _check_uid(uid, name)
            changed = (
                await conn.execute(
                    update(StoreMessage)
                    .where(StoreMessage.folder_id == source.id, StoreMessage.uid == uid)
                    .values(flags=_flags_text(wanted))
                    .returning(StoreMessage.id)
                )
            ).scalar()
            if changed is None:
                raise NoSuchMessage(f"no message with UID {uid} in {name!r}")
        return wanted

    async def expunge(
        self, mailbox: str, folder: str, uids: Iterable[int] | None = None
    ) -> list[int]:
        name = normalize_folder(folder)
        chosen = None if uids is None else _valid_uids(uids)
        async with self._write(mailbox) as (conn, box):
            source = await _folder(conn, box.id, name, mailbox)
            if chosen is not None and not chosen:
                return []
            statement = delete(StoreMessage).where(
                StoreMessage.folder_id == source.id,
                func.strpos(StoreMessage.flags, DELETED) > 0,
            )
            if chosen is not None:
                statement = statement.where(StoreMessage.uid.in_(chosen))
            rows = (
                await conn.execute(statement.returning(StoreMessage.uid, StoreMessage.size))
            ).all()
            await _add_usage(conn, box.id, -sum(int(row.size) for row in rows))
        return sorted(int(row.uid) for row in rows)

    async def copy(
        self,
        mailbox: str,
        folder: str,
        uids: Iterable[int],
        target_folder: str,
        *,
        quota_bytes: int | None = None,
    ) -> dict[int, int]:
        return await self._transfer(
            mailbox, folder, uids, target_folder, move=False, quota_bytes=quota_bytes
        )

    async def move(
        self, mailbox: str, folder: str, uids: Iterable[int], target_folder: str
    ) -> dict[int, int]:
        return await self._transfer(mailbox, folder, uids, target_folder, move=True)

    async def _transfer(
        self,
        mailbox: str,
        folder: str,
        uids: Iterable[int],
        target_folder: str,
        *,
        move: bool,
        quota_bytes: int | None = None,
    ) -> dict[int, int]:
        """Copy or move messages to ``target_folder``; return old UID → new UID."""
        source_name, target_name = normalize_folder(folder), normalize_folder(target_folder)
        chosen = _valid_uids(uids)
        async with self._write(mailbox) as (conn, box):
            source = await _folder(conn, box.id, source_name, mailbox)
            target = await _folder(conn, box.id, target_name, mailbox)
            if not chosen:
                return {}
            rows = (
                await conn.execute(
                    select(StoreMessage.uid, StoreMessage.size)
                    .where(StoreMessage.folder_id == source.id, StoreMessage.uid.in_(chosen))
                    .order_by(StoreMessage.uid)
                )
            ).all()
            if not rows:
                return {}
            total = sum(int(row.size) for row in rows)
            if not move:
                _check_quota(mailbox, box.usage, total, quota_bytes)
            first = await _allocate(conn, target.id, len(rows))
            mapping = {int(row.uid): first + i for i, row in enumerate(rows)}
            params = [
                {"source": source.id, "target": target.id, "old": old, "new": new}
                for old, new in mapping.items()
            ]
            await conn.execute(_MOVE if move else _COPY, params)
            if not move:
                await _add_usage(conn, box.id, total)
        return mapping

    async def delete_mailbox(self, mailbox: str) -> None:
        split_mailbox(mailbox)
        async with self.db.engine.begin() as conn:
            await conn.execute(delete(StoreMailbox).where(StoreMailbox.address == mailbox))


# -- helpers (all run inside the caller's transaction) --------------------------------


async def _lock_mailbox(conn: AsyncConnection, mailbox: str) -> _Box:
    """Lock the mailbox row, creating the mailbox with its INBOX if it has none."""
    locking = (
        select(StoreMailbox.id, StoreMailbox.usage_bytes)
        .where(StoreMailbox.address == mailbox)
        .with_for_update()
    )
    row = (await conn.execute(locking)).first()
    if row is None:
        created = (
            await conn.execute(
                pg_insert(StoreMailbox)
                .values(address=mailbox, usage_bytes=0, last_uidvalidity=0, created_at=utcnow())
                .on_conflict_do_nothing(index_elements=[StoreMailbox.address])
                .returning(StoreMailbox.id)
            )
        ).scalar()
        if created is not None:
            await _insert_folder(conn, int(created), INBOX)
        row = (await conn.execute(locking)).one()
    return _Box(id=int(row.id), usage=int(row.usage_bytes))


async def _next_uidvalidity(conn: AsyncConnection, box_id: int) -> int:
    """A UIDVALIDITY above every one this mailbox has handed out (time-based)."""
    now = literal(int(time.time()), BigInteger)
    return int(
        (
            await conn.execute(
                update(StoreMailbox)
                .where(StoreMailbox.id == box_id)
                .values(last_uidvalidity=func.greatest(now, StoreMailbox.last_uidvalidity + 1))
                .returning(StoreMailbox.last_uidvalidity)
            )
        ).scalar_one()
    )


async def _insert_folder(conn: AsyncConnection, box_id: int, name: str) -> None:
    uidvalidity = await _next_uidvalidity(conn, box_id)
    await conn.execute(
        insert(StoreFolder).values(mailbox_id=box_id, name=name, uidvalidity=uidvalidity, uidnext=1)
    )


async def _names(conn: AsyncConnection, box_id: int) -> set[str]:
    rows = await conn.execute(select(StoreFolder.name).where(StoreFolder.mailbox_id == box_id))
    return {row.name for row in rows}


async def _folder(conn: AsyncConnection, box_id: int, name: str, mailbox: str) -> _Folder:
    row = (
        await conn.execute(
            select(StoreFolder.id, StoreFolder.uidvalidity).where(
                StoreFolder.mailbox_id == box_id, StoreFolder.name == name
            )
        )
    ).first()
    if row is None:
        raise NoSuchFolder(f"folder {name!r} does not exist in {mailbox}")
    return _Folder(id=int(row.id), uidvalidity=int(row.uidvalidity))


async def _allocate(conn: AsyncConnection, folder_id: int, count: int) -> int:
    """Reserve ``count`` UIDs atomically; return the first."""
    uidnext = (
        await conn.execute(
            update(StoreFolder)
            .where(StoreFolder.id == folder_id)
            .values(uidnext=StoreFolder.uidnext + count)
            .returning(StoreFolder.uidnext)
        )
    ).scalar_one()
    return int(uidnext) - count


async def _add_usage(conn: AsyncConnection, box_id: int, delta: int) -> None:
    if delta:
        await conn.execute(
            update(StoreMailbox)
            .where(StoreMailbox.id == box_id)
            .values(usage_bytes=StoreMailbox.usage_bytes + delta)
        )


async def _statuses(
    conn: AsyncConnection, box_id: int, name: str | None = None
) -> list[FolderStatus]:
    statement = (
        select(
            StoreFolder.name,
            StoreFolder.uidvalidity,
            StoreFolder.uidnext,
            func.count(StoreMessage.id).label("exists"),
            func.count(StoreMessage.id)
            .filter(func.strpos(StoreMessage.flags, SEEN) == 0)
            .label("unseen"),
        )
        .select_from(StoreFolder)
        .outerjoin(StoreMessage, StoreMessage.folder_id == StoreFolder.id)
        .where(StoreFolder.mailbox_id == box_id)
        .group_by(StoreFolder.id)
    )
    if name is not None:
        statement = statement.where(StoreFolder.name == name)
    return [
        FolderStatus(
            name=row.name,
            uidvalidity=int(row.uidvalidity),
            uidnext=int(row.uidnext),
            exists=int(row.exists),
            unseen=int(row.unseen),
        )
        for row in await conn.execute(statement)
    ]


def _check_quota(mailbox: str, usage: int, size: int, quota_bytes: int | None) -> None:
    if quota_bytes is None:
        return
    if quota_bytes <= 0 or usage + size > quota_bytes:
        raise QuotaExceeded(mailbox, usage, size, quota_bytes)


def _check_uid(uid: int, folder: str) -> None:
    if not isinstance(uid, int) or isinstance(uid, bool) or not 0 < uid <= MAX_UID:
        raise NoSuchMessage(f"{uid!r} is not a valid UID in {folder!r}")


def _valid_uids(uids: Iterable[int]) -> list[int]:
    """The distinct UIDs that can exist, ascending (others are skipped, as IMAP does)."""
    return sorted(
        {
            uid
            for uid in uids
            if isinstance(uid, int) and not isinstance(uid, bool) and 0 < uid <= MAX_UID
        }
    )


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _flags_text(flags: frozenset[str]) -> str:
    return " ".join(sorted(flags))


def _flags_set(stored: str) -> frozenset[str]:
    return frozenset(stored.split())
