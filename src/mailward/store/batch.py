"""Batched store calls for the protocol servers, on any :class:`MailStore`.

A store that is a :class:`BatchedStore` (both backends) answers in one call; another
(a wrapper that does not forward them) is served one call per message, with summaries
made from the bytes each time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from mailward.store.interface import (
    BatchedStore,
    MailStore,
    ModseqStore,
    NoSuchMessage,
    Summary,
)
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


async def vanished(store: MailStore, mailbox: str, folder: str, since: int) -> list[int] | None:
    """``store.vanished`` (RFC 7162); ``None`` (not known) for a store without it."""
    if isinstance(store, ModseqStore):
        return await store.vanished(mailbox, folder, since)
    return None


async def set_flags_unchanged_since(
    store: MailStore, mailbox: str, folder: str, changes: dict[int, frozenset[str]], modseq: int
) -> tuple[dict[int, frozenset[str]], list[int]]:
    """``store.set_flags_unchanged_since``; for a store without it, checked against a
    listing first (not atomic: a change in between is not seen)."""
    if isinstance(store, ModseqStore):
        return await store.set_flags_unchanged_since(mailbox, folder, changes, modseq)
    current = {info.uid: info.modseq for info in await store.messages(mailbox, folder)}
    modified = sorted(uid for uid in changes if current.get(uid, 0) > modseq)
    rest = {uid: flags for uid, flags in changes.items() if uid not in modified}
    return await set_flags_many(store, mailbox, folder, rest), modified
