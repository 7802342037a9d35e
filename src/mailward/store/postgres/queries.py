"""The PostgreSQL store's statements and the helpers that run inside a caller's
transaction (see :mod:`mailward.store.postgres.store`)."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import BigInteger, ScalarSelect, func, insert, literal, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from mailward.db.models import StoreFolder, StoreMailbox, StoreMessage, utcnow
from mailward.store.interface import (
    INBOX,
    SEEN,
    FolderStatus,
    NoSuchFolder,
    NoSuchMessage,
    QuotaExceeded,
)
from mailward.store.modseq import Vanished
from mailward.store.summary import SUMMARY_VERSION

MAX_UID = 2**63 - 1

MOVE = text(
    "UPDATE store_messages SET folder_id = :target, uid = :new, modseq = :modseq "
    "WHERE folder_id = :source AND uid = :old"
)
COPY = text(
    "INSERT INTO store_messages "
    "(folder_id, uid, size, flags, internal_date, body, summary, modseq) "
    "SELECT :target, :new, size, flags, internal_date, body, summary, :modseq "
    "FROM store_messages WHERE folder_id = :source AND uid = :old"
)
# Several messages' flags in one statement; rows are locked in UID order (no deadlock
# between two such updates of overlapping sets).
# With :unchanged (RFC 7162 UNCHANGEDSINCE) only messages whose modseq is not above it.
# The folder's next modseq is taken first (its row locked before the messages' rows, as
# every writer does: no deadlock with expunges and moves) and given to all of them.
SET_FLAGS = text(
    "WITH f AS (UPDATE store_folders SET highestmodseq = highestmodseq + 1 WHERE id = "
    "(SELECT f.id FROM store_folders f JOIN store_mailboxes b "
    "ON b.id = f.mailbox_id WHERE b.address = :address AND f.name = :name) "
    "RETURNING id, highestmodseq), "
    "c AS (SELECT * FROM unnest(CAST(:uids AS bigint[]), CAST(:flags AS text[])) "
    "AS c(uid, flags)), "
    "l AS (SELECT m.id, c.flags, f.highestmodseq FROM store_messages m "
    "JOIN f ON m.folder_id = f.id "
    "JOIN c ON c.uid = m.uid "
    "WHERE CAST(:unchanged AS bigint) IS NULL OR m.modseq <= CAST(:unchanged AS bigint) "
    "ORDER BY m.uid FOR UPDATE OF m) "
    "UPDATE store_messages SET flags = l.flags, modseq = l.highestmodseq "
    "FROM l WHERE store_messages.id = l.id "
    "RETURNING store_messages.uid"
)
EXPUNGE = text(
    "WITH d AS (DELETE FROM store_messages WHERE folder_id = :folder "
    "AND strpos(flags, '\\Deleted') > 0 "
    "AND (CAST(:uids AS bigint[]) IS NULL OR uid = ANY(CAST(:uids AS bigint[]))) "
    "RETURNING uid, size), "
    "u AS (UPDATE store_mailboxes SET usage_bytes = usage_bytes - "
    "(SELECT coalesce(sum(size), 0) FROM d) WHERE id = :box AND EXISTS (SELECT 1 FROM d)), "
    # the caller holds the folder row and knows its next modseq; the expunged UIDs are
    # appended to the kept ones in store.modseq's text form (pruned by prune_vanished)
    "h AS (UPDATE store_folders SET highestmodseq = CAST(:modseq AS bigint), vanished = "
    "coalesce(vanished, '') || CAST(CAST(:modseq AS bigint) AS text) || ' ' || "
    "(SELECT string_agg(CAST(uid AS text), ',' ORDER BY uid) FROM d) || chr(10) "
    "WHERE id = :folder AND EXISTS (SELECT 1 FROM d)) "
    "SELECT uid FROM d"
)
MODIFIED = text(  # after a conditional SET_FLAGS: the messages it left alone
    "SELECT m.uid FROM store_messages m JOIN store_folders f ON f.id = m.folder_id "
    "JOIN store_mailboxes b ON b.id = f.mailbox_id WHERE b.address = :address "
    "AND f.name = :name AND m.uid = ANY(CAST(:uids AS bigint[])) "
    "AND m.modseq > CAST(:unchanged AS bigint) ORDER BY m.uid"
)
VANISHED_TEXT_LIMIT = 256 * 1024  # store_folders.vanished is pruned past this length
SUMMARY_PREFIX = b"S%d " % SUMMARY_VERSION
SAVE_SUMMARIES = text(
    "UPDATE store_messages SET summary = c.summary FROM "
    "unnest(CAST(:uids AS bigint[]), CAST(:summaries AS bytea[])) AS c(uid, summary) "
    "WHERE store_messages.folder_id = :folder AND store_messages.uid = c.uid"
)


@dataclass(frozen=True, slots=True)
class Box:
    id: int
    usage: int


@dataclass(frozen=True, slots=True)
class Folder:
    id: int
    uidvalidity: int


# -- helpers (all run inside the caller's transaction) ---------------------------


async def lock_mailbox(conn: AsyncConnection, mailbox: str) -> Box:
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
            await insert_folder(conn, int(created), INBOX)
        row = (await conn.execute(locking)).one()
    return Box(id=int(row.id), usage=int(row.usage_bytes))


async def next_uidvalidity(conn: AsyncConnection, box_id: int) -> int:
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


async def insert_folder(conn: AsyncConnection, box_id: int, name: str) -> None:
    uidvalidity = await next_uidvalidity(conn, box_id)
    await conn.execute(
        insert(StoreFolder).values(mailbox_id=box_id, name=name, uidvalidity=uidvalidity, uidnext=1)
    )


async def folder_names(conn: AsyncConnection, box_id: int) -> set[str]:
    rows = await conn.execute(select(StoreFolder.name).where(StoreFolder.mailbox_id == box_id))
    return {row.name for row in rows}


def folder_of(mailbox: str, name: str) -> ScalarSelect[int]:
    """The id of a mailbox's folder, as a subquery (NULL if either does not exist)."""
    return (
        select(StoreFolder.id)
        .join(StoreMailbox, StoreMailbox.id == StoreFolder.mailbox_id)
        .where(StoreMailbox.address == mailbox, StoreFolder.name == name)
        .scalar_subquery()
    )


