"""The Dovecot reference server of the IMAP differential tests works as they assume.

Dovecot comes from Debian (scripts/ensure-mail-clients); these tests fail without it.
"""

from __future__ import annotations

import imaplib
import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from dovecot_server import DOVECOT, dovecot_imap, imap_answers, responses, write_maildir
from imap_corpus import DATES, NAMES, WORDS, corpus, uids_of

USER = "alice@example.com"
PASSWORD = 'correct horse "battery"'  # spaces and quotes: sent as an IMAP literal


@pytest.fixture(scope="module")
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    base = tmp_path_factory.mktemp("dovecot")
    write_maildir(base / "Maildir", corpus())
    with dovecot_imap(base / "work", user=USER, password=PASSWORD,
                      maildir=base / "Maildir") as address:
        yield address


def test_tools_are_installed() -> None:
    assert Path(DOVECOT).is_file(), "run scripts/ensure-mail-clients"
    assert shutil.which("mbsync"), "run scripts/ensure-mail-clients"


def test_write_maildir_names_files_in_order(tmp_path: Path) -> None:
    paths = write_maildir(tmp_path / "Maildir", corpus())
    assert [p.parent.name for p in paths] == ["cur"] * len(NAMES)
    assert sorted(paths) == paths
    for path, name in zip(paths, NAMES, strict=True):
        assert path.stat().st_mtime == DATES[name].timestamp()
        assert path.name.endswith(":2,")
    assert {p.name for p in (tmp_path / "Maildir").iterdir()} == {"cur", "new", "tmp"}


def test_examine_counts_uids_and_answers_every_message(dovecot: tuple[str, int]) -> None:
    host, port = dovecot
    with imaplib.IMAP4(host, port, timeout=30) as imap:
        imap.login(USER, PASSWORD)
        status, [exists] = imap.select("INBOX", readonly=True)
        assert status == "OK" and int(exists) == len(NAMES)

        status, data = imap.fetch("1:*", "(UID INTERNALDATE)")
        assert status == "OK"
        uids = [int(re.search(rb"UID (\d+)", line).group(1)) for line in data]
        assert uids == list(range(1, len(NAMES) + 1))  # UIDs follow the corpus order
        dates = [re.search(rb'INTERNALDATE "([^"]+)"', line).group(1).decode() for line in data]
        # The file's mtime, shown in Dovecot's zone: the harness runs it with TZ=UTC.
        assert dates == [DATES[n].strftime("%d-%b-%Y %H:%M:%S +0000") for n in NAMES]

        status, data = imap.uid("FETCH", "1:*", "(ENVELOPE BODYSTRUCTURE)")
        assert status == "OK"
        # imaplib splits a response at its literals: (text, literal) tuples, then the text
        # after the literal; only the first piece of a response starts "<n> (UID <uid> ".
        pieces = [item[0] if isinstance(item, tuple) else item for item in data]
        starts = [re.match(rb"(\d+) \(UID (\d+) ", piece) for piece in pieces]
        heads = [(int(m.group(1)), int(m.group(2))) for m in starts if m]
        assert heads == [(n, n) for n in range(1, len(NAMES) + 1)]
        flat = b"".join(part for item in data for part in (
            item if isinstance(item, tuple) else (item,)))
        assert flat.count(b" ENVELOPE (") == len(NAMES)
        assert flat.count(b" BODYSTRUCTURE (") == len(NAMES)


def test_imap_answers_has_one_fetch_response_per_message(dovecot: tuple[str, int]) -> None:
    [answer] = imap_answers(*dovecot, USER, PASSWORD, ["FETCH 1:* (ENVELOPE BODYSTRUCTURE)"])
    *fetches, status = responses(answer)
    assert status == b"OK\r\n"
    assert len(fetches) == len(NAMES)
    for n, fetch in enumerate(fetches, start=1):
        assert fetch.startswith(b"* %d FETCH (" % n) and fetch.endswith(b")\r\n")
        assert b"(ENVELOPE (" in fetch and b" BODYSTRUCTURE (" in fetch
    assert any(b"}\r\n" in fetch for fetch in fetches)  # some strings came as literals


