"""IMAP CONDSTORE and QRESYNC (RFC 7162) on both stores.

* Differential: the same commands to Dovecot (``dovecot_server``, private on loopback) and
  to our server on each store, answers compared after normalising what legitimately
  differs: mod-sequence values, UIDVALIDITY, and the human text of ``* OK [CODE]`` lines.
  Commands that name a mod-sequence are written with ``{H0}``/``{H1}`` placeholders, filled
  per server from that server's own HIGHESTMODSEQ at that point, so both are asked the
  same question.
* Scale: a client that resyncs a 10,000-message folder after one flag change receives one
  FETCH line (the folder is filled through the store API: 10 deliveries, then copies).
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dovecot_server import dovecot_imap, imap_answers, write_maildir
from store_helpers import (
    ANN,
    PASSWORD,
    Auth,
    Client,
    empty_store_db,
    pg_or_maildir_fixture,  # noqa: F401 - the fixture pg_or_maildir
)

from mailward.imap.server import start_imap
from mailward.imap.session import ImapServices
from mailward.store import INBOX, MaildirStore, MailStore, NotifyingStore
from mailward.store.events import MailboxEvents
from mailward.store.postgres import PostgresStore

MESSAGES = 6
FLAGGED = "\\Flagged"


def _message(n: int) -> bytes:
    return (f"From: s{n}@example.org\r\nTo: {ANN}\r\nSubject: m {n}\r\n"
            f"Message-ID: <m{n}@t>\r\n\r\nbody {n}\r\n").encode()


def _corpus() -> list[tuple[str, bytes, datetime]]:
    start = datetime(2024, 2, 1, 12, 0, tzinfo=UTC)
    return [(f"m{n}", _message(n), start + timedelta(minutes=n)) for n in range(MESSAGES)]


@pytest.fixture
async def store(pg_or_maildir: str | None, tmp_path: Path) -> AsyncIterator[MailStore]:
    if pg_or_maildir is None:
        yield MaildirStore(tmp_path / "mail")
        return
    db = await empty_store_db(pg_or_maildir)
    try:
        yield PostgresStore(db)
    finally:
        await db.dispose()


@asynccontextmanager
async def served(store: MailStore) -> AsyncIterator[tuple[str, int, ImapServices]]:
    """Our IMAP server for ``store`` on 127.0.0.1 and a free port."""
    events = MailboxEvents()
    services = ImapServices(authenticator=Auth(), store=NotifyingStore(store, events),
                            events=events, allow_plaintext_auth=True)
    sock = socket.create_server(("127.0.0.1", 0))
    server = await start_imap(services, sock=sock, implicit_tls=False)
    try:
        host, port = sock.getsockname()[:2]
        yield host, port, services
    finally:
        server.close()
        services.shut_down()
        await server.wait_closed()


# -- differential ------------------------------------------------------------------------

# Stages: each runs on a new connection (imap_answers: LOGIN, EXAMINE INBOX, commands).
# {H0} is the HIGHESTMODSEQ after stage 0 ({N0} one more), {H1} after stage 1, {V} the
# UIDVALIDITY.
STAGES: list[list[str]] = [
    ["ENABLE CONDSTORE", "SELECT INBOX (CONDSTORE)", "UID FETCH 1:* (FLAGS MODSEQ)"],
    [
        "SELECT INBOX (CONDSTORE)",
        "UID FETCH 1:* (FLAGS) (CHANGEDSINCE {H0})",
        "STORE 2 +FLAGS (\\Flagged)",
        "UID FETCH 1:* (FLAGS) (CHANGEDSINCE {H0})",
        "FETCH 1:* (UID) (CHANGEDSINCE {H0})",
        "UID STORE 3 (UNCHANGEDSINCE {H0}) +FLAGS (\\Seen)",
        "UID STORE 2:3 (UNCHANGEDSINCE {H0}) +FLAGS (\\Answered)",
        "STORE 1:4 (UNCHANGEDSINCE {H0}) +FLAGS.SILENT (\\Draft)",
        "UID SEARCH MODSEQ {N0}",
        "UID SEARCH MODSEQ 1 UID 1",
        "UID STORE 4 +FLAGS.SILENT (\\Deleted)",
        "EXPUNGE",
    ],
    [
        "ENABLE QRESYNC",
        "SELECT INBOX (QRESYNC ({V} {H0}))",
        "SELECT INBOX (QRESYNC ({V} {H0} 1:3))",
        "SELECT INBOX (QRESYNC ({V} {H1} 1:10))",
        "UID STORE 5 +FLAGS (\\Deleted)",
        "UID EXPUNGE 5",
        "UID FETCH 1:* (FLAGS) (CHANGEDSINCE {H0} VANISHED)",
        "UID FETCH 1:3 (FLAGS) (CHANGEDSINCE {H1} VANISHED)",
        "SELECT INBOX (QRESYNC (1 {H0}))",
    ],
]

_MODSEQ = re.compile(rb"((?:\bMODSEQ \(|\bHIGHESTMODSEQ |\(MODSEQ ))(\d+)")
_UIDVALIDITY = re.compile(rb"UIDVALIDITY \d+")
_OK_TEXT = re.compile(rb"^(\* OK \[[^\]]*\])[^\r\n]*", re.M)


def normalise(answer: bytes) -> bytes:
    answer = _MODSEQ.sub(rb"\1N", answer)
    answer = _UIDVALIDITY.sub(b"UIDVALIDITY V", answer)
    return _OK_TEXT.sub(rb"\1", answer)


def _highest(answer: bytes) -> int:
    found = re.findall(rb"HIGHESTMODSEQ (\d+)", answer)
    assert found, answer
    return int(found[-1])


def run_stages(host: str, port: int) -> list[list[bytes]]:
    """Every stage's raw answers, placeholders filled from this server's own answers."""
    values: dict[str, int] = {}
    out: list[list[bytes]] = []
    for n, stage in enumerate(STAGES):
        commands = [command.format(**values) for command in stage]
        answers = imap_answers(host, port, ANN, PASSWORD, commands)
        out.append(answers)
        status = imap_answers(host, port, ANN, PASSWORD,
                              ["STATUS INBOX (HIGHESTMODSEQ UIDVALIDITY)"])[0]
        values[f"H{n}"] = _highest(status)
        values[f"N{n}"] = values[f"H{n}"] + 1
        values["V"] = int(re.findall(rb"UIDVALIDITY (\d+)", status)[0])
    return out


@pytest.fixture(scope="module")
def dovecot_says(tmp_path_factory: pytest.TempPathFactory) -> list[list[bytes]]:
    base = tmp_path_factory.mktemp("dovecot-condstore")
    write_maildir(base / "Maildir", _corpus())
    with dovecot_imap(base / "work", user=ANN, password=PASSWORD,
                      maildir=base / "Maildir") as (host, port):
        return run_stages(host, port)


async def test_condstore_and_qresync_answer_like_dovecot(
        store: MailStore, dovecot_says: list[list[bytes]]) -> None:
    for _name, raw, date in _corpus():
        await store.deliver(ANN, raw, internal_date=date)
    async with served(store) as (host, port, _services):
        ours = await asyncio.to_thread(run_stages, host, port)
    mismatches = []
    for stage, (our_answers, their_answers) in enumerate(zip(ours, dovecot_says, strict=True)):
        for command, mine, theirs in zip(STAGES[stage], our_answers, their_answers, strict=True):
            if normalise(mine) != normalise(theirs):
                mismatches.append(f"--- stage {stage}: {command}\n  dovecot: {theirs!r}\n"
                                  f"  ours:    {mine!r}")
    assert not mismatches, "\n".join(mismatches)
    # Worth something only if the answers carried the RFC 7162 responses.
    flat = b"".join(b"".join(stage) for stage in dovecot_says)
    for needed in (b"[MODIFIED ", b"VANISHED (EARLIER) ", b"* VANISHED 5", b"MODSEQ (",
                   b"[HIGHESTMODSEQ ", b"[CLOSED]"):
        assert needed in flat, needed


# -- scale -------------------------------------------------------------------------------

async def _fill(store: MailStore, total: int) -> None:
    """``total`` messages in INBOX through the store API: 10 deliveries, then copies of
    the folder onto itself (each doubles it) and a last partial copy."""
    for n in range(10):
        await store.deliver(ANN, _message(n))
    count = 10
    while count < total:
        uids = [info.uid for info in await store.messages(ANN, INBOX)][: total - count]
        await store.copy(ANN, INBOX, uids, INBOX)
        count += len(uids)


async def _session(port: int) -> tuple[Client, Callable[[], None]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = Client(reader, writer)
    await client.line()
    await client.command(f"LOGIN {ANN} {PASSWORD}")
    return client, writer.close


async def test_a_resync_after_one_change_in_10000_messages_is_one_line(
        store: MailStore) -> None:
    await _fill(store, 10_000)
    infos = await store.messages(ANN, INBOX)
    assert len(infos) == 10_000
    async with served(store) as (_host, port, services):
        first, close = await _session(port)
        await first.command("ENABLE QRESYNC")
        lines = await first.command("SELECT INBOX")
        highest = _highest(b"".join(lines))
        uidvalidity = int(re.findall(rb"UIDVALIDITY (\d+)", b"".join(lines))[0])
        assert highest >= max(info.modseq for info in infos)
        close()

        # One change while the client is away (another client, through the store).
        target = infos[4321].uid
        await services.store.set_flags(ANN, INBOX, target, {FLAGGED})

        again, close = await _session(port)
        await again.command("ENABLE QRESYNC")
        lines = await again.command(f"SELECT INBOX (QRESYNC ({uidvalidity} {highest}))")
        fetches = [line for line in lines if b" FETCH " in line]
        assert fetches == [b"* 4322 FETCH (UID %d FLAGS (\\Flagged) MODSEQ (%d))\r\n"
                           % (target, highest + 1)]
        assert not any(b"VANISHED" in line for line in lines)
        assert len(lines) <= 9  # FLAGS, OK x4-5, EXISTS, RECENT, the FETCH
        assert b"* 10000 EXISTS\r\n" in lines
        new_highest = _highest(b"".join(lines))
        assert new_highest == highest + 1

        # The same through FETCH (CHANGEDSINCE): one line, then none.
        assert len(await again.command(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {highest})")) == 1
        assert await again.command(f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {new_highest})") == []

        # An expunge seen by a resyncing client: one VANISHED (EARLIER), no FETCH.
        await services.store.set_flags(ANN, INBOX, infos[7].uid, {"\\Deleted"})
        await services.store.expunge(ANN, INBOX, [infos[7].uid])
        close()
        third, close = await _session(port)
        await third.command("ENABLE QRESYNC")
        lines = await third.command(f"SELECT INBOX (QRESYNC ({uidvalidity} {new_highest}))")
        changed = [line for line in lines if b"FETCH" in line or b"VANISHED" in line]
        assert changed == [b"* VANISHED (EARLIER) %d\r\n" % infos[7].uid], changed
        close()


# -- expunged UIDs: bounded, and what a client then hears -------------------------------

async def _resync_answer(port: int, uidvalidity: int, modseq: int) -> list[bytes]:
    client, close = await _session(port)
    try:
        await client.command("ENABLE QRESYNC")
        lines = await client.command(f"SELECT INBOX (QRESYNC ({uidvalidity} {modseq}))")
        return [line for line in lines if b"FETCH" in line or b"VANISHED" in line]
    finally:
        close()


@pytest.mark.parametrize("limit", [1, 100])
async def test_pruned_expunges_answer_with_every_missing_uid(
        store: MailStore, limit: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mailward.store.modseq.VANISHED_LIMIT", limit)
    # PostgreSQL prunes only once its text is long: make that "always" here
    monkeypatch.setattr("mailward.store.postgres.queries.VANISHED_TEXT_LIMIT", 0)
    for n in range(6):
        await store.deliver(ANN, _message(n), flags=frozenset({"\\Deleted"}) if n < 3
                            else frozenset())
    await store.expunge(ANN, INBOX, [1])  # before the client's last look
    status = await store.folder_status(ANN, INBOX)
    for uid in (2, 3):  # each its own expunge: with a limit of 1, UID 2's is pruned
        await store.expunge(ANN, INBOX, [uid])
    async with served(store) as (_host, port, _services):
        lines = await _resync_answer(port, status.uidvalidity, status.highestmodseq)
    # Precise: what went since. Pruned: every UID below UIDNEXT that is gone (RFC 7162
    # §3.2.5.2 allows it; the client drops what it no longer has anyway).
    assert lines == [b"* VANISHED (EARLIER) 2:3\r\n" if limit == 100
                     else b"* VANISHED (EARLIER) 1:3\r\n"]


async def test_maildir_log_survives_a_torn_record_and_files_removed_behind_its_back(
        tmp_path: Path) -> None:
    store = MaildirStore(tmp_path / "mail")
    for n in range(4):
        await store.deliver(ANN, _message(n))
    before = await store.folder_status(ANN, INBOX)
    inbox = store.maildir_path(ANN)
    log = inbox / "mailward-modseq"
    log.write_bytes(log.read_bytes() + b"99 2")  # a crash inside an append: no newline
    fresh = MaildirStore(tmp_path / "mail")  # nothing cached
    assert (await fresh.folder_status(ANN, INBOX)).highestmodseq == before.highestmodseq
    await fresh.set_flags(ANN, INBOX, 3, {FLAGGED})
    infos = {info.uid: info for info in await MaildirStore(tmp_path / "mail").messages(
        ANN, INBOX)}
    assert infos[3].modseq == before.highestmodseq + 1
    assert infos[2].modseq < infos[3].modseq  # the torn record counted for nothing
    # A file removed by another program is an expunge too, once a sync notices it.
    victim = next(p for p in (inbox / "new").iterdir() if p.stat().st_size)
    gone_uid = next(uid for uid, info in infos.items()
                    if info.size == victim.stat().st_size and uid != 3)
    names = {info.uid for info in infos.values()}
    victim.unlink()
    after = await fresh.messages(ANN, INBOX)
    assert len(after) == len(names) - 1
    lost = names - {info.uid for info in after}
    status = await fresh.folder_status(ANN, INBOX)
    assert status.highestmodseq == before.highestmodseq + 2
    assert await fresh.vanished(ANN, INBOX, before.highestmodseq + 1) == sorted(lost)
    assert gone_uid  # (the sizes are equal: any one of them may be the victim)


async def test_unchangedsince_is_checked_by_the_store_not_only_by_the_session_view(
        store: MailStore) -> None:
    for n in range(3):
        await store.deliver(ANN, _message(n))
    async with served(store) as (_host, port, _services):
        client, close = await _session(port)
        try:
            await client.command("ENABLE CONDSTORE")
            highest = _highest(b"".join(await client.command("SELECT INBOX")))
            # Changed behind the session's back (the raw store announces nothing): the
            # session's view still has UID 2 unchanged.
            await store.set_flags(ANN, INBOX, 2, {"$Other"})
            client.writer.write(
                b"s UID STORE 1:3 (UNCHANGEDSINCE %d) +FLAGS (\\Flagged)\r\n" % highest)
            lines = []
            while not (line := await client.response()).startswith(b"s "):
                lines.append(line)
            assert line.startswith(b"s OK [MODIFIED 2] "), (line, lines, highest)
            assert [re.sub(rb"MODSEQ \(\d+\)", b"MODSEQ (N)", x) for x in lines] == [
                b"* 1 FETCH (UID 1 MODSEQ (N) FLAGS (\\Flagged \\Recent))\r\n",
                b"* 3 FETCH (UID 3 MODSEQ (N) FLAGS (\\Flagged \\Recent))\r\n",
            ]
        finally:
            close()
    flags = {info.uid: info.flags for info in await store.messages(ANN, INBOX)}
    assert flags == {1: {FLAGGED}, 2: {"$Other"}, 3: {FLAGGED}}


async def test_a_qresync_session_hears_changes_with_uid_and_modseq_and_vanished(
        store: MailStore) -> None:
    for n in range(3):
        await store.deliver(ANN, _message(n), flags=frozenset({"\\Deleted"}) if n == 1
                            else frozenset())
    async with served(store) as (_host, port, services):
        client, close = await _session(port)
        try:
            await client.command("ENABLE QRESYNC")
            await client.command("SELECT INBOX")
            await services.store.set_flags(ANN, INBOX, 1, {FLAGGED})
            await services.store.expunge(ANN, INBOX, [2])
            status = await store.folder_status(ANN, INBOX)
            lines = await client.command("NOOP")
            assert lines == [b"* VANISHED 2\r\n", b"* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent) "
                             b"MODSEQ (%d))\r\n" % (status.highestmodseq - 1)]
            # SEARCH MODSEQ answers with the highest modseq of what it found
            assert await client.command(f"UID SEARCH MODSEQ {status.highestmodseq - 1}") == [
                b"* SEARCH 1 (MODSEQ %d)\r\n" % (status.highestmodseq - 1)]
            status_line = await client.command("STATUS INBOX (HIGHESTMODSEQ MESSAGES)")
            assert status_line == [b'* STATUS "INBOX" (HIGHESTMODSEQ %d MESSAGES 2)\r\n'
                                   % status.highestmodseq]
        finally:
            close()


async def test_maildir_log_is_compacted_and_keeps_every_modseq(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mailward.store.maildir.modseqs.COMPACT_SLACK", 4)
    store = MaildirStore(tmp_path / "mail")
    for n in range(3):
        await store.deliver(ANN, _message(n), flags=frozenset({"\\Deleted"}) if n == 0
                            else frozenset())
    await store.expunge(ANN, INBOX, [1])
    for n in range(12):  # flag churn only: the log is rewritten now and then
        await store.set_flags(ANN, INBOX, 2 + n % 2, {FLAGGED} if n % 4 < 2 else set())
    log = store.maildir_path(ANN) / "mailward-modseq"
    assert len(log.read_bytes().splitlines()) < 12
    fresh = MaildirStore(tmp_path / "mail")
    infos = {info.uid: info.modseq for info in await fresh.messages(ANN, INBOX)}
    status = await fresh.folder_status(ANN, INBOX)
    assert status.highestmodseq == 1 + 3 + 1 + 12  # start, deliveries, expunge, changes
    assert infos == {2: status.highestmodseq - 1, 3: status.highestmodseq}
    assert await fresh.vanished(ANN, INBOX, 4) == [1]
