"""The lookup generation, and the per-process lookup caches it keeps honest.

The recipient lookup, routes, domain facts and filter policies are read for every RCPT
and every message, and change rarely. Each process caches the answers
(:class:`LookupCache`: a bounded LRU, with a time to live as a safety net) and one counter
in the database, the ``lookup_generation`` row, says when they may be out of date:

* every transaction of a :meth:`~mailward.db.Database.session` that writes one of the
  :data:`WATCHED` tables (an ORM flush, or an insert, update or delete statement run
  through the session) moves the counter just before it commits, in that transaction
  (the session events below), so no write site has to remember it;
* the process that committed such a change clears its caches, those of every
  ``Database`` on the same URL in this process, right after the commit;
* every other process reads the counter at most once per :data:`CHECK_SECONDS` (lazily,
  on a lookup: :meth:`LookupCaches.fresh`) and clears its caches when it moved, so a
  change anywhere is seen everywhere within that time.

A write that changes no cached answer (a mailbox's usage figure that stays on the same
side of its quota) runs with ``execution_options(**UNCOUNTED)`` and does not move it.
"""

from __future__ import annotations

import enum
import math
import re
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, Literal, TypeVar

from sqlalchemy import event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, UOWTransaction
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.elements import TextClause

from mailward.db.models import LookupGeneration

WATCHED = frozenset({"accounts", "domains", "addresses", "mail_servers", "filter_policies",
                     "filter_sender_rules", "filter_domain_models",
                     "filter_personal_senders", "domain_catch_alls", "domain_aliases"})
"""The tables the cached lookups read (accounts: deleting one cascades to its domains;
filter_domain_models: which domains have learnt corrections, and since when;
domain_catch_alls, domain_aliases: a domain's catch-all and alias domains, which the
recipient lookup follows; filter_personal_senders: each address's corrections per kind of
sender, read with its filter policy)."""
CHECK_SECONDS = 1.0  # how stale another process's change may be seen here, at most
DEFAULT_ENTRIES = 10_000
DEFAULT_SECONDS = 60.0
OPTION = "lookup_generation"
UNCOUNTED = {OPTION: False}
"""Execution options of a write to a watched table that changes no cached answer."""
GROUP_KEY = "mailward.lookup_caches"  # Session.info: this database's LookupCaches
_DIRTY = "mailward.lookup_generation.dirty"  # Session.info: a watched table was written
_BUMPED = "mailward.lookup_generation.bumped"  # Session.info: the value this commit set
_TEXT_WRITE = re.compile(r'(?is)\b(?:insert\s+into|update|delete\s+from)\s+"?(\w+)')

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Miss(enum.Enum):
    MISS = 0


MISS: Literal[_Miss.MISS] = _Miss.MISS
"""What :meth:`LookupCache.get` answers for a key it does not hold (``None`` is a value)."""


class LookupCache(Generic[K, V]):
    """One bounded LRU of answers (immutable values only), cleared with its group."""

    def __init__(self, group: LookupCaches, entries: int, seconds: float) -> None:
        self.group = group
        self.entries = entries  # 0: cache nothing
        self.seconds = seconds  # time to live: a safety net for changes made behind our back
        self._data: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    async def fresh(self, session: AsyncSession) -> int:
        """The group's epoch once its answers are known current (:meth:`LookupCaches.fresh`)."""
        return await self.group.fresh(session)

    def get(self, key: K) -> V | Literal[_Miss.MISS]:
        found = self._data.get(key)
        if found is None:
            return MISS
        if found[0] <= self.group.clock():
            del self._data[key]
            return MISS
        self._data.move_to_end(key)
        return found[1]

    def put(self, key: K, value: V, epoch: int) -> None:
        """Keep ``value``, read after :meth:`fresh` answered ``epoch``, unless the caches
        were cleared since (it may predate the change that cleared them)."""
        if epoch != self.group.epoch or self.entries <= 0:
            return
        self._data[key] = (self.group.clock() + self.seconds, value)
        self._data.move_to_end(key)
        while len(self._data) > self.entries:
            self._data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()


_GROUPS: dict[str, weakref.WeakSet[LookupCaches]] = {}  # database URL: its groups here


