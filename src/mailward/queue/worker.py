"""Delivery workers: claim due recipients, route them, deliver, retry or bounce.

A claim marks rows ``active`` with a lease; a worker that dies leaves the lease to run
out and another worker (on any node) takes the rows again. On PostgreSQL the claim skips
rows other workers hold (``FOR UPDATE SKIP LOCKED``). Recipients of one message to one
domain travel together (one SMTP transaction per hop).

A claim reads in one go what its deliveries need (the recipients from the claiming UPDATE,
their messages in one SELECT, small bodies included); each delivery's outcome is stored
through the spool's group committer, with those of concurrent deliveries in one
transaction, and the message dropped in the next group once no recipient is left. How
each recipient of webmail mail (origin ``webmail``) finished is written in that same
transaction (``webmail_deliveries``: the sender's delivery trace).

Mail held back (webmail's undo window, send later) is queued with its rows not due until
then: no claim takes it early, and an idle worker's wait already ends at the earliest due
row.

With a :class:`~mailward.trace.recorder.Trace`, what each attempt did for the recipients
of a message (attempts, mailbox deliveries, forwarded copies, expiry, the DSN queued) is
one event group, written in the same outcome transaction (:mod:`mailward.queue.traced`);
the log lines of a delivery carry its trace and queue id (``mailward.obs.logs.bind``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, and_, bindparam, case, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from mailward.config import Settings
from mailward.db import Database, QueuedRecipient, QueueStatus
from mailward.db.models import WEBMAIL_ORIGIN, WebmailDelivery, utcnow
from mailward.obs.logs import bind
from mailward.queue.connections import connection_cache
from mailward.queue.dsn import DsnRecipient, build_dsn, should_notify
from mailward.queue.group_commit import MESSAGES, RECIPIENTS, WRITE_LOCK, QueueRows
from mailward.queue.local import LocalDelivery
from mailward.queue.outcome import Outcome, Result
from mailward.queue.relay import Envelope, Relay
from mailward.queue.spool import NewCopy, NewRecipient, Spool
from mailward.queue.traced import attempt_events, bounce_event
from mailward.routing.routes import Router
from mailward.trace.events import EventGroup, TraceEvent

if TYPE_CHECKING:
    from mailward.trace.recorder import Trace

log = logging.getLogger(__name__)
LEASE = timedelta(minutes=15)
HELD_ELSEWHERE_SECONDS = 0.25  # idle wait when due rows are being claimed by another worker
CLAIM_BODY_BYTES = 256 * 1024  # bodies in rows (PostgreSQL) up to this size come with a claim

# the claim's statements, built once
MESSAGE_COLUMNS = (MESSAGES.c.id, MESSAGES.c.queue_id, MESSAGES.c.sender, MESSAGES.c.origin,
                   MESSAGES.c.envid, MESSAGES.c.ret, MESSAGES.c.smtputf8,
                   MESSAGES.c.received_at, MESSAGES.c.trace_id)
CLAIMED_MESSAGES = select(
    *MESSAGE_COLUMNS,
    # a large body is read when its delivery starts, not held by every claim
    case((MESSAGES.c.size <= CLAIM_BODY_BYTES, MESSAGES.c.body), else_=None).label("body"),
).where(MESSAGES.c.id.in_(bindparam("ids", expanding=True)))
DEFER = update(RECIPIENTS).where(RECIPIENTS.c.id == bindparam("row_id"))  # SET: the params
FINISH = (delete(RECIPIENTS).where(RECIPIENTS.c.id.in_(bindparam("ids", expanding=True)))
          .returning(RECIPIENTS.c.id))
# how each recipient of a webmail message finished (it leaves the queue): the trace
WEBMAIL_OUTCOMES = insert(cast(Table, WebmailDelivery.__table__))
RECIPIENT_COLUMNS = (RECIPIENTS.c.id, RECIPIENTS.c.message_id, RECIPIENTS.c.domain,
                     RECIPIENTS.c.recipient, RECIPIENTS.c.orcpt, RECIPIENTS.c.notify,
                     RECIPIENTS.c.attempts, RECIPIENTS.c.delay_warned,
                     RECIPIENTS.c.account_id)


@dataclass(frozen=True, slots=True)
class ClaimedMessage:
    """What a delivery needs of a queued message (read with the claim)."""

    id: int
    queue_id: str
    sender: str
    origin: str
    envid: str | None
    ret: str | None
    smtputf8: bool
    received_at: datetime
    trace_id: str | None = None  # None: queued before traces (its queue id stands in)
    body: bytes | None = None  # None: in the spool file, or a large row read on delivery

    @property
    def trace(self) -> str:
        return self.trace_id or self.queue_id


@dataclass(frozen=True, slots=True)
class ClaimedRecipient:
    """A claimed recipient row, as the claiming UPDATE returned it."""

    id: int
    recipient: str
    domain: str
    orcpt: str | None
    notify: str | None
    attempts: int
    delay_warned: bool
    account_id: int | None = None  # the account of the recipient's domain (ours) or None


@dataclass(frozen=True, slots=True)
class Job:
    """Recipients of one message for one domain, claimed together."""

    message_id: int
    domain: str
    message: ClaimedMessage | None = None
    rows: tuple[ClaimedRecipient, ...] = ()

    @property
    def recipient_ids(self) -> tuple[int, ...]:
        return tuple(row.id for row in self.rows)


class DeliveryWorker:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        spool: Spool,
        local: LocalDelivery,
        router: Router | None = None,
        *,
        trace: Trace | None = None,
    ) -> None:
        self.db = db
        self.trace = trace  # None: no trace events are recorded
        self.settings = settings
        self.spool = spool
        self.local = local
        self.router = router or Router(db, settings)
        self.relay = Relay(helo=settings.node_name, timeout=settings.smtp_timeout_seconds,
                           allow_private=settings.allow_private_mail_servers,
                           nameservers=settings.dns_nameservers,
                           cache=connection_cache(settings))
        self.slots = asyncio.Semaphore(settings.delivery_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Deliver until cancelled; on cancellation, wait for attempts under way."""
        await self.spool.sweep()
        await self.release_own_leases()
        async with self.spool.wakeup.listening():
            try:
                while True:
                    jobs = await self.claim(self.settings.delivery_concurrency)
                    if not jobs:
                        await self.spool.wakeup.wait(await self._idle_seconds())
                        continue
                    for job in jobs:
                        await self.slots.acquire()
                        task = asyncio.create_task(self._run_job(job))
                        self._tasks.add(task)
                        task.add_done_callback(self._tasks.discard)
            finally:
                if self._tasks:
                    await asyncio.shield(asyncio.gather(*self._tasks, return_exceptions=True))

    async def _idle_seconds(self) -> float:
        """Until the next retry falls due or a lease runs out, at most the poll interval.

        Called when a claim found nothing: a row that is due already is being claimed by
        another worker (PostgreSQL skips its locked rows), so look again shortly rather
        than spin until that worker commits.
        """
        poll = self.settings.queue_poll_seconds
        def earliest(column: Any, status: QueueStatus) -> Any:
            # one status per minimum: each is an index-only lookup on
            # ix_queue_recipients_due (an IN list made PostgreSQL scan every row)
            return (select(func.min(column)).where(QueuedRecipient.status == status)
                    .scalar_subquery())

        async with self.db.session() as session:
            found = (await session.execute(select(
                earliest(QueuedRecipient.next_attempt_at, QueueStatus.QUEUED),
                earliest(QueuedRecipient.next_attempt_at, QueueStatus.DEFERRED),
                earliest(QueuedRecipient.lease_until, QueueStatus.ACTIVE),
            ))).one()
        times = [t for t in found if t is not None]
        if not times:
            return poll
        wait = (min(times) - utcnow()).total_seconds()
        return min(poll, wait if wait > 0 else HELD_ELSEWHERE_SECONDS)

    async def _run_job(self, job: Job) -> None:
        try:
            await self.deliver(job)
        except Exception:  # the lease runs out and the rows are tried again
            log.exception("delivery of message %s to %s failed", job.message_id, job.domain)
        finally:
            self.slots.release()
            self.spool.wakeup.local()  # its retry time may be the next thing due

    async def release_own_leases(self) -> int:
        """At start: rows this node had claimed when it last stopped (crash, kill -9) are
        due again now rather than when their lease runs out."""
        owners = [self.settings.lease_owner]
        node = self.settings.node_name
        if self.settings.worker_index == 0:
            # Worker 0 also frees the leases of workers this node no longer runs (fewer
            # workers than before) and those written before leases were per worker.
            running = self.settings.workers or 1
            owners.append(node)
        owned: ColumnElement[bool] = QueuedRecipient.lease_owner.in_(owners)
        if self.settings.worker_index == 0:
            owned = or_(owned, and_(
                QueuedRecipient.lease_owner.like(f"{node}/%"),
                QueuedRecipient.lease_owner.not_in([f"{node}/{k}" for k in range(running)]),
            ))
        async with self.db.session() as session, session.begin():
            result = await session.execute(
                update(QueuedRecipient)
                .where(QueuedRecipient.status == QueueStatus.ACTIVE, owned)
                .values(status=QueueStatus.DEFERRED, lease_until=None, lease_owner=None,
                        next_attempt_at=utcnow())
            )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def run_once(self) -> int:
        """Claim and deliver whatever is due now, in this task; returns jobs done."""
        jobs = await self.claim(self.settings.delivery_concurrency)
        await asyncio.gather(*(self.deliver(job) for job in jobs))
        return len(jobs)

    async def claim(self, limit: int) -> list[Job]:
        now = utcnow()
        due = and_(
            QueuedRecipient.next_attempt_at <= now,
            or_(
                QueuedRecipient.status.in_([QueueStatus.QUEUED, QueueStatus.DEFERRED]),
                and_(QueuedRecipient.status == QueueStatus.ACTIVE,
                     QueuedRecipient.lease_until < now),
            ),
        )
        messages = (
            select(QueuedRecipient.message_id).where(due)
            .order_by(QueuedRecipient.next_attempt_at).limit(limit)
        )
        if not self.db.is_sqlite:
            messages = messages.with_for_update(skip_locked=True)
        async with self.db.session() as session, session.begin():
            if self.db.is_sqlite:  # a write transaction from the start (see WRITE_LOCK)
                await (await session.connection()).exec_driver_sql(WRITE_LOCK)
            message_ids = list(dict.fromkeys((await session.scalars(messages)).all()))
            if not message_ids:
                return []
            conn = await session.connection()
            claimed = (await conn.execute(
                update(RECIPIENTS)
                .where(RECIPIENTS.c.message_id.in_(message_ids), due)
                .values(status=QueueStatus.ACTIVE, lease_until=now + LEASE,
                        lease_owner=self.settings.lease_owner)
                .returning(*RECIPIENT_COLUMNS)
            )).all()
            found = {row[0]: ClaimedMessage(**row._mapping) for row in (await conn.execute(
                CLAIMED_MESSAGES, {"ids": message_ids})).all()}
        groups: dict[tuple[int, str], list[ClaimedRecipient]] = defaultdict(list)
        for rid, mid, domain, recipient, orcpt, notify, attempts, warned, account in claimed:
            groups[(mid, domain)].append(ClaimedRecipient(
                rid, recipient, domain, orcpt, notify, attempts, warned, account))
        return [Job(mid, domain, found.get(mid), tuple(rows))
                for (mid, domain), rows in groups.items()]

    async def deliver(self, job: Job) -> None:
        message, rows = job.message, list(job.rows)
        if message is None or not rows:  # deleted by an admin meanwhile
            return
        with bind(trace=message.trace, queue=message.queue_id):
            await self._deliver(message, rows)

    async def _deliver(self, message: ClaimedMessage, rows: list[ClaimedRecipient]) -> None:
        data = b""
        try:
            data = await self.spool.read(message)
        except OSError as exc:
            log.error("queue %s: message file unreadable: %s", message.queue_id, exc)
            outcomes = {r.recipient: Outcome.deferred("4.3.0", f"spool file unreadable: {exc}")
                        for r in rows}
        else:
            outcomes = await self._attempt(message, rows, data)
        await self._record(message, rows, outcomes, data)

    async def _attempt(self, message: ClaimedMessage, rows: list[ClaimedRecipient],
                       data: bytes) -> dict[str, Outcome]:
        route = await self.router.route(rows[0].domain, message.origin)
        if not route.hops:
            outcome = Outcome.from_reason(route.permanent or route.temporary or "4.3.0 no route")
            return {r.recipient: outcome for r in rows}
        outcomes: dict[str, Outcome] = {}
        open_rows = rows
        for hop in route.hops:
            if hop.local:
                for row in open_rows:
                    outcomes[row.recipient] = replace(await self.local.deliver(
                        row.recipient, sender=message.sender, data=data,
                        smtputf8=message.smtputf8, trace_id=message.trace,
                    ), local=True)
            else:
                envelope = Envelope(
                    sender=message.sender,
                    recipients=[(r.recipient, r.orcpt, r.notify) for r in open_rows],
                    data=data, smtputf8=message.smtputf8, envid=message.envid, ret=message.ret,
                )
                outcomes.update(await self.relay.send([hop], envelope))
            open_rows = [r for r in open_rows if outcomes[r.recipient].result is Result.DEFERRED]
            if not open_rows:
                break
        return outcomes

    async def _record(self, message: ClaimedMessage, rows: list[ClaimedRecipient],
                      outcomes: dict[str, Outcome], data: bytes) -> None:
        """Store what happened; bounce, warn or retry; drop the message when it is done.

        Runs in the spool's next group transaction (with other deliveries' outcomes); the
        report commits with the outcome it reports: a crash loses neither alone.
        """
        now = utcnow()
        expires = message.received_at + timedelta(seconds=self.settings.queue_lifetime_seconds)
        warn_after = timedelta(seconds=self.settings.delay_warning_seconds)
        finished: list[int] = []
        notices: list[tuple[ClaimedRecipient, str, Outcome]] = []
        deferred: list[tuple[ClaimedRecipient, Outcome, bool]] = []
        events: list[TraceEvent] = []
        expired = False
        for row in rows:
            outcome = outcomes[row.recipient]
            ends = outcome.result is Result.DEFERRED and now >= expires
            if self.trace is not None:
                events += attempt_events(
                    outcome, sender=message.sender, recipient=row.recipient,
                    account_id=row.account_id, queue_id=message.queue_id,
                    attempt=row.attempts + 1, received_at=message.received_at, now=now,
                    expired=ends)
            if ends:
                expired = True
                outcome = Outcome.failed(
                    "4.4.7", f"gave up after {self.settings.queue_lifetime_seconds // 3600}"
                    f" hours; last error: {outcome.describe()}",
                    remote_mta=outcome.remote_mta)
            if outcome.result is Result.DEFERRED:
                warn = (not row.delay_warned and warn_after.total_seconds() > 0
                        and now - message.received_at >= warn_after)
                log.info("queue %s: %s deferred (attempt %d): %s", message.queue_id,
                         row.recipient, row.attempts + 1, outcome.describe())
                deferred.append((row, outcome, warn))
                continue
            finished.append(row.id)
            if outcome.result is Result.FAILED:
                log.info("queue %s: %s bounced: %s", message.queue_id, row.recipient,
                         outcome.describe())
                notices.append((row, "failed", outcome))
            else:
                log.info("queue %s: %s: %s", message.queue_id, row.recipient,
                         outcome.describe())
                notices.append((row, "relayed" if outcome.relayed else "delivered", outcome))

        # a report needs to know which finished rows an admin has not deleted meanwhile;
        # without one, the finished rows go with the group's one DELETE
        reporting = bool(message.sender) and (any(
            should_notify(tuple(filter(None, (r.notify or "").split(","))), action)
            for r, action, _ in notices) or any(warn for _, _, warn in deferred))

        async def work(session: AsyncSession, rows: QueueRows) -> bool:
            queued = await store(session, rows)
            if self.trace is not None:
                told = queued[1] if queued is not None else []
                bounces = [bounce_event(
                    sender=message.sender, recipient=row.recipient,
                    account_id=row.account_id, queue_id=message.queue_id,
                    dsn_queue_id=queued[0], action=action, now=now)
                    for row, action in told if queued is not None]
                await self.trace.add(session, EventGroup(message.trace, events + bounces))
            return queued is not None

        async def store(session: AsyncSession, rows: QueueRows
                        ) -> tuple[str, list[tuple[ClaimedRecipient, str]]] | None:
            conn = await session.connection()
            reports = list(notices)
            if message.origin == WEBMAIL_ORIGIN and notices:
                await conn.execute(WEBMAIL_OUTCOMES, [
                    {"queue_id": message.queue_id, "recipient": row.recipient,
                     "result": "bounced" if action == "failed" else action,
                     "status": outcome.status[:16], "detail": outcome.detail[:2000],
                     "remote_mta": (outcome.remote_mta or None) and outcome.remote_mta[:253],
                     "at": now}
                    for row, action, outcome in notices])
            for row, outcome, warn in deferred:
                updated = await conn.execute(DEFER, {
                    "row_id": row.id, "status": QueueStatus.DEFERRED,
                    "attempts": row.attempts + 1, "last_attempt_at": now,
                    "last_error": outcome.describe()[:2000],
                    "next_attempt_at": now + timedelta(
                        seconds=self.settings.retry_delay(row.attempts + 1)),
                    "lease_until": None, "lease_owner": None,
                    "delay_warned": row.delay_warned or warn})
                if warn and updated.rowcount:
                    reports.append((row, "delayed", outcome))
            if not reporting:
                rows.finished += finished
                return None
            if finished:
                still_queued = set((await conn.execute(
                    FINISH, {"ids": finished})).scalars())
                # An admin may have deleted a recipient meanwhile: no report for it then.
                reports = [n for n in reports if n[1] == "delayed" or n[0].id in still_queued]
            return await self._notify(session, message, reports, data, expires)

        if await self.spool.group.run(work):
            self.spool.wakeup.local()
        if finished:  # in a later transaction than the deletes: see the other workers' ones
            await self.spool.finish([], [message.id], reason="expired" if expired else "done")

    async def _notify(self, session: AsyncSession, message: ClaimedMessage,
                      notices: list[tuple[ClaimedRecipient, str, Outcome]], data: bytes,
                      expires: datetime
                      ) -> tuple[str, list[tuple[ClaimedRecipient, str]]] | None:
        """Queue the DSN the sender asked for (never to the null sender) in ``session``'s
        transaction (it continues the message's trace); its queue id and the recipients
        (with their actions) it reports on, or None if none was queued."""
        if not message.sender:
            return None
        told = [(row, action) for row, action, _outcome in notices
                if should_notify(tuple(filter(None, (row.notify or "").split(","))), action)]
        wanted = [
            DsnRecipient(
                final_recipient=row.recipient,
                action=action,  # type: ignore[arg-type]
                status=outcome.status,
                original_recipient=row.orcpt,
                remote_mta=outcome.remote_mta,
                diagnostic=outcome.detail,
                last_attempt=utcnow(),
                will_retry_until=expires if action == "delayed" else None,
            )
            for row, action, outcome in notices
            if should_notify(tuple(filter(None, (row.notify or "").split(","))), action)
        ]
        if not wanted:
            return None
        report = build_dsn(
            reporting_mta=self.settings.node_name,
            sender=message.sender,
            recipients=wanted,
            original=data,
            arrival_date=message.received_at,
            envid=message.envid,
            ret=message.ret,
        )
        [dsn_id] = await self.spool.enqueue_in(
            session, [NewCopy([NewRecipient(message.sender)], report)], sender="",
            origin="dsn", smtputf8=message.smtputf8, parent_trace=message.trace)
        return dsn_id, told
