"""Migration jobs as the panel and the CLI see them: add one (or a batch for a domain),
list, show with per-folder progress, cancel.

A job copies one hosted mailbox from the old server (host, port, TLS mode, login); its
password is stored sealed (:mod:`mailward.migrate.credentials`) and dropped when the job
ends. A new job of a mailbox whose earlier job read the same old login on the same host
starts from that job's progress, so a re-run only looks at what is new. The delivery role
runs the jobs (:mod:`mailward.migrate.runner`).
"""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailward.core.actor import Actor
from mailward.core.audit import record
from mailward.core.errors import Conflict, InvalidInput, NotFound
from mailward.core.normalize import normalize_address, normalize_domain
from mailward.db import Database
from mailward.db.models import AddressKind, MigrationFolder, MigrationJob, utcnow
from mailward.directory.addresses import AddressService
from mailward.directory.facts import address_domain_keys
from mailward.migrate.credentials import CredentialBox
from mailward.migrate.source import TLS_MODES

ACTIVE = ("queued", "running")
ENDED = ("done", "failed", "cancelled")
MAX_BATCH = 10000
MASTER_SYNTAX = "{user}*{master}"
"""Dovecot's master-user login (``user*master``); others use e.g. ``{master}/{user}``."""
_HOST = re.compile(r"[A-Za-z0-9.:\[\]-]{1,253}")


@dataclass(frozen=True, slots=True)
class FolderProgress:
    """One old folder of a job and how far it got."""

    source: str
    target: str
    uidvalidity: int
    last_uid: int
    messages: int
    copied: int
    skipped: int
    done: bool


@dataclass(frozen=True, slots=True)
class JobView:
    """A migration job without its credentials (``has_password``: not yet wiped)."""

    id: int
    mailbox: str
    host: str
    port: int
    tls: str
    login: str
    status: str
    has_password: bool
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    last_error: str | None
    current_folder: str | None
    folders_total: int
    folders_done: int
    messages_total: int
    messages_copied: int
    messages_skipped: int
    bytes_copied: int
    folders: tuple[FolderProgress, ...] = ()

    @classmethod
    def of(cls, job: MigrationJob, folders: builtins.list[MigrationFolder] = []) -> JobView:  # noqa: B006
        return cls(job.id, job.mailbox, job.host, job.port, job.tls, job.login, job.status,
                   job.secret is not None, job.created_at, job.updated_at, job.finished_at,
                   job.last_error, job.current_folder, job.folders_total, job.folders_done,
                   job.messages_total, job.messages_copied, job.messages_skipped,
                   job.bytes_copied, tuple(FolderProgress(
                       f.source, f.target, f.uidvalidity, f.last_uid, f.messages, f.copied,
                       f.skipped, f.done) for f in folders))


@dataclass(frozen=True, slots=True)
class Source:
    """Where a mailbox is copied from: the old server and one login on it."""

    host: str
    port: int
    tls: str
    login: str
    password: str


def master_login(user: str, master: str, syntax: str = MASTER_SYNTAX) -> str:
    """The old server's login for ``user`` through master user ``master``."""
    if "{user}" not in syntax or "{master}" not in syntax:
        raise InvalidInput("the master-user syntax needs {user} and {master}")
    return syntax.replace("{user}", user).replace("{master}", master)


def _check_source(source: Source) -> Source:
    host = source.host.strip()
    if not _HOST.fullmatch(host):
        raise InvalidInput(f"invalid old server host {source.host!r}")
    if not 1 <= source.port <= 65535:
        raise InvalidInput(f"invalid port {source.port}")
    if source.tls not in TLS_MODES:
        raise InvalidInput(f"TLS mode must be one of {', '.join(TLS_MODES)}")
    login = source.login.strip()
    if not login or len(login) > 320 or any(c in login for c in "\r\n\0"):
        raise InvalidInput("the old server's login is empty or invalid")
    if not source.password or any(c in source.password for c in "\r\n\0"):
        raise InvalidInput("the old server's password is empty or invalid")
    return Source(host.lower(), source.port, source.tls, login, source.password)