async def find_folder(conn: AsyncConnection, box_id: int, name: str, mailbox: str) -> Folder:
    row = (
        await conn.execute(
            select(StoreFolder.id, StoreFolder.uidvalidity).where(
                StoreFolder.mailbox_id == box_id, StoreFolder.name == name
            )
        )
    ).first()
    if row is None:
        raise NoSuchFolder(f"folder {name!r} does not exist in {mailbox}")
    return Folder(id=int(row.id), uidvalidity=int(row.uidvalidity))


async def allocate(conn: AsyncConnection, folder_id: int, count: int) -> tuple[int, int]:
    """Reserve ``count`` UIDs and the folder's next modseq atomically; return the first
    UID and the modseq."""
    row = (
        await conn.execute(
            update(StoreFolder)
            .where(StoreFolder.id == folder_id)
            .values(
                uidnext=StoreFolder.uidnext + count,
                highestmodseq=StoreFolder.highestmodseq + 1,
            )
            .returning(StoreFolder.uidnext, StoreFolder.highestmodseq)
        )
    ).one()
    return int(row.uidnext) - count, int(row.highestmodseq)


async def next_modseq(conn: AsyncConnection, folder_id: int) -> tuple[int, str | None]:
    """Take the folder's next modseq (locking its row); return it and the kept
    expunged UIDs (``store_folders.vanished``)."""
    row = (
        await conn.execute(
            update(StoreFolder)
            .where(StoreFolder.id == folder_id)
            .values(highestmodseq=StoreFolder.highestmodseq + 1)
            .returning(StoreFolder.highestmodseq, StoreFolder.vanished)
        )
    ).one()
    return int(row.highestmodseq), row.vanished


async def prune_vanished(conn: AsyncConnection, folder_id: int) -> None:
    """Rewrite the folder's kept expunged UIDs compactly, bounded (store.modseq)."""
    kept = (
        await conn.execute(select(StoreFolder.vanished).where(StoreFolder.id == folder_id))
    ).scalar()
    vanished = Vanished.from_text(kept)
    vanished.prune()
    await conn.execute(
        update(StoreFolder).where(StoreFolder.id == folder_id).values(vanished=vanished.to_text())
    )


async def record_vanished(
    conn: AsyncConnection, folder_id: int, modseq: int, kept: str | None, uids: list[int]
) -> None:
    """Remember ``uids`` as expunged at ``modseq`` (bounded, see store.modseq)."""
    if not uids:
        return
    vanished = Vanished.from_text(kept)
    vanished.add(modseq, uids)
    await conn.execute(
        update(StoreFolder).where(StoreFolder.id == folder_id).values(vanished=vanished.to_text())
    )


async def add_usage(conn: AsyncConnection, box_id: int, delta: int) -> None:
    if delta:
        await conn.execute(
            update(StoreMailbox)
            .where(StoreMailbox.id == box_id)
            .values(usage_bytes=StoreMailbox.usage_bytes + delta)
        )


async def statuses(
    conn: AsyncConnection, mailbox: str, name: str | None = None
) -> list[FolderStatus]:
    statement = (
        select(
            StoreFolder.name,
            StoreFolder.uidvalidity,
            StoreFolder.uidnext,
            StoreFolder.highestmodseq,
            func.count(StoreMessage.id).label("exists"),
            func.count(StoreMessage.id)
            .filter(func.strpos(StoreMessage.flags, SEEN) == 0)
            .label("unseen"),
        )
        .select_from(StoreFolder)
        .join(StoreMailbox, StoreMailbox.id == StoreFolder.mailbox_id)
        .outerjoin(StoreMessage, StoreMessage.folder_id == StoreFolder.id)
        .where(StoreMailbox.address == mailbox)
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
            highestmodseq=int(row.highestmodseq),
        )
        for row in await conn.execute(statement)
    ]


def check_quota(mailbox: str, usage: int, size: int, quota_bytes: int | None) -> None:
    if quota_bytes is None:
        return
    if quota_bytes <= 0 or usage + size > quota_bytes:
        raise QuotaExceeded(mailbox, usage, size, quota_bytes)


def check_uid(uid: int, folder: str) -> None:
    if not isinstance(uid, int) or isinstance(uid, bool) or not 0 < uid <= MAX_UID:
        raise NoSuchMessage(f"{uid!r} is not a valid UID in {folder!r}")


def valid_uids(uids: Iterable[int]) -> list[int]:
    """The distinct UIDs that can exist, ascending (others are skipped, as IMAP does)."""
    return sorted(
        {
            uid
            for uid in uids
            if isinstance(uid, int) and not isinstance(uid, bool) and 0 < uid <= MAX_UID
        }
    )


def aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def flags_text(flags: frozenset[str]) -> str:
    return " ".join(sorted(flags))


@functools.lru_cache(maxsize=4096)
def flags_set(stored: str) -> frozenset[str]:
    """The flags of a stored flags text; one shared set per distinct text (a folder has
    few distinct ones), so a listing of many messages is cheap in time and memory."""
    return frozenset(stored.split())
