"""Spam-filter training from the Junk folder: COPY / MOVE / APPEND over real sockets.

The reporter here is a recording fake standing for the filter. Reports run after the
command's answer is sent and before the next command is read, so once a later command
(NOOP) is answered, the reports of the earlier ones are done.
"""

from __future__ import annotations

import asyncio
import imaplib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from imap_testkit import ANN, BOB, ImapTestServer, imap_server, message

from mailward.imap.reports import verdict
from mailward.store import INBOX, MaildirStore


@dataclass
class Recorder:
    """Records ``(mailbox, data, spam)``; optionally fails or waits for a gate first."""

    calls: list[tuple[str, bytes, bool]] = field(default_factory=list)
    fail: bool = False
    gate: asyncio.Event | None = None

    async def report(self, mailbox: str, data: bytes, spam: bool) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.calls.append((mailbox, data, spam))
        if self.fail:
            raise RuntimeError("filter unavailable")


def _ok(result: tuple[str, list]) -> list:
    status, data = result
    assert status == "OK", data
    return data


def _settled(client: imaplib.IMAP4) -> None:
    """Another command round trip: the reports of the previous commands are done."""
    _ok(client.noop())


@pytest.fixture
def reporter(imap_any: ImapTestServer) -> Recorder:
    rec = Recorder()
    imap_any.services.spam_reporter = rec
    return rec


def test_verdicts() -> None:
    assert verdict(INBOX, "Junk") is True
    assert verdict("Archive/2026", "Junk") is True
    assert verdict(None, "Junk") is True  # APPEND
    assert verdict("Junk", INBOX) is False
    assert verdict("Junk", "Archive") is False
    assert verdict("Junk", "Sent") is False
    assert verdict("Junk", "Trash") is None
    assert verdict("Junk", "Junk") is None
    assert verdict(INBOX, "Archive") is None
    assert verdict(INBOX, "Trash") is None
    assert verdict(None, INBOX) is None
    assert verdict("Archive/Junk", INBOX) is None  # only the special-use folder counts
    assert verdict(INBOX, "Archive/Junk") is None


def test_move_into_junk_reports_spam(imap_any: ImapTestServer, reporter: Recorder) -> None:
    spam_a, ham, spam_b = message("Cheap pills"), message("Lunch?"), message("You won")
    for data in (spam_a, ham, spam_b):
        imap_any.deliver(ANN, data)
    client = imap_any.login()
    _ok(client.select(INBOX))
    _ok(client._simple_command("MOVE", "1,3", "Junk"))
    _settled(client)
    assert reporter.calls == [(ANN, spam_a, True), (ANN, spam_b, True)]
    _ok(client.select("Junk"))
    assert _ok(client.search(None, "ALL")) == [b"1 2"]
    client.logout()


def test_uid_move_into_junk_reports_the_users_mailbox(imap_any: ImapTestServer,
                                                       reporter: Recorder) -> None:
    data = message("For Bob", to=BOB)
    stored = imap_any.deliver(BOB, data)
    client = imap_any.login(BOB)
    _ok(client.select(INBOX))
    _ok(client.uid("MOVE", str(stored.uid), "Junk"))
    _settled(client)
    assert reporter.calls == [(BOB, data, True)]
    client.logout()


def test_copy_and_uid_copy_into_junk_report_spam(imap_any: ImapTestServer,
                                                   reporter: Recorder) -> None:
    first, second = message("Copy one"), message("Copy two")
    imap_any.deliver(ANN, first)
    stored = imap_any.deliver(ANN, second)
    client = imap_any.login()
    _ok(client.select(INBOX))
    _ok(client.copy("1", "Junk"))
    _ok(client.uid("COPY", str(stored.uid), "Junk"))
    _settled(client)
    assert reporter.calls == [(ANN, first, True), (ANN, second, True)]
    assert _ok(client.search(None, "ALL")) == [b"1 2"]  # the originals stay
    client.logout()


def test_move_out_of_junk_reports_ham_except_into_trash(imap_any: ImapTestServer,
                                                        reporter: Recorder) -> None:
    wanted, unwanted = message("Newsletter I want"), message("Real junk")
    client = imap_any.login()  # creates Junk
    imap_any.deliver(ANN, wanted, folder="Junk")
    imap_any.deliver(ANN, unwanted, folder="Junk")
    _ok(client.select("Junk"))
    _ok(client._simple_command("MOVE", "1", INBOX))
    _settled(client)
    assert reporter.calls == [(ANN, wanted, False)]
    _ok(client._simple_command("MOVE", "1", "Trash"))  # the former 2
    _settled(client)
    assert reporter.calls == [(ANN, wanted, False)]
    client.logout()


