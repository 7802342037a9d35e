"""Batched store calls for the protocol servers, on any :class:`MailStore`.

A store that is a :class:`BatchedStore` (both backends) answers in one call; another
(a wrapper that does not forward them) is served one call per message, with summaries
made from the bytes each time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from mailward.store.interface import BatchedStore, MailStore, NoSuchMessage, Summary
from mailward.store.summary import summarize_async


async def summaries(
    store: MailStore, mailbox: str, folder: str, uids: Iterable[int]
) -> dict[int, Summary]:
    """``store.summaries`` (UIDs that do not exist are left out)."""
    if isinstance(store, BatchedStore):
        return await store.summaries(mailbox, folder, uids)
    raw = await store.fetch_many(mailbox, folder, uids)
    return {uid: await summarize_async(data) for uid, data in raw.items()}


async def set_flags_many(
    store: MailStore, mailbox: str, folder: str, changes: dict[int, frozenset[str]]
) -> dict[int, frozenset[str]]:
    """``store.set_flags_many`` (UIDs that do not exist are left out)."""
    if isinstance(store, BatchedStore):
        return await store.set_flags_many(mailbox, folder, changes)
    done: dict[int, frozenset[str]] = {}
    for uid, flags in changes.items():
        with contextlib.suppress(NoSuchMessage):
            done[uid] = await store.set_flags(mailbox, folder, uid, flags)
    return done
