"""``TraceService``: the message trace as each caller may see it, the dashboard's numbers,
and the trace's two background jobs (pruning, sampling the queue depth).

The caller's scope comes from the directory: an operator sees every trace; a reseller
and an account admin the events of their accounts' domains (``directory.facts``); a
mailbox user (webmail) the events of their own address. Another tenant's trace is
indistinguishable from one that does not exist.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, insert, select

from mailward.config import Settings
from mailward.core.actor import Actor
from mailward.core.errors import NotFound
from mailward.core.normalize import normalize_address
from mailward.db import Database, QueuedRecipient, QueueStatus
from mailward.db.models import TraceGauge
from mailward.directory.facts import domain_names
from mailward.trace import retention, stats
from mailward.trace.scope import TraceScope
from mailward.trace.search import (
    TraceQuery,
    TraceStory,
    TraceSummary,
    search_traces,
    trace_story,
)
from mailward.trace.stats import ALL, Dashboard

__all__ = ["PRUNE_SECONDS", "SAMPLE_SECONDS", "QueueSample", "TraceService"]

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 60.0  # the queue depth is sampled every minute
PRUNE_SECONDS = 3600.0  # and old trace data pruned every hour

GAUGE_OF = {QueueStatus.QUEUED: "queue_queued", QueueStatus.DEFERRED: "queue_deferred",
            QueueStatus.ACTIVE: "queue_active"}


@dataclass(frozen=True, slots=True)
class QueueSample:
    """One queue-depth sample: recipients by gauge name, overall and per account (only
    accounts with queued mail; a missing account or name is 0)."""

    at: datetime
    platform: dict[str, int]
    accounts: dict[int, dict[str, int]] = field(default_factory=dict)


class TraceService:
    """The read side of the message trace, for the panel, the API, the CLI and webmail."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    async def scope(self, actor: Actor) -> TraceScope:
        """What ``actor`` may see: everything (an operator) or their domains' events."""
        if actor.is_operator:
            return TraceScope.everything()
        async with self.db.session() as session:
            names = await domain_names(session, actor)
        return TraceScope(frozenset(names.values()))

    async def search(self, actor: Actor, query: TraceQuery, page: str | None = None
                     ) -> list[TraceSummary]:
        """Traces matching ``query`` that ``actor`` may see, newest first; ``page`` is
        the ``cursor`` of the previous page's last result."""
        return await self._search(await self.scope(actor), query, page)

    async def story(self, actor: Actor, trace_id: str) -> TraceStory | None:
        """Trace ``trace_id`` (or the trace of that queue id) as ``actor`` may see it."""
        return await self._story(await self.scope(actor), trace_id)

    async def search_mailbox(self, address: str, query: TraceQuery,
                             page: str | None = None) -> list[TraceSummary]:
        """:meth:`search` for the mailbox user ``address``: their own mail only."""
        return await self._search(TraceScope.of_mailbox(normalize_address(address)), query,
                                  page)

    async def story_mailbox(self, address: str, trace_id: str) -> TraceStory | None:
        return await self._story(TraceScope.of_mailbox(normalize_address(address)), trace_id)

    async def _search(self, scope: TraceScope, query: TraceQuery, page: str | None
                      ) -> list[TraceSummary]:
        async with self.db.session() as session:
            return await search_traces(session, scope, query, page=page)

    async def _story(self, scope: TraceScope, trace_id: str) -> TraceStory | None:
        async with self.db.session() as session:
            return await trace_story(session, scope, trace_id)

    # -- the dashboard -----------------------------------------------------------------

    async def dashboard(self, actor: Actor, period: str, account_id: int | None = None,
                        now: datetime | None = None) -> Dashboard:
        """The charts of ``period`` (``24h``, ``7d``, ``30d``): an operator's of every
        domain, a reseller's of all their accounts, an account's of its domains;
        ``account_id`` narrows an operator or a reseller to one of their accounts."""
        async with self.db.session() as session:
            if account_id is not None:
                if not actor.owns(account_id):
                    raise NotFound(f"no account {account_id}")
                names = await domain_names(session, Actor.for_account(account_id))
                domains, accounts = list(names.values()), [account_id]
            elif actor.is_operator:
                domains, accounts = [ALL], None
            else:
                domains = list((await domain_names(session, actor)).values())
                accounts = (sorted(actor.account_ids) if actor.is_reseller
                            else [actor.account_id] if actor.account_id is not None else [])
            return await stats.dashboard(session, period, domains, accounts, now)

    # -- background jobs ---------------------------------------------------------------

    async def prune(self, now: datetime | None = None) -> retention.Pruned:
        """Delete trace data past ``trace_retention_days`` (hourly, delivery role)."""
        return await retention.prune(self.db, self.settings.trace_retention_days,
                                     now or datetime.now(UTC))

    async def sample_queue(self, now: datetime | None = None) -> QueueSample:
        """Count the queue's recipients by state, overall and per account, into
        ``trace_gauges`` (every minute, delivery role): the dashboard's queue depth."""
        at = now or datetime.now(UTC)
        async with self.db.session() as session, session.begin():
            rows = (await session.execute(
                select(QueuedRecipient.account_id, QueuedRecipient.status, func.count())
                .group_by(QueuedRecipient.account_id, QueuedRecipient.status))).all()
            sample = QueueSample(at, dict.fromkeys(GAUGE_OF.values(), 0))
            for account_id, status, count in rows:
                name = GAUGE_OF.get(QueueStatus(status))
                if name is None:
                    continue
                sample.platform[name] += int(count)
                if account_id is not None:
                    per = sample.accounts.setdefault(account_id, {})
                    per[name] = per.get(name, 0) + int(count)
            values = [{"at": at, "account_id": None, "name": name, "value": value}
                      for name, value in sample.platform.items()]
            values += [{"at": at, "account_id": account_id, "name": name, "value": value}
                       for account_id, per in sorted(sample.accounts.items())
                       for name, value in sorted(per.items())]
            await session.execute(insert(TraceGauge), values)
        return sample

    async def run(self, *, sample_every: float = SAMPLE_SECONDS,
                  prune_every: float = PRUNE_SECONDS) -> None:
        """Both jobs until cancelled, each at once and then every ``sample_every`` /
        ``prune_every`` seconds (the delivery role runs this in a node's first worker
        process). A failed round is logged and tried again at its next turn."""
        due = {"sample": 0.0, "prune": 0.0}
        while True:
            now = time.monotonic()
            if now >= due["sample"]:
                due["sample"] = now + sample_every
                try:
                    await self.sample_queue()
                except Exception:  # the database may be away for a moment: next turn
                    log.exception("sampling the queue depth failed")
            if now >= due["prune"]:
                due["prune"] = now + prune_every
                try:
                    pruned = await self.prune()
                    if pruned.events:
                        log.info("pruned %d trace events", pruned.events)
                except Exception:
                    log.exception("pruning the message trace failed")
            await asyncio.sleep(max(0.0, min(due.values()) - time.monotonic()))
