"""Mail migration from an old IMAP server, both backends: a private Dovecot on loopback is
the old server (folders, flags and internal dates seeded over IMAP); the mailbox is copied
into our store (Maildir with SQLite, the PostgreSQL store with PostgreSQL) by the delivery
role's runner. A full copy with folder names translated; an interruption after N messages
(a short slice) and a cancelled worker task, each finished by a second run without
duplicates; lost progress (a changed UIDVALIDITY) and a re-run after completion copy
nothing twice; the stored password is never in the database in clear; leases keep a job
to one worker; the CLI adds, lists, shows and cancels jobs."""

from __future__ import annotations

import asyncio
import imaplib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_server import running_server
from dovecot_server import dovecot_imap
from mail_helpers import eventually
from panel_client import Panel, messages, rows
from sqlalchemy import delete, select, text, update

from mailward.app import Services
from mailward.config import Settings
from mailward.core.errors import Conflict, InvalidInput, NotFound
from mailward.db import AddressList
from mailward.db.models import AuditEntry, MigrationFolder, MigrationJob
from mailward.directory import Actor
from mailward.migrate import (
    CredentialBox,
    MigrationRunner,
    MigrationService,
    Source,
    master_login,
)
from mailward.migrate.folders import encode_mutf7, parse_list, plan
from mailward.store import MailStore, open_store
from mailward.store.interface import ANSWERED, DRAFT, FLAGGED, SEEN

OP = Actor.operator()
ANN = "ann@acme.example"
OLD_USER, OLD_PASSWORD = "ann@old.example", "Old-Server-Secret-4711"
BIG = 3000  # bytes: over the test's max_message_size

# (old folder, [(subject, flags, day of January 2024)])
SEED: list[tuple[str, list[tuple[str, str, int]]]] = [
    ("INBOX", [("hello", "\\Seen", 1), ("urgent", "\\Flagged \\Answered", 2),
               ("labelled", "$Work", 3), ("unread", "", 4), ("big", "\\Seen", 5)]),
    ("INBOX.Sent", [("sent one", "\\Seen", 6), ("sent two", "\\Seen", 7)]),
    ("Junk E-mail", [("spam", "", 8)]),
    ("Drafts", [("draft", "\\Draft", 9)]),
    ("Archive", []),
    ("Archive.2023", [("old news", "\\Seen", 10), ("older news", "\\Seen", 11)]),
    ("Büro", [("office", "", 12)]),
]
EXPECTED = {  # our folder → subjects
    "INBOX": ["hello", "urgent", "labelled", "unread"],
    "Sent": ["sent one", "sent two"], "Junk": ["spam"], "Drafts": ["draft"],
    "Archive": [], "Archive/2023": ["old news", "older news"], "Büro": ["office"],
}
TOTAL = sum(len(v) for v in EXPECTED.values())  # the copyable messages (big is skipped)


def message(subject: str) -> bytes:
    padding = "x" * BIG if subject == "big" else "Some text."
    return (f"From: Someone <someone@old.example>\r\nTo: {ANN}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@old.example>\r\n\r\n{padding}\r\n"
            ).encode()


def date(day: int) -> datetime:
    return datetime(2024, 1, day, 9, 30, 15, tzinfo=UTC)


def seed(host: str, port: int) -> None:
    client = imaplib.IMAP4(host, port, timeout=30)
    client.login(OLD_USER, OLD_PASSWORD)
    for folder, seeded in SEED:
        name = '"' + encode_mutf7(folder).decode() + '"'
        if folder != "INBOX":
            assert client.create(name)[0] == "OK"
        for subject, flags, day in seeded:
            typ, _ = client.append(name, f"({flags})" if flags else None,
                                   imaplib.Time2Internaldate(date(day)), message(subject))
            assert typ == "OK"
    client.logout()


@pytest.fixture(scope="module")
def old_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """One seeded Dovecot for the module: the migration only reads it (EXAMINE, PEEK)."""
    work = tmp_path_factory.mktemp("dovecot")
    maildir = work / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    with dovecot_imap(work / "run", user=OLD_USER, password=OLD_PASSWORD,
                      maildir=maildir) as (host, port):
        seed(host, port)
        yield host, port