class MigrationService:
    """Adds, lists, shows and cancels migration jobs within an actor's accounts."""

    def __init__(self, db: Database, box: CredentialBox, addresses: AddressService) -> None:
        self.db = db
        self.box = box
        self.addresses = addresses

    async def _mailbox(self, session: AsyncSession, actor: Actor, email: str) -> tuple[str, int]:
        view = await self.addresses.get(actor, email)  # NotFound outside the actor's scope
        if view.kind is not AddressKind.MAILBOX:
            raise InvalidInput(f"{view.email} is not a mailbox (set it up as one first)")
        keys = await address_domain_keys(session, view.email)
        if keys is None:
            raise NotFound(f"no address {view.email!r}")
        return view.email, keys[1]

    async def add(self, actor: Actor, mailbox: str, source: Source) -> JobView:
        """Queue a job copying ``mailbox`` from ``source``; Conflict if one is active."""
        [job] = await self.add_batch(actor, [(mailbox, source)])
        return job

    async def add_batch(self, actor: Actor, rows: list[tuple[str, Source]]) -> list[JobView]:
        """Queue one job per ``(mailbox, source)`` (a domain's addresses): all or none."""
        if not rows:
            raise InvalidInput("no addresses to migrate")
        if len(rows) > MAX_BATCH:
            raise InvalidInput(f"at most {MAX_BATCH} addresses at once")
        checked = [(mailbox, _check_source(source)) for mailbox, source in rows]
        jobs: list[MigrationJob] = []
        async with self.db.session() as session, session.begin():
            seen: set[str] = set()
            for mailbox, source in checked:
                email, account_id = await self._mailbox(session, actor, mailbox)
                if email in seen:
                    raise InvalidInput(f"{email} is listed twice")
                seen.add(email)
                busy = await session.scalar(select(func.count()).select_from(MigrationJob).where(
                    MigrationJob.mailbox == email, MigrationJob.status.in_(ACTIVE)))
                if busy:
                    raise Conflict(f"{email} is already being migrated (cancel that job first)")
                job = MigrationJob(
                    account_id=account_id, mailbox=email, host=source.host, port=source.port,
                    tls=source.tls, login=source.login, status="queued",
                    secret=self.box.seal(source.password, mailbox=email, login=source.login))
                session.add(job)
                await session.flush()
                await self._inherit_progress(session, job)
                record(session, actor, "migration.add", email, account_id=account_id,
                       detail=f"from {source.login} at {source.host}:{source.port} "
                              f"({source.tls}), job {job.id}")
                jobs.append(job)
        return [JobView.of(job) for job in jobs]

    @staticmethod
    async def _inherit_progress(session: AsyncSession, job: MigrationJob) -> None:
        """Start from the folders of the newest earlier job of the same mailbox, host and
        login (a re-run then fetches only what is new)."""
        earlier = await session.scalar(
            select(MigrationJob.id).where(
                MigrationJob.mailbox == job.mailbox, MigrationJob.host == job.host,
                MigrationJob.login == job.login, MigrationJob.id != job.id)
            .order_by(MigrationJob.id.desc()).limit(1))
        if earlier is None:
            return
        for folder in await session.scalars(
                select(MigrationFolder).where(MigrationFolder.job_id == earlier)):
            session.add(MigrationFolder(
                job_id=job.id, source=folder.source, target=folder.target,
                uidvalidity=folder.uidvalidity, last_uid=folder.last_uid,
                messages=folder.messages, copied=0, skipped=0, done=False))

    async def list(self, actor: Actor, *, mailbox: str | None = None,
                   domain: str | None = None, limit: int = 500) -> builtins.list[JobView]:
        """The actor's jobs, newest first (of one mailbox or domain if given)."""
        query = actor.scope(select(MigrationJob), MigrationJob.account_id)
        if mailbox is not None:
            query = query.where(MigrationJob.mailbox == normalize_address(mailbox))
        if domain is not None:
            query = query.where(MigrationJob.mailbox.endswith(
                "@" + normalize_domain(domain), autoescape=True))
        async with self.db.session() as session:
            jobs = await session.scalars(query.order_by(MigrationJob.id.desc()).limit(limit))
            return [JobView.of(job) for job in jobs]

    async def _job(self, session: AsyncSession, actor: Actor, job_id: int) -> MigrationJob:
        job = await session.scalar(actor.scope(
            select(MigrationJob).where(MigrationJob.id == job_id), MigrationJob.account_id))
        if job is None:
            raise NotFound(f"no migration job {job_id}")
        return job

    async def get(self, actor: Actor, job_id: int) -> JobView:
        """One job with its folders' progress."""
        async with self.db.session() as session:
            job = await self._job(session, actor, job_id)
            folders = list(await session.scalars(
                select(MigrationFolder).where(MigrationFolder.job_id == job.id)
                .order_by(MigrationFolder.target, MigrationFolder.source)))
            return JobView.of(job, folders)

    async def cancel(self, actor: Actor, job_id: int) -> JobView:
        """Stop a queued or running job (a worker stops after its current message) and
        drop its password; Conflict if it already ended."""
        async with self.db.session() as session, session.begin():
            job = await self._job(session, actor, job_id)
            now = utcnow()
            changed = await session.execute(
                update(MigrationJob).where(MigrationJob.id == job.id,
                                           MigrationJob.status.in_(ACTIVE))
                .values(status="cancelled", secret=None, finished_at=now, updated_at=now,
                        lease_owner=None, lease_until=None))
            if not changed.rowcount:  # type: ignore[attr-defined]
                raise Conflict(f"migration job {job_id} already ended ({job.status})")
            record(session, actor, "migration.cancel", job.mailbox,
                   account_id=job.account_id, detail=f"job {job.id}")
        return await self.get(actor, job_id)