class LookupCaches:
    """The lookup caches of one :class:`~mailward.db.Database` in this process."""

    def __init__(self, url: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.clock = clock  # monotonic seconds; tests move it
        self.epoch = 0  # moves with every clearing
        self.known: int | None = None  # the generation the caches are current for
        self.checked_at = -math.inf
        self.checks = 0  # SELECTs of the generation made
        self._caches: dict[str, LookupCache[Any, Any]] = {}
        _GROUPS.setdefault(url, weakref.WeakSet()).add(self)

    def cache(self, name: str, entries: int = DEFAULT_ENTRIES,
              seconds: float = DEFAULT_SECONDS) -> LookupCache[Any, Any]:
        """The cache ``name`` (made by its first user, shared by the others)."""
        found = self._caches.get(name)
        if found is None:
            found = self._caches[name] = LookupCache(self, entries, seconds)
        return found

    async def fresh(self, session: AsyncSession) -> int:
        """Read the generation (in ``session``) if the last read is :data:`CHECK_SECONDS`
        old, clearing the caches when it moved; the epoch answers read now belong to."""
        now = self.clock()
        if now - self.checked_at >= CHECK_SECONDS:
            self.checked_at = now  # concurrent lookups meanwhile trust the last read
            try:
                value = await session.scalar(
                    select(LookupGeneration.value).where(LookupGeneration.id == 1))
            except BaseException:
                self.checked_at = -math.inf
                raise
            self.checks += 1
            self.moved(value or 0)  # no row (tables emptied): 0
        return self.epoch

    def moved(self, value: int) -> None:
        """The generation is ``value``: clear everything if that is news."""
        if value != self.known:
            self.known = value
            self.clear()

    def clear(self) -> None:
        self.epoch += 1
        for each in self._caches.values():
            each.clear()


def changed_here(url: str, value: int) -> None:
    """This process committed generation ``value``: every group on ``url`` forgets."""
    for group in list(_GROUPS.get(url, ())):
        group.known = value
        group.clear()


def changing(session: AsyncSession) -> bool:
    """Whether ``session`` holds an uncommitted change to a watched table (its own reads
    must then not come from a cache)."""
    sync = session.sync_session
    return bool(sync.info.get(_DIRTY)) or any(
        _watched_object(o) for o in (*sync.new, *sync.dirty, *sync.deleted))


def caches_of(session: AsyncSession) -> LookupCaches | None:
    """The caches of the database ``session`` came from (None: not a Database session)."""
    found = session.info.get(GROUP_KEY)
    return found if isinstance(found, LookupCaches) else None


# -- the session side: move the generation with every watched change ------------------


class TrackedSession(Session):
    """The sessions :class:`~mailward.db.Database` hands out: a commit that changed a
    watched table moves the lookup generation in the same transaction."""


def _watched_object(obj: object) -> bool:
    table = getattr(type(obj), "__table__", None)
    return getattr(table, "name", None) in WATCHED


def _writes_watched(statement: object) -> bool:
    if isinstance(statement, UpdateBase):
        return getattr(statement.table, "name", None) in WATCHED
    if isinstance(statement, TextClause):
        return any(m.group(1).lower() in WATCHED for m in _TEXT_WRITE.finditer(statement.text))
    return False


@event.listens_for(TrackedSession, "before_flush")
def _before_flush(session: Session, _flush: UOWTransaction, _instances: object) -> None:
    if session.info.get(_DIRTY):
        return
    if any(_watched_object(o) for o in (*session.new, *session.deleted)) or any(
            _watched_object(o) and session.is_modified(o) for o in session.dirty):
        session.info[_DIRTY] = True


@event.listens_for(TrackedSession, "do_orm_execute")
def _on_execute(state: ORMExecuteState) -> None:
    if state.is_select or state.session.info.get(_DIRTY):
        return
    if state.execution_options.get(OPTION, True) is not False and \
            _writes_watched(state.statement):
        state.session.info[_DIRTY] = True


_BUMP = {
    name: dialect.insert(LookupGeneration).values(id=1, value=1)
    .on_conflict_do_update(index_elements=["id"],
                           set_={"value": LookupGeneration.value + 1})
    .returning(LookupGeneration.value)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}  # an upsert: the row may be gone (tables emptied) and comes back


@event.listens_for(TrackedSession, "before_commit")
def _before_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint: the outermost commit counts
    if session.new or session.dirty or session.deleted:
        session.flush()  # the commit's own flush comes after this hook: see it now
    if session.info.pop(_DIRTY, False):
        bump = _BUMP[session.get_bind().dialect.name]
        session.info[_BUMPED] = session.execute(bump).scalar_one()


@event.listens_for(TrackedSession, "after_commit")
def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return
    value = session.info.pop(_BUMPED, None)
    group = session.info.get(GROUP_KEY)
    if value is not None and isinstance(group, LookupCaches):
        changed_here(group.url, value)


@event.listens_for(TrackedSession, "after_transaction_end")
def _after_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # rolled back (a commit has used them already)
        session.info.pop(_DIRTY, None)
        session.info.pop(_BUMPED, None)