@dataclass
class Env:
    settings: Settings
    services: Services
    store: MailStore
    migrations: MigrationService
    host: str
    port: int

    def source(self, password: str = OLD_PASSWORD) -> Source:
        return Source(self.host, self.port, "none", OLD_USER, password)

    def runner(self, owner: str = "node-a/0", **overrides: object) -> MigrationRunner:
        settings = self.settings.model_copy(update=overrides)
        return MigrationRunner(self.services.db, self.store, settings, owner=owner,
                               quota=self.services.mail_login.quota)

    async def run_all(self, runner: MigrationRunner | None = None) -> int:
        """Turns until no job is due; how many turns ran."""
        runner = runner or self.runner()
        turns = 0
        while await runner.run_once():
            turns += 1
            assert turns < 50
        return turns

    async def subjects(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for folder in await self.store.folders(ANN):
            infos = await self.store.messages(ANN, folder.name)
            raw = await self.store.fetch_many(ANN, folder.name, [i.uid for i in infos])
            found[folder.name] = [raw[i.uid].split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0]
                                  .decode() for i in infos]
        return found

    async def job(self, job_id: int) -> MigrationJob:
        async with self.services.db.session() as session:
            job = await session.get(MigrationJob, job_id)
            assert job is not None
            return job


@pytest.fixture
async def env(settings: Settings, directory: Services, old_server: tuple[str, int]
              ) -> AsyncIterator[Env]:
    configured = settings.model_copy(update={
        "store_backend": "postgresql" if settings.db_url.startswith("postgresql") else "maildir",
        "max_message_size": 2048, "migrate_timeout_seconds": 20.0})
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "acme.example", account="Acme", hosting=True)
    await directory.bulk.add_lines(OP, [f"{ANN}|Mailbox-pass-77"], AddressList.NO_FILTER)
    services = Services(directory.db, configured)
    store = open_store(configured, services.db)
    migrations = MigrationService(services.db, CredentialBox.of(configured), services.addresses)
    yield Env(configured, services, store, migrations, *old_server)


def without_empty(found: dict[str, list[str]]) -> dict[str, list[str]]:
    return {name: subjects for name, subjects in found.items() if subjects or name == "Archive"}


async def test_full_copy_keeps_folders_flags_and_dates(env: Env) -> None:
    job = await env.migrations.add(OP, ANN, env.source())
    assert job.status == "queued" and job.has_password
    await env.run_all()

    assert without_empty(await env.subjects()) == EXPECTED
    inbox = {info.uid: info for info in await env.store.messages(ANN, "INBOX")}
    infos = sorted(inbox.values(), key=lambda i: i.uid)
    assert [i.flags for i in infos] == [
        frozenset({SEEN}), frozenset({FLAGGED, ANSWERED}), frozenset({"$Work"}), frozenset()]
    assert [i.internal_date for i in infos] == [date(1), date(2), date(3), date(4)]
    [draft] = await env.store.messages(ANN, "Drafts")
    assert draft.flags == frozenset({DRAFT}) and draft.internal_date == date(9)
    [old, older] = await env.store.messages(ANN, "Archive/2023")
    assert (old.internal_date, older.internal_date) == (date(10), date(11))
    assert "Sent" in await env.store.subscriptions(ANN)

    done = await env.migrations.get(OP, job.id)
    assert done.status == "done" and not done.has_password and done.finished_at
    assert (done.messages_copied, done.messages_skipped) == (TOTAL, 1)  # big: over the cap
    assert done.messages_total == TOTAL + 1 and done.folders_done == done.folders_total == 7
    sent = [f for f in done.folders if f.source == "INBOX.Sent"]
    assert sent[0].target == "Sent" and sent[0].copied == 2 and sent[0].done
    # the bytes are the old server's, unchanged
    [hello_uid] = [i.uid for i in infos[:1]]
    assert await env.store.fetch(ANN, "INBOX", hello_uid) == message("hello")


