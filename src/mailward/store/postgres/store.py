"""``PostgresStore``: the :class:`~mailward.store.interface.MailStore` on PostgreSQL.

Several hosting nodes can serve the same mailboxes. Tables (see ``mailward.db.models``)::

    store_mailboxes  address (unique), usage_bytes, last_uidvalidity
    store_folders    mailbox_id, name (unique per mailbox), uidvalidity, uidnext,
                     highestmodseq, vanished (expunged UIDs, see mailward.store.modseq)
    store_messages   folder_id, uid (unique per folder), size, flags, internal_date, body,
                     summary (packed ENVELOPE/BODYSTRUCTURE, see mailward.store.summary),
                     modseq (RFC 7162: every change takes the folder's next one)
    store_subscriptions  mailbox_id, name (unique per mailbox)

Every change runs in one transaction that first locks the mailbox row
(``SELECT ... FOR UPDATE``): quota is checked against ``usage_bytes`` and the usage is
updated in the same transaction as the insert or delete, so it is exact across nodes.
UIDs come from ``UPDATE store_folders SET uidnext = uidnext + n ... RETURNING``, so
concurrent deliveries never collide. A change is committed before its call returns.
Flags are stored as their canonical spellings joined by single spaces.

Reads and flag changes are one statement each (the folder found by the mailbox's address
and its name in the same statement; only when that finds nothing are the mailbox and
folder looked up again, to create a new mailbox or raise ``NoSuchFolder``). Flag changes
take no mailbox lock (they do not touch the quota): the rows are locked in UID order.
Statements and helpers are in :mod:`mailward.store.postgres.queries`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import datetime

from sqlalchemy import (
    case,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from mailward.db.engine import Database
from mailward.db.models import StoreFolder, StoreMailbox, StoreMessage, utcnow
from mailward.store.interface import (
    INBOX,
    FolderExists,
    FolderHasChildren,
    FolderStatus,
    InvalidFolderName,
    MessageInfo,
    NoSuchFolder,
    NoSuchMessage,
    Stored,
    Summary,
)
from mailward.store.maildir.flags import normalize_flags
from mailward.store.maildir.names import (
    is_inferior,
    normalize_folder,
    split_mailbox,
    superiors,
)
from mailward.store.modseq import Vanished
from mailward.store.postgres import queries as q
from mailward.store.postgres import subscriptions as subs
from mailward.store.summary import pack, summarize_async, unpack


class PostgresStore:
    """Mailboxes as rows of ``store_*`` tables in the PostgreSQL database of ``db``."""

    def __init__(self, db: Database) -> None:
        if db.engine.dialect.name != "postgresql":
            raise ValueError("PostgresStore needs a PostgreSQL database")
        self.db = db
        # Reads are one statement each: in autocommit they need no BEGIN and ROLLBACK
        # round trips around it (the writes keep their transactions: ``_write``).
        self._reads = db.engine.execution_options(isolation_level="AUTOCOMMIT")

    @asynccontextmanager
    async def _write(self, mailbox: str) -> AsyncIterator[tuple[AsyncConnection, q.Box]]:
        """A transaction holding the mailbox row lock (creating the mailbox if needed)."""
        split_mailbox(mailbox)
        async with self.db.engine.begin() as conn:
            yield conn, await q.lock_mailbox(conn, mailbox)

    async def _box_id(self, mailbox: str) -> int:
        """The mailbox's id for reading, creating its storage (with INBOX) on first use."""
        split_mailbox(mailbox)
        async with self._reads.connect() as conn:
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
        when = utcnow() if internal_date is None else q.aware(internal_date)
        summary = pack(await summarize_async(data))
        async with self._write(mailbox) as (conn, box):
            target = await q.find_folder(conn, box.id, name, mailbox)
            q.check_quota(mailbox, box.usage, size, quota_bytes)
            uid, modseq = await q.allocate(conn, target.id, 1)
            await conn.execute(
                insert(StoreMessage).values(
                    folder_id=target.id,
                    uid=uid,
                    modseq=modseq,
                    size=size,
                    flags=q.flags_text(wanted),
                    internal_date=when,
                    body=data,
                    summary=summary,
                )
            )
            await q.add_usage(conn, box.id, size)
        return Stored(folder=name, uid=uid, size=size, uidvalidity=target.uidvalidity)

    async def usage(self, mailbox: str) -> int:
        split_mailbox(mailbox)
        async with self._reads.connect() as conn:
            used = (
                await conn.execute(
                    select(StoreMailbox.usage_bytes).where(StoreMailbox.address == mailbox)
                )
            ).scalar()
        return int(used or 0)

    # -- folders -------------------------------------------------------------------

    async def folders(self, mailbox: str) -> list[FolderStatus]:
        split_mailbox(mailbox)
        async with self._reads.connect() as conn:
            found = await q.statuses(conn, mailbox)
        if not found:  # a new mailbox: created with its INBOX
            await self._box_id(mailbox)
            async with self._reads.connect() as conn:
                found = await q.statuses(conn, mailbox)
        return sorted(found, key=lambda s: (s.name != INBOX, s.name))

    async def folder_status(self, mailbox: str, folder: str) -> FolderStatus:
        """One statement (two more the first time a mailbox is used)."""
        name = normalize_folder(folder)
        split_mailbox(mailbox)
        async with self._reads.connect() as conn:
            found = await q.statuses(conn, mailbox, name)
        if not found:
            await self._require_folder(mailbox, name)
            async with self._reads.connect() as conn:
                found = await q.statuses(conn, mailbox, name)
        if not found:
            raise NoSuchFolder(f"folder {name!r} does not exist in {mailbox}")
        return found[0]

    async def create_folder(self, mailbox: str, folder: str) -> None:
        name = normalize_folder(folder)
        async with self._write(mailbox) as (conn, box):
            existing = await q.folder_names(conn, box.id)
            if name in existing:
                raise FolderExists(f"folder {name!r} already exists in {mailbox}")
            for parent in superiors(name):
                if parent not in existing:
                    await q.insert_folder(conn, box.id, parent)
            await q.insert_folder(conn, box.id, name)

    async def delete_folder(self, mailbox: str, folder: str) -> None:
        name = normalize_folder(folder)
        if name == INBOX:
            raise InvalidFolderName("INBOX cannot be deleted")
        async with self._write(mailbox) as (conn, box):
            existing = await q.folder_names(conn, box.id)
            if name not in existing:
                raise NoSuchFolder(f"folder {name!r} does not exist in {mailbox}")
            children = sorted(f for f in existing if is_inferior(f, name))
            if children:
                raise FolderHasChildren(
                    f"folder {name!r} has sub-folders ({', '.join(children[:3])}); "
                    "delete them first"
                )
            target = await q.find_folder(conn, box.id, name, mailbox)
            size = (
                await conn.execute(
                    select(func.coalesce(func.sum(StoreMessage.size), 0)).where(
                        StoreMessage.folder_id == target.id
                    )
                )
            ).scalar_one()
            await conn.execute(delete(StoreFolder).where(StoreFolder.id == target.id))
            await q.add_usage(conn, box.id, -int(size))

    async def rename_folder(self, mailbox: str, folder: str, new_name: str) -> None:
        """Rename with inferiors; each renamed folder gets a new UIDVALIDITY."""
        old, new = normalize_folder(folder), normalize_folder(new_name)
        if old == INBOX:
            raise InvalidFolderName("renaming INBOX is not supported")
        if new == old or is_inferior(new, old):
            raise InvalidFolderName(f"cannot rename {old!r} to {new!r} (under itself)")
        async with self._write(mailbox) as (conn, box):
            existing = await q.folder_names(conn, box.id)
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
                    await q.insert_folder(conn, box.id, parent)
            for source, target in targets.items():
                uidvalidity = await q.next_uidvalidity(conn, box.id)
                await conn.execute(
                    update(StoreFolder)
                    .where(StoreFolder.mailbox_id == box.id, StoreFolder.name == source)
                    .values(name=target, uidvalidity=uidvalidity)
                )
            await subs.rename_subscriptions(conn, box.id, old, new)

    # -- subscriptions -------------------------------------------------------------

    async def subscriptions(self, mailbox: str) -> list[str]:
        split_mailbox(mailbox)
        async with self._reads.connect() as conn:
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

    async def _require_folder(self, mailbox: str, name: str) -> None:
        """Raise ``NoSuchFolder`` unless the folder exists (creating the mailbox if new):
        the slow path after a one-statement read found no row."""
        box_id = await self._box_id(mailbox)
        async with self._reads.connect() as conn:
            await q.find_folder(conn, box_id, name, mailbox)

    async def messages(self, mailbox: str, folder: str) -> list[MessageInfo]:
        """One statement (the folder found by the mailbox's address and its name)."""
        name = normalize_folder(folder)
        split_mailbox(mailbox)
        statement = (
            select(
                StoreMessage.uid,
                StoreMessage.size,
                StoreMessage.flags,
                StoreMessage.internal_date,
                StoreMessage.modseq,
            )
            .select_from(StoreFolder)
            .join(StoreMailbox, StoreMailbox.id == StoreFolder.mailbox_id)
            .outerjoin(StoreMessage, StoreMessage.folder_id == StoreFolder.id)
            .where(StoreMailbox.address == mailbox, StoreFolder.name == name)
            .order_by(StoreMessage.uid)
        )
        async with self._reads.connect() as conn:
            rows = (await conn.execute(statement)).all()
        if not rows:
            await self._require_folder(mailbox, name)
        flags_set = q.flags_set
        return [
            MessageInfo(uid, size, flags_set(flags), internal_date, modseq)
            for uid, size, flags, internal_date, modseq in rows
            if uid is not None
        ]

    async def fetch(self, mailbox: str, folder: str, uid: int) -> bytes:
        name = normalize_folder(folder)
        split_mailbox(mailbox)
        q.check_uid(uid, name)
        async with self._reads.connect() as conn:
            body = (
                await conn.execute(
                    select(StoreMessage.body).where(
                        StoreMessage.folder_id == q.folder_of(mailbox, name),
                        StoreMessage.uid == uid,
                    )
                )
            ).scalar()
        if body is None:
            await self._require_folder(mailbox, name)
            raise NoSuchMessage(f"no message with UID {uid} in {name!r}")
        return bytes(body)

    async def fetch_many(self, mailbox: str, folder: str, uids: Iterable[int]) -> dict[int, bytes]:
        """One statement for all of them."""
        name = normalize_folder(folder)
        split_mailbox(mailbox)
        wanted = q.valid_uids(uids)
        if not wanted:
            await self._require_folder(mailbox, name)
            return {}
        async with self._reads.connect() as conn:
            rows = (
                await conn.execute(
                    select(StoreMessage.uid, StoreMessage.body).where(
                        StoreMessage.folder_id == q.folder_of(mailbox, name),
                        StoreMessage.uid.in_(wanted),
                    )
                )
            ).all()
        if not rows:
            await self._require_folder(mailbox, name)
        return {int(uid): bytes(body) for uid, body in rows}

    async def summaries(self, mailbox: str, folder: str, uids: Iterable[int]) -> dict[int, Summary]:
        """One statement when all are kept; one that lacks its summary comes with its bytes,
        is summarised and kept (one more statement for all of those)."""
        name = normalize_folder(folder)
        split_mailbox(mailbox)
        wanted = q.valid_uids(uids)
        if not wanted:
            await self._require_folder(mailbox, name)
            return {}
        current = func.substring(StoreMessage.summary, 1, len(q.SUMMARY_PREFIX))
        stale = (StoreMessage.summary.is_(None)) | (current != q.SUMMARY_PREFIX)
        async with self._reads.connect() as conn:
            rows = (
                await conn.execute(
                    select(
                        StoreMessage.folder_id,
                        StoreMessage.uid,
                        StoreMessage.summary,
                        case((stale, StoreMessage.body)).label("raw"),
                    ).where(
                        StoreMessage.folder_id == q.folder_of(mailbox, name),
                        StoreMessage.uid.in_(wanted),
                    )
                )
            ).all()
        if not rows:
            await self._require_folder(mailbox, name)
            return {}
        found: dict[int, Summary] = {}
        made: dict[int, Summary] = {}
        for row in rows:
            kept = unpack(row.summary)
            if kept is not None:
                found[int(row.uid)] = kept
            else:
                raw = row.raw if row.raw is not None else await self.fetch(mailbox, name, row.uid)
                made[int(row.uid)] = await summarize_async(bytes(raw))
        if made:
            async with self.db.engine.begin() as conn:
                await conn.execute(
                    q.SAVE_SUMMARIES,
                    {
                        "folder": int(rows[0].folder_id),
                        "uids": list(made),
                        "summaries": [pack(summary) for summary in made.values()],
                    },
                )
        return found | made

    async def set_flags(
        self, mailbox: str, folder: str, uid: int, flags: Iterable[str]
    ) -> frozenset[str]:
        name = normalize_folder(folder)
        q.check_uid(uid, name)
        stored = await self.set_flags_many(mailbox, name, {uid: frozenset(flags)})
        if uid not in stored:
            raise NoSuchMessage(f"no message with UID {uid} in {name!r}")
        return stored[uid]

    async def set_flags_many(
        self, mailbox: str, folder: str, changes: dict[int, frozenset[str]]
    ) -> dict[int, frozenset[str]]:
        """One statement; no mailbox lock (flags do not count against the quota)."""
        return (await self._set_flags(mailbox, folder, changes, None))[0]

    async def set_flags_unchanged_since(
        self, mailbox: str, folder: str, changes: dict[int, frozenset[str]], modseq: int
    ) -> tuple[dict[int, frozenset[str]], list[int]]:
        """``set_flags_many`` but for messages whose modseq is above ``modseq`` (returned
        as the second item): one statement, a second one if some were left alone."""
        return await self._set_flags(mailbox, folder, changes, modseq)

    async def _set_flags(
        self,
        mailbox: str,
        folder: str,
        changes: dict[int, frozenset[str]],
        unchanged: int | None,
    ) -> tuple[dict[int, frozenset[str]], list[int]]:
        name = normalize_folder(folder)
        split_mailbox(mailbox)
        wanted = {uid: normalize_flags(flags) for uid, flags in changes.items()}
        valid = q.valid_uids(wanted)
        if not valid:
            await self._require_folder(mailbox, name)
            return {}, []
        params = {
            "address": mailbox,
            "name": name,
            "uids": valid,
            "flags": [q.flags_text(wanted[uid]) for uid in valid],
            "unchanged": unchanged,
        }
        modified: list[int] = []
        async with self.db.engine.begin() as conn:
            done = (await conn.execute(q.SET_FLAGS, params)).scalars().all()
            if unchanged is not None and len(done) < len(valid):
                left = {**params, "uids": sorted(set(valid) - {int(uid) for uid in done})}
                modified = [int(uid) for uid in (await conn.execute(q.MODIFIED, left)).scalars()]
        if not done and not modified:
            await self._require_folder(mailbox, name)
        return {int(uid): wanted[int(uid)] for uid in done}, modified

    async def expunge(
        self, mailbox: str, folder: str, uids: Iterable[int] | None = None
    ) -> list[int]:
        """Two statements: lock the mailbox (finding the folder), delete and count."""
        name = normalize_folder(folder)
        split_mailbox(mailbox)
        chosen = None if uids is None else q.valid_uids(uids)
        async with self.db.engine.begin() as conn:
            row = (  # the mailbox's and the folder's rows, locked (see q.SET_FLAGS)
                await conn.execute(
                    select(
                        StoreMailbox.id,
                        StoreFolder.id.label("folder_id"),
                        StoreFolder.highestmodseq,
                        func.length(StoreFolder.vanished).label("kept"),
                    )
                    .select_from(StoreMailbox)
                    .join(StoreFolder, StoreFolder.mailbox_id == StoreMailbox.id)
                    .where(StoreMailbox.address == mailbox, StoreFolder.name == name)
                    .with_for_update()
                )
            ).first()
            if row is None:
                box = await q.lock_mailbox(conn, mailbox)  # created if new
                await q.find_folder(conn, box.id, name, mailbox)  # NoSuchFolder
                return []
            if chosen is not None and not chosen:
                return []
            folder_id = int(row.folder_id)
            params = {
                "box": int(row.id),
                "folder": folder_id,
                "uids": chosen,
                "modseq": int(row.highestmodseq) + 1,
            }
            removed = sorted(int(uid) for uid in (await conn.execute(q.EXPUNGE, params)).scalars())
            if removed and (row.kept or 0) > q.VANISHED_TEXT_LIMIT:
                await q.prune_vanished(conn, folder_id)
        return removed

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
        chosen = q.valid_uids(uids)
        async with self._write(mailbox) as (conn, box):
            source = await q.find_folder(conn, box.id, source_name, mailbox)
            target = await q.find_folder(conn, box.id, target_name, mailbox)
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
                q.check_quota(mailbox, box.usage, total, quota_bytes)
            if move:  # the source's row too before message rows (see q.SET_FLAGS)
                gone_at, kept = await q.next_modseq(conn, source.id)
            first, modseq = await q.allocate(conn, target.id, len(rows))
            mapping = {int(row.uid): first + i for i, row in enumerate(rows)}
            params = [
                {"source": source.id, "target": target.id, "old": old, "new": new,
                 "modseq": modseq}
                for old, new in mapping.items()
            ]
            await conn.execute(q.MOVE if move else q.COPY, params)
            if move:
                await q.record_vanished(conn, source.id, gone_at, kept, sorted(mapping))
            if not move:
                await q.add_usage(conn, box.id, total)
        return mapping

    async def vanished(self, mailbox: str, folder: str, since: int) -> list[int] | None:
        """From ``store_folders.vanished`` (see :mod:`mailward.store.modseq`)."""
        name = normalize_folder(folder)
        split_mailbox(mailbox)
        async with self._reads.connect() as conn:
            row = (
                await conn.execute(
                    select(StoreFolder.vanished)
                    .join(StoreMailbox, StoreMailbox.id == StoreFolder.mailbox_id)
                    .where(StoreMailbox.address == mailbox, StoreFolder.name == name)
                )
            ).first()
        if row is None:
            await self._require_folder(mailbox, name)
            return []
        return Vanished.from_text(row.vanished).since(since)

    async def delete_mailbox(self, mailbox: str) -> None:
        split_mailbox(mailbox)
        async with self.db.engine.begin() as conn:
            await conn.execute(delete(StoreMailbox).where(StoreMailbox.address == mailbox))
