"""IMAP subscriptions of the PostgreSQL store: rows of ``store_subscriptions``.

A subscription names a folder that need not exist; the rows go with their mailbox
(``ON DELETE CASCADE``). Writers run inside the caller's transaction, which holds the
mailbox row lock, so changes to one mailbox's subscriptions are serialised.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from mailward.db.models import StoreMailbox, StoreSubscription
from mailward.store.maildir.names import inbox_first, renamed


async def list_subscriptions(conn: AsyncConnection, mailbox: str) -> list[str]:
    """The mailbox's subscribed names, sorted with ``INBOX`` first."""
    rows = await conn.execute(
        select(StoreSubscription.name)
        .join(StoreMailbox, StoreMailbox.id == StoreSubscription.mailbox_id)
        .where(StoreMailbox.address == mailbox)
    )
    return inbox_first(row.name for row in rows)


async def add_subscriptions(conn: AsyncConnection, box_id: int, names: list[str]) -> None:
    """Subscribe ``names`` (already subscribed ones are left as they are)."""
    if names:
        await conn.execute(
            pg_insert(StoreSubscription)
            .values([{"mailbox_id": box_id, "name": name} for name in names])
            .on_conflict_do_nothing(
                index_elements=[StoreSubscription.mailbox_id, StoreSubscription.name]
            )
        )


async def remove_subscription(conn: AsyncConnection, box_id: int, name: str) -> None:
    """Unsubscribe ``name`` (no error if it is not subscribed)."""
    await conn.execute(
        delete(StoreSubscription).where(
            StoreSubscription.mailbox_id == box_id, StoreSubscription.name == name
        )
    )


async def rename_subscriptions(conn: AsyncConnection, box_id: int, old: str, new: str) -> None:
    """Move the subscriptions of ``old`` and its inferiors to their new names."""
    rows = await conn.execute(
        select(StoreSubscription.id, StoreSubscription.name).where(
            StoreSubscription.mailbox_id == box_id
        )
    )
    moving = {int(row.id): target for row in rows if (target := renamed(row.name, old, new))}
    if moving:
        await conn.execute(delete(StoreSubscription).where(StoreSubscription.id.in_(moving)))
        await add_subscriptions(conn, box_id, sorted(set(moving.values())))