async def test_interrupted_after_n_messages_then_completed_without_duplicates(env: Env) -> None:
    job = await env.migrations.add(OP, ANN, env.source())
    short = env.runner(migrate_slice_messages=3)
    assert await short.run_once()  # one turn: three messages of INBOX, then handed back
    halfway = await env.migrations.get(OP, job.id)
    assert halfway.status == "running" and halfway.has_password
    assert halfway.messages_copied == 3
    assert len(await env.store.messages(ANN, "INBOX")) == 3

    await env.run_all(env.runner(owner="node-b/0"))  # another node finishes it
    assert without_empty(await env.subjects()) == EXPECTED
    finished = await env.migrations.get(OP, job.id)
    assert finished.status == "done" and finished.messages_copied == TOTAL


class StuckStore:
    """The store, except that the second delivery never returns (once it is stored)."""

    def __init__(self, store: MailStore, gate: asyncio.Event) -> None:
        self.store = store
        self.gate = gate
        self.delivered = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    async def deliver(self, *args: Any, **kwargs: Any) -> Any:
        stored = await self.store.deliver(*args, **kwargs)
        self.delivered += 1
        if self.delivered == 2:  # stored, its progress not yet written: the worst moment
            self.gate.set()
            await asyncio.Event().wait()
        return stored


async def test_worker_cancelled_mid_folder_then_resumed(env: Env) -> None:
    """The worker's task dies inside a folder (a node stopping); once its lease has expired
    another worker completes the job; no message is stored twice."""
    gate = asyncio.Event()
    job = await env.migrations.add(OP, ANN, env.source())
    stuck = env.runner()
    stuck.store = StuckStore(env.store, gate)  # type: ignore[assignment]
    task = asyncio.create_task(stuck.run_once())
    await gate.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(await env.store.messages(ANN, "INBOX")) == 2
    assert not await env.runner(owner="node-b/0").run_once()  # still leased
    async with env.services.db.session() as session, session.begin():
        await session.execute(update(MigrationJob).values(
            lease_until=datetime.now(UTC) - timedelta(seconds=1)))  # the lease ran out

    await env.run_all(env.runner(owner="node-b/0"))
    assert without_empty(await env.subjects()) == EXPECTED
    finished = await env.migrations.get(OP, job.id)
    assert finished.status == "done"
    assert finished.messages_copied + 1 == TOTAL  # the 2nd was found already there


async def test_lost_progress_and_rerun_copy_nothing_twice(env: Env) -> None:
    first = await env.migrations.add(OP, ANN, env.source())
    await env.run_all()
    # a second job for the same mailbox and old login: starts from the first one's UIDs
    again = await env.migrations.add(OP, ANN, env.source())
    await env.run_all()
    rerun = await env.migrations.get(OP, again.id)
    assert rerun.status == "done" and rerun.messages_copied == 0
    assert rerun.messages_skipped == 0  # nothing new above the last UIDs: nothing fetched

    # progress lost (as after a changed UIDVALIDITY): every message is looked at again and
    # recognised by Message-ID, internal date and size
    third = await env.migrations.add(OP, ANN, env.source())
    async with env.services.db.session() as session, session.begin():
        await session.execute(delete(MigrationFolder))
    await env.run_all()
    redone = await env.migrations.get(OP, third.id)
    assert redone.status == "done" and redone.messages_copied == 0
    assert redone.messages_skipped == TOTAL + 1
    assert without_empty(await env.subjects()) == EXPECTED
    assert (await env.migrations.get(OP, first.id)).messages_copied == TOTAL


async def test_password_is_never_stored_in_clear(env: Env) -> None:
    job = await env.migrations.add(OP, ANN, env.source())
    async with env.services.db.session() as session:
        rows = (await session.execute(text("SELECT * FROM migration_jobs"))).all()
        audit = list(await session.scalars(select(AuditEntry.detail)))
    dumped = repr(rows).encode() + b"".join(bytes(v) for r in rows for v in r
                                            if isinstance(v, bytes | memoryview))
    assert OLD_PASSWORD.encode() not in dumped and OLD_PASSWORD not in repr(audit)
    stored = await env.job(job.id)
    assert stored.secret is not None
    box = CredentialBox.of(env.settings)
    assert box.open(stored.secret, mailbox=ANN, login=OLD_USER) == OLD_PASSWORD
    assert CredentialBox("another secret").seal("x", mailbox=ANN, login=OLD_USER) != \
        box.seal("x", mailbox=ANN, login=OLD_USER)
    if env.settings.db_url.startswith("sqlite"):  # not in the file either
        path = Path(env.settings.db_url.split("///", 1)[1])
        assert OLD_PASSWORD.encode() not in await asyncio.to_thread(path.read_bytes)
    await env.run_all()
    assert (await env.job(job.id)).secret is None  # wiped when the job ended


