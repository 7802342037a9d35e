"""Webmail search over the mail store: From, To/Cc, Subject and body text.

The words live in :mod:`mailward.store.search_index` (SQLite FTS5 or PostgreSQL full
text), filled at local delivery; a search first brings the index in step with the
folders it covers (mail APPENDed, copied or moved there since is indexed then, mail
expunged is dropped), which costs one comparison per unchanged folder. Over a
:class:`~mailward.store.NotifyingStore` (as the web role builds it) even that is skipped
while the mailbox's change version stays the same, for up to ``RECHECK_SECONDS`` (so
files another program drops into a Maildir are found within that time).

Query syntax: words, all required, each matched as the start of a word ("invo" finds
"invoice"), accents and case ignored; ``from:``, ``to:`` (also Cc), ``subject:`` and
``body:`` restrict a word to a field (``from:ann``, ``subject: report``). Nothing else is
syntax: quotes, ``*``, ``OR``, ``NEAR`` are ordinary text.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from mailward.db import Database
from mailward.store import MailStore, NotifyingStore
from mailward.store.search_index import SearchIndex, parse_query

MAX_LIMIT = 1000
RECHECK_SECONDS = 60.0  # an unchanged mailbox's folders are compared again after this
REMEMBERED = 10_000  # (mailbox, folder) pairs whose last catch-up is remembered


class MailSearch:
    """Search one mailbox's mail (every query is scoped to the mailbox it is given)."""

    def __init__(self, db: Database, store: MailStore) -> None:
        self.store = store
        self.index = SearchIndex(db)
        # (mailbox, folder or None) -> (change version, monotonic time, folders covered)
        self._synced: OrderedDict[tuple[str, str | None], tuple[int, float, list[str]]] = (
            OrderedDict())

    async def search(self, mailbox: str, query: str, *, folder: str | None = None,
                     limit: int = 100) -> list[tuple[str, int]]:
        """``(folder, uid)`` of the messages matching ``query``, newest first, in
        ``folder`` (every folder if None; ``NoSuchFolder`` if it does not exist). A query
        without words finds nothing."""
        terms = parse_query(query)
        if not terms or limit <= 0:
            return []
        folders = await self._sync(mailbox, folder)
        return await self.index.search(mailbox, terms, folders, min(limit, MAX_LIMIT))

    async def _sync(self, mailbox: str, folder: str | None) -> list[str]:
        """The folders to search, the index in step with them."""
        store = self.store
        if not isinstance(store, NotifyingStore):
            return await self.index.sync(store, mailbox, folder)
        key, now = (mailbox, folder), time.monotonic()
        version = store.events.version(mailbox)  # read first: a change meanwhile moves it
        seen = self._synced.get(key)
        if seen is not None and seen[0] == version and now - seen[1] < RECHECK_SECONDS:
            return seen[2]
        folders = await self.index.sync(store, mailbox, folder)
        self._synced[key] = (version, now, folders)
        self._synced.move_to_end(key)
        while len(self._synced) > REMEMBERED:
            self._synced.popitem(last=False)
        return folders