def test_copy_out_of_junk_into_another_folder_reports_ham(imap_any: ImapTestServer,
                                                          reporter: Recorder) -> None:
    data = message("Not junk after all")
    client = imap_any.login()  # creates Junk
    imap_any.deliver(ANN, data, folder="Junk")
    _ok(client.create("Archive"))
    _ok(client.select("Junk"))
    _ok(client.copy("1", "Archive"))
    _ok(client.copy("1", "Trash"))
    _ok(client.copy("1", "Junk"))  # Junk → Junk teaches nothing
    _settled(client)
    assert reporter.calls == [(ANN, data, False)]
    client.logout()


def test_other_copies_and_moves_report_nothing(imap_any: ImapTestServer,
                                               reporter: Recorder) -> None:
    imap_any.deliver(ANN, message("Keep"))
    imap_any.deliver(ANN, message("Delete"))
    client = imap_any.login()
    _ok(client.create("Archive"))
    _ok(client.select(INBOX))
    _ok(client.copy("1", "Archive"))
    _ok(client._simple_command("MOVE", "2", "Trash"))
    status, data = client.copy("1", "Nowhere")  # failed: nothing to learn either
    assert status == "NO" and b"TRYCREATE" in data[0]
    _settled(client)
    assert reporter.calls == []
    client.logout()


def test_append_into_junk_reports_spam(imap_any: ImapTestServer, reporter: Recorder) -> None:
    junk, normal = message("Appended junk"), message("Appended mail")
    client = imap_any.login()
    _ok(client.append("Junk", None, None, junk))
    _ok(client.append(INBOX, None, None, normal))
    _settled(client)
    assert reporter.calls == [(ANN, junk, True)]
    client.logout()


def test_without_a_reporter_moves_into_junk_work(imap: ImapTestServer) -> None:
    imap.deliver(ANN, message("Unreported"))
    client = imap.login()
    _ok(client.select(INBOX))
    _ok(client._simple_command("MOVE", "1", "Junk"))
    _ok(client.append("Junk", None, None, message("Also unreported")))
    assert _ok(client.status("Junk", "(MESSAGES)")) == [b'"Junk" (MESSAGES 2)']
    client.logout()


def test_failing_reporter_does_not_fail_the_session(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder(fail=True)
    with imap_server(lambda: MaildirStore(tmp_path), spam_reporter=rec) as srv:
        first, second, third = message("One"), message("Two"), message("Three")
        srv.deliver(ANN, first)
        srv.deliver(ANN, second)
        client = srv.login()
        _ok(client.select(INBOX))
        _ok(client._simple_command("MOVE", "1:2", "Junk"))
        _ok(client.append("Junk", None, None, third))
        _settled(client)
        # every message was tried in spite of the failures before it
        assert rec.calls == [(ANN, first, True), (ANN, second, True), (ANN, third, True)]
        _ok(client.select("Junk"))
        assert _ok(client.search(None, "ALL")) == [b"1 2 3"]
        client.logout()
    failures = [r for r in caplog.records
                if r.name == "mailward.imap.reports" and r.exc_info is not None]
    assert len(failures) == 3
    assert all(isinstance(r.exc_info[1], RuntimeError) for r in failures if r.exc_info)


def test_reports_run_after_the_answer_is_sent(tmp_path: Path) -> None:
    with imap_server(lambda: MaildirStore(tmp_path)) as srv:
        gate = srv.call(_new_event())
        rec = Recorder(gate=gate)
        srv.services.spam_reporter = rec
        data = message("Slow filter")
        srv.deliver(ANN, data)
        client = srv.login()
        _ok(client.select(INBOX))
        _ok(client._simple_command("MOVE", "1", "Junk"))  # answered while the filter waits
        assert rec.calls == []
        srv.loop.call_soon_threadsafe(gate.set)
        _settled(client)
        assert rec.calls == [(ANN, data, True)]
        client.logout()


async def _new_event() -> asyncio.Event:
    return asyncio.Event()