async def test_wrong_password_fails_after_retries_and_cancel_wipes(env: Env) -> None:
    job = await env.migrations.add(OP, ANN, env.source(password="wrong"))
    runner = env.runner()
    assert await runner.run_once()
    failing = await env.migrations.get(OP, job.id)
    assert failing.status == "running" and "refused the login" in (failing.last_error or "")
    assert not await runner.run_once()  # backing off
    cancelled = await env.migrations.cancel(OP, job.id)
    assert cancelled.status == "cancelled" and not cancelled.has_password
    assert await env.store.messages(ANN, "INBOX") == []


async def test_only_one_worker_holds_a_job(env: Env) -> None:
    await env.migrations.add(OP, ANN, env.source())
    first = env.runner(owner="node-a/0")
    claimed = await first._claim()
    assert claimed is not None
    assert not await env.runner(owner="node-b/0").run_once()


def test_folder_names_are_translated() -> None:
    listed: list[bytes | tuple[bytes, bytes] | None] = [
        b'(\\HasNoChildren) "/" INBOX',
        b'(\\HasNoChildren \\Sent) "/" "[Gmail]/Sent Mail"',
        b'(\\HasNoChildren \\All) "/" "[Gmail]/All Mail"',
        b'(\\Noselect \\HasChildren) "/" "[Gmail]"',
        b'(\\HasNoChildren) "." "INBOX.Sent Items"',
        b'(\\HasNoChildren) "." "INBOX.Deleted Messages"',
        b'(\\HasNoChildren) "." "INBOX.Projects.2024"',
        b'(\\HasNoChildren) "." "Spam"',
        (b'(\\HasNoChildren) "." {11}', b"B&APw-ro*x/y"),
        b'(\\HasNoChildren \\Archive) NIL "Old stuff"',
    ]
    targets = [(folder.name, target) for folder, target in plan(parse_list(listed))]
    assert targets == [
        ("INBOX", "INBOX"), ("Old stuff", "Archive"), ("B\u00fcro*x/y", "B\u00fcro_x-y"),
        ("Spam", "Junk"), ("INBOX.Projects.2024", "Projects/2024"),
        ("INBOX.Sent Items", "Sent"), ("[Gmail]/Sent Mail", "Sent"),
        ("INBOX.Deleted Messages", "Trash"),
    ]


def test_cli_adds_lists_shows_and_cancels(tenants: Any, cli: Any) -> None:
    cli("address", "add", "--account", "Acme", "--list", "no-filter",
        input="ann@acme.example|Mailbox-pass-77\n")
    added = cli("migrate", "add", "ann@acme.example", "--host", "old.example", "--port", "993",
                "--tls", "ssl", "--login", OLD_USER, "--password-stdin", "--json",
                input=OLD_PASSWORD + "\n")
    job = json.loads(added.stdout)
    assert job["status"] == "queued" and job["mailbox"] == ANN and OLD_PASSWORD not in added.stdout
    assert job["has_password"] is True and "secret" not in job
    listed = json.loads(cli("migrate", "list", "--json").stdout)
    assert [j["id"] for j in listed] == [job["id"]]
    shown = cli("migrate", "show", str(job["id"])).stdout
    assert "old.example:993" in shown and "queued" in shown
    cli("migrate", "add", "ann@acme.example", "--host", "old.example", "--login", OLD_USER,
        "--password-stdin", input=OLD_PASSWORD + "\n", code=1)  # one active job at a time
    cli("migrate", "cancel", str(job["id"]))
    assert json.loads(cli("migrate", "show", str(job["id"]), "--json").stdout)[
        "status"] == "cancelled"


