"""The delivery role's migration worker: claims one job at a time under a lease (so two
workers or nodes never run the same job), copies for one slice (``migrate_slice_seconds``
or ``migrate_slice_messages``, whichever ends first), writes its progress after every
message and hands the job back for the next turn.

Idempotent: a folder's messages are read above the last UID copied under its UIDVALIDITY;
a message already in the target folder (same size and internal date, and the same bytes or
Message-ID) is skipped, so a changed UIDVALIDITY, a lost progress write or a re-run after
completion copies nothing twice. Messages over ``max_message_size`` are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, and_, or_, select, update

from mailward.config import Settings
from mailward.db import Database
from mailward.db.models import MigrationFolder, MigrationJob, utcnow
from mailward.migrate.credentials import CredentialBox, CredentialError
from mailward.migrate.folders import SourceFolder, plan
from mailward.migrate.source import SourceError, SourceMessage, SourceServer
from mailward.store.interface import (
    INBOX,
    SYSTEM_FLAGS,
    FolderExists,
    InvalidFlag,
    InvalidFolderName,
    MailStore,
    QuotaExceeded,
    StoreError,
)

log = logging.getLogger(__name__)

MAX_FAILURES = 5
"""Failed turns in a row (server away, login refused) after which a job fails for good."""
RETRY_SECONDS = 60
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(?:\r?\n[ \t]+)?(<[^>\r\n]*>)", re.I | re.M)

QuotaOf = Callable[[str], Awaitable[int | None]]


@dataclass(frozen=True, slots=True)
class Claimed:
    """A job this worker holds the lease of."""

    id: int
    mailbox: str
    host: str
    port: int
    tls: str
    login: str
    secret: bytes | None
    failures: int


class Stop(Exception):
    """The job was cancelled or its lease lost: stop copying now."""


def message_id(data: bytes) -> bytes:
    header = data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    match = _MESSAGE_ID.search(header)
    return match.group(1) if match else b""


class MigrationRunner:
    """Runs migration jobs in turns until cancelled (:meth:`run`), or one turn
    (:meth:`run_once`)."""

    def __init__(self, db: Database, store: MailStore, settings: Settings, *,
                 box: CredentialBox | None = None, quota: QuotaOf | None = None,
                 owner: str | None = None, tls_context: ssl.SSLContext | None = None) -> None:
        self.db = db
        self.store = store
        self.settings = settings
        self.box = box or CredentialBox.of(settings)
        self.quota = quota
        self.owner = owner or settings.lease_owner
        self.tls_context = tls_context
        self.lease = timedelta(seconds=settings.migrate_slice_seconds
                               + 4 * settings.migrate_timeout_seconds + 60)

    async def run(self) -> None:
        """Run turns while there are jobs; look again every ``migrate_poll_seconds``."""
        while True:
            try:
                ran = await self.run_once()
            except Exception:  # the database may be away for a moment: next poll
                log.exception("migration turn failed")
                ran = False
            if not ran:
                await asyncio.sleep(self.settings.migrate_poll_seconds)

    async def run_once(self) -> bool:
        """Claim a due job and run one turn of it; False if no job was due."""
        job = await self._claim()
        if job is None:
            return False
        await self._turn(job)
        return True

    # -- the lease ------------------------------------------------------------------------

    async def _claim(self) -> Claimed | None:
        for _ in range(5):  # another worker may take the first candidate
            now = utcnow()
            due = (MigrationJob.status.in_(("queued", "running")), MigrationJob.next_run_at <= now,
                   or_(MigrationJob.lease_until.is_(None), MigrationJob.lease_until < now))
            async with self.db.session() as session, session.begin():
                job_id = await session.scalar(select(MigrationJob.id).where(*due)
                                              .order_by(MigrationJob.next_run_at,
                                                        MigrationJob.id).limit(1))
                if job_id is None:
                    return None
                claimed = await session.execute(
                    update(MigrationJob).where(MigrationJob.id == job_id, *due)
                    .values(status="running", lease_owner=self.owner,
                            lease_until=now + self.lease, updated_at=now))
                if not claimed.rowcount:  # type: ignore[attr-defined]
                    continue
                job = await session.get(MigrationJob, job_id, populate_existing=True)
                assert job is not None
                return Claimed(job.id, job.mailbox, job.host, job.port, job.tls, job.login,
                               job.secret, job.failures)
        return None

    def _mine(self, job: Claimed) -> ColumnElement[bool]:
        return and_(MigrationJob.id == job.id, MigrationJob.lease_owner == self.owner,
                    MigrationJob.status == "running")

    async def _release(self, job: Claimed, **values: object) -> None:
        now = utcnow()
        async with self.db.session() as session, session.begin():
            await session.execute(update(MigrationJob).where(self._mine(job)).values(
                lease_owner=None, lease_until=None, updated_at=now, **values))

    async def _end(self, job: Claimed, status: str, error: str | None = None) -> None:
        """The job ended: its password is wiped."""
        now = utcnow()
        await self._release(job, status=status, secret=None, finished_at=now,
                            current_folder=None, last_error=error)

    async def _failed_turn(self, job: Claimed, error: str, *, final: bool = False) -> None:
        log.warning("migration job %s of %s: %s", job.id, job.mailbox, error)
        failures = job.failures + 1
        if final or failures >= MAX_FAILURES:
            await self._end(job, "failed", error)
            return
        delay = timedelta(seconds=min(RETRY_SECONDS * 2 ** (failures - 1), 3600))
        await self._release(job, failures=failures, last_error=error,
                            next_run_at=utcnow() + delay)

    # -- one turn ---------------------------------------------------------------------------

    async def _turn(self, job: Claimed) -> None:
        if job.secret is None:
            await self._end(job, "failed", "no password stored")
            return
        try:
            password = self.box.open(job.secret, mailbox=job.mailbox, login=job.login)
        except CredentialError as exc:
            await self._failed_turn(job, str(exc), final=True)
            return
        try:
            server = await asyncio.to_thread(
                SourceServer.connect, job.host, job.port, job.tls, job.login, password,
                timeout=self.settings.migrate_timeout_seconds, context=self.tls_context)
        except SourceError as exc:
            await self._failed_turn(job, str(exc))
            return
        try:
            finished = await self._copy(job, server)
        except Stop:
            return
        except SourceError as exc:
            await self._failed_turn(job, f"old server: {exc}")
            return
        except QuotaExceeded as exc:
            await self._failed_turn(job, str(exc), final=True)
            return
        except (StoreError, OSError) as exc:
            log.warning("migration job %s: mail store failed", job.id, exc_info=True)
            await self._failed_turn(job, f"mail store: {exc}")
            return
        finally:
            await asyncio.to_thread(server.close)
        if finished:
            await self._end(job, "done")
        else:  # back in line behind the other jobs
            await self._release(job, failures=0, next_run_at=utcnow())

    async def _copy(self, job: Claimed, server: SourceServer) -> bool:
        """Copy until the slice ends; True once every folder is done."""
        deadline = time.monotonic() + self.settings.migrate_slice_seconds
        budget = self.settings.migrate_slice_messages
        pairs = plan(await asyncio.to_thread(server.folders))
        rows = await self._folder_rows(job, server, pairs)
        for folder, target in pairs:
            row = rows[folder.name]
            if row.done:
                continue
            try:
                await self._ensure_folder(job.mailbox, target)
            except InvalidFolderName as exc:  # a name our store cannot hold: left out
                log.warning("migration job %s: folder %r left out: %s", job.id, folder.name, exc)
                await self._folder_done(job, row)
                continue
            used = await self._copy_folder(job, server, folder, target, row, deadline, budget)
            budget -= used
            if budget <= 0 or time.monotonic() >= deadline:
                return False
            await self._folder_done(job, row)
        return True

    async def _folder_rows(self, job: Claimed, server: SourceServer,
                           pairs: list[tuple[SourceFolder, str]]) -> dict[str, MigrationFolder]:
        counts = {folder.name: await asyncio.to_thread(server.count, folder)
                  for folder, _ in pairs}
        async with self.db.session() as session, session.begin():
            rows = {row.source: row for row in await session.scalars(
                select(MigrationFolder).where(MigrationFolder.job_id == job.id))}
            for folder, target in pairs:
                row = rows.get(folder.name)
                if row is None:
                    row = rows[folder.name] = MigrationFolder(
                        job_id=job.id, source=folder.name, target=target, uidvalidity=0,
                        last_uid=0, copied=0, skipped=0, done=False)
                    session.add(row)
                row.target = target
                row.messages = counts[folder.name]
            listed = {folder.name for folder, _ in pairs}
            await session.execute(update(MigrationJob).where(self._mine(job)).values(
                folders_total=len(pairs),
                folders_done=sum(1 for name in listed if rows[name].done),
                messages_total=sum(counts.values())))
            await session.flush()
            session.expunge_all()
        return rows

    async def _ensure_folder(self, mailbox: str, target: str) -> None:
        if target != INBOX:
            with contextlib.suppress(FolderExists):
                await self.store.create_folder(mailbox, target)
        await self.store.subscribe(mailbox, target)

    async def _copy_folder(self, job: Claimed, server: SourceServer, folder: SourceFolder,
                           target: str, row: MigrationFolder, deadline: float,
                           budget: int) -> int:
        """Copy one folder's new messages within the budget; the messages handled."""
        uidvalidity = await asyncio.to_thread(server.examine, folder)
        if uidvalidity != row.uidvalidity:  # new, or renumbered: dedup by content from 0
            row.uidvalidity, row.last_uid = uidvalidity, 0
            async with self.db.session() as session, session.begin():
                await session.execute(update(MigrationFolder).where(
                    MigrationFolder.id == row.id).values(uidvalidity=uidvalidity, last_uid=0))
        pending = await asyncio.to_thread(server.messages_after, row.last_uid)
        if not pending:
            return 0
        present: dict[tuple[int, int], list[int]] = {}
        for info in await self.store.messages(job.mailbox, target):
            present.setdefault((info.size, int(info.internal_date.timestamp())),
                               []).append(info.uid)
        quota = await self.quota(job.mailbox) if self.quota is not None else None
        used = 0
        for message in pending:
            if used >= budget or time.monotonic() >= deadline:
                break
            copied = size = 0
            if message.size <= self.settings.max_message_size:
                data = await asyncio.to_thread(server.fetch, message.uid)
                key = (len(data), int(message.internal_date.timestamp()))
                if not await self._present(job.mailbox, target, present.get(key, []), data):
                    stored = await self._deliver(job.mailbox, target, data, message, quota)
                    present.setdefault(key, []).append(stored)
                    copied, size = 1, len(data)
            used += 1
            await self._progress(job, row, target, message.uid, copied, size)
        return used

    async def _present(self, mailbox: str, folder: str, uids: list[int], data: bytes) -> bool:
        """Whether one of ``uids`` (same size and date) is this message."""
        if not uids:
            return False
        wanted = message_id(data)
        for ours in (await self.store.fetch_many(mailbox, folder, uids)).values():
            if ours == data or (wanted and message_id(ours) == wanted):
                return True
        return False

    async def _deliver(self, mailbox: str, folder: str, data: bytes, message: SourceMessage,
                       quota: int | None) -> int:
        try:
            stored = await self.store.deliver(mailbox, data, folder=folder, flags=message.flags,
                                              quota_bytes=quota,
                                              internal_date=message.internal_date)
        except InvalidFlag:  # a keyword the store does not take: keep the system flags
            system = {flag.lower() for flag in SYSTEM_FLAGS}
            stored = await self.store.deliver(
                mailbox, data, folder=folder, quota_bytes=quota,
                flags=frozenset(f for f in message.flags if f.lower() in system),
                internal_date=message.internal_date)
        return stored.uid

    async def _progress(self, job: Claimed, row: MigrationFolder, target: str, uid: int,
                        copied: int, size: int) -> None:
        """Record one message handled and renew the lease; ``Stop`` if the job was
        cancelled or the lease lost meanwhile."""
        now = utcnow()
        skipped = 1 - copied
        async with self.db.session() as session, session.begin():
            changed = await session.execute(update(MigrationJob).where(self._mine(job)).values(
                messages_copied=MigrationJob.messages_copied + copied,
                messages_skipped=MigrationJob.messages_skipped + skipped,
                bytes_copied=MigrationJob.bytes_copied + size, current_folder=target,
                lease_until=now + self.lease, updated_at=now))
            if not changed.rowcount:  # type: ignore[attr-defined]
                raise Stop
            await session.execute(update(MigrationFolder).where(
                MigrationFolder.id == row.id).values(
                last_uid=uid,
                copied=MigrationFolder.copied + copied,
                skipped=MigrationFolder.skipped + skipped))
        row.last_uid = uid

    async def _folder_done(self, job: Claimed, row: MigrationFolder) -> None:
        async with self.db.session() as session, session.begin():
            await session.execute(update(MigrationFolder).where(
                MigrationFolder.id == row.id).values(done=True))
            await session.execute(update(MigrationJob).where(self._mine(job)).values(
                folders_done=MigrationJob.folders_done + 1))
        row.done = True