def test_login_with_a_wrong_password_fails(dovecot: tuple[str, int]) -> None:
    host, port = dovecot
    with imaplib.IMAP4(host, port, timeout=30) as imap, pytest.raises(imaplib.IMAP4.error):
        imap.login(USER, "wrong")


@pytest.mark.parametrize("word", sorted(WORDS))
def test_search_body_finds_the_planted_words(dovecot: tuple[str, int], word: str) -> None:
    [answer] = imap_answers(*dovecot, USER, PASSWORD, [f"UID SEARCH CHARSET UTF-8 BODY {word}"])
    expected = b" ".join(b"%d" % uid for uid in uids_of(WORDS[word]))
    assert answer == b"* SEARCH " + expected + b"\r\nOK\r\n"


def test_imap_answers_keeps_untagged_lines_and_literals(dovecot: tuple[str, int]) -> None:
    uid = NAMES.index("09-message-rfc822") + 1
    raw = dict((name, data) for name, data, _ in corpus())["09-message-rfc822"]
    fetch, structure, search, bad, missing = imap_answers(*dovecot, USER, PASSWORD, [
        f"UID FETCH {uid} (BODY.PEEK[2.HEADER.FIELDS (Subject)] BODY.PEEK[])",
        f"UID FETCH {uid} (BODYSTRUCTURE)",
        "UID SEARCH CHARSET UTF-8 SUBJECT Grüße",  # a literal in the command
        "UID SEARCH CHARSET NO-SUCH-CHARSET BODY x",
        "UID FETCH 999 (ENVELOPE)",
    ])
    fields = b"Subject: Birds\r\n\r\n"
    assert fetch == (b"* %d FETCH (UID %d BODY[2.HEADER.FIELDS (SUBJECT)] {%d}\r\n%s"
                     b" BODY[] {%d}\r\n%s)\r\nOK\r\n"
                     % (uid, uid, len(fields), fields, len(raw), raw))
    assert structure.startswith(b"* %d FETCH (UID %d BODYSTRUCTURE ((" % (uid, uid))
    assert b'("message" "rfc822" NIL NIL NIL "7bit" ' in structure
    assert structure.endswith(b"\r\nOK\r\n") and structure.count(b"\r\n") == 2
    assert search == b"* SEARCH %d\r\nOK\r\n" % (NAMES.index("03-encoded-words") + 1)
    assert bad.startswith(b"NO [BADCHARSET") and bad.count(b"\r\n") == 1
    assert missing == b"OK\r\n"  # a UID that does not exist: no untagged data


def test_examine_leaves_no_seen_flags(dovecot: tuple[str, int]) -> None:
    [flags_before, _, flags_after] = imap_answers(*dovecot, USER, PASSWORD, [
        "UID FETCH 1 (FLAGS)", "UID FETCH 1 (BODY[TEXT])", "UID FETCH 1 (FLAGS)"])
    assert b"\\Seen" not in flags_before
    assert b"\\Seen" not in flags_after


def test_the_original_maildir_is_left_alone(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    write_maildir(maildir, corpus()[:2])
    before = sorted(str(p.relative_to(maildir)) for p in maildir.rglob("*"))
    with dovecot_imap(tmp_path / "work", user=USER, password=PASSWORD,
                      maildir=maildir) as address:
        [answer] = imap_answers(*address, USER, PASSWORD, ["UID SEARCH ALL"])
        assert answer == b"* SEARCH 1 2\r\nOK\r\n"
    assert sorted(str(p.relative_to(maildir)) for p in maildir.rglob("*")) == before
    assert (tmp_path / "work" / "dovecot.conf").read_text().count("listen = 127.0.0.1") == 1
    assert "starting up for imap" in (tmp_path / "work" / "dovecot.log").read_text()
    host, port = address
    with pytest.raises(OSError):  # stopped: nothing listens there any more
        socket.create_connection((host, port), timeout=5).close()


def test_failures_inside_the_block_carry_the_log(tmp_path: Path) -> None:
    write_maildir(tmp_path / "Maildir", [])
    with pytest.raises(AssertionError) as caught, dovecot_imap(
            tmp_path / "work", user=USER, password=PASSWORD, maildir=tmp_path / "Maildir"):
        raise AssertionError("boom")
    assert any("Dovecot v2." in note for note in caught.value.__notes__)