async def test_panel_adds_shows_progress_and_cancels(env: Env) -> None:
    await env.services.accounts.create(OP, "Bolt")
    await env.services.domains.create(OP, "bolt.example", account="Bolt", hosting=True)
    await env.services.bulk.add_lines(OP, ["cy@bolt.example|Mailbox-pass-77"],
                                      AddressList.NO_FILTER)
    foreign = await env.migrations.add(OP, "cy@bolt.example", env.source())
    await env.services.accounts.create_user(OP, "admin@acme.example", "Boss-pass-4471",
                                            account="Acme")
    async with running_server(env.settings) as url, httpx.AsyncClient(
            base_url=url, timeout=30) as http:
        panel = Panel(http)
        await panel.login("admin@acme.example", "Boss-pass-4471")
        form = await panel.get("/panel/accounts/Acme/migrations", mailbox=ANN)
        assert f'value="{ANN}"' in form and rows(form, "migrations") == [
            ["No migrations yet."]]
        refused = await panel.post("/panel/accounts/Acme/migrations", {
            "mailbox": ANN, "host": "bad host", "tls": "none", "password": "x"}, status=400)
        assert messages(refused) == ["invalid old server host 'bad host'"]
        shown = await panel.post("/panel/accounts/Acme/migrations", {
            "mailbox": ANN, "host": env.host, "port": str(env.port), "tls": "none",
            "login": OLD_USER, "password": OLD_PASSWORD})
        assert f"migration of {ANN} queued" in messages(shown)
        assert OLD_PASSWORD not in shown
        [job] = await env.migrations.list(OP, mailbox=ANN)
        await env.run_all()
        detail = await panel.get(f"/panel/accounts/Acme/migrations/{job.id}")
        assert f"{TOTAL} copied, 1 skipped of {TOTAL + 1}" in detail
        assert ["INBOX.Sent", "Sent", "2", "2", "0", "yes"] in rows(detail, "folders")
        listing = rows(await panel.get("/panel/accounts/Acme/migrations"), "migrations")
        assert [r[0] for r in listing] == [str(job.id)]  # not Bolt's job
        await panel.get(f"/panel/accounts/Acme/migrations/{foreign.id}", status=404)
        await panel.post(f"/panel/accounts/Acme/migrations/{foreign.id}/cancel", status=404)
        assert (await env.migrations.get(OP, foreign.id)).status == "done"  # not cancelled
        again = await env.migrations.add(OP, ANN, env.source())
        cancelled = await panel.post(f"/panel/accounts/Acme/migrations/{again.id}/cancel")
        assert f"migration job {again.id} cancelled" in messages(cancelled)
        assert (await env.migrations.get(OP, again.id)).status == "cancelled"


async def test_domain_batch_is_all_or_none_and_master_logins(env: Env) -> None:
    await env.services.bulk.add_lines(OP, ["bob@acme.example|Mailbox-pass-77",
                                           "sales@acme.example|bob@acme.example|relay"],
                                      AddressList.NO_FILTER)
    master = Source(env.host, env.port, "none", master_login("bob", "admin"), "Admin-pass")
    assert master.login == "bob*admin"
    with pytest.raises(InvalidInput, match="not a mailbox"):
        await env.migrations.add_batch(OP, [("bob@acme.example", master),
                                            ("sales@acme.example", env.source())])
    assert await env.migrations.list(OP) == []  # nothing queued
    jobs = await env.migrations.add_batch(OP, [("bob@acme.example", master),
                                               (ANN, env.source())])
    assert sorted(j.mailbox for j in jobs) == ["ann@acme.example", "bob@acme.example"]
    assert [j.login for j in await env.migrations.list(OP, domain="acme.example")] == [
        OLD_USER, "bob*admin"]
    with pytest.raises(Conflict):  # one active job per mailbox
        await env.migrations.add(OP, ANN, env.source())
    with pytest.raises(NotFound):  # another account's admin sees nothing of it
        await env.migrations.get(Actor.for_account(999), jobs[0].id)


async def test_background_loop_runs_jobs_in_turns(env: Env) -> None:
    """What the delivery role runs: the loop takes turns of 4 messages until done."""
    job = await env.migrations.add(OP, ANN, env.source())
    runner = env.runner(migrate_slice_messages=4, migrate_poll_seconds=0.05)
    task = asyncio.create_task(runner.run())
    try:
        async def done() -> bool:
            return (await env.job(job.id)).status == "done"
        await eventually(done)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert without_empty(await env.subjects()) == EXPECTED
