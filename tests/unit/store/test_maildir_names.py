"""Maildir names: mailbox validation, folder ↔ directory encoding (listescape + mUTF-7)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailward.store import INBOX, InvalidFolderName, InvalidMailbox
from mailward.store.maildir.names import (
    folder_dirname,
    folder_from_dirname,
    mutf7_decode,
    mutf7_encode,
    normalize_folder,
    split_mailbox,
)


def test_modified_utf7_matches_rfc_3501_example() -> None:
    text = "~peter/mail/台北/日本語"
    assert mutf7_encode(text) == "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    assert mutf7_decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-") == text
    assert mutf7_encode("a&b") == "a&-b"
    assert mutf7_encode("Entwürfe") == "Entw&APw-rfe"


@pytest.mark.parametrize("bad", ["&", "&U,BTFw", "&AA-", "&====-", "é"])
def test_malformed_modified_utf7_is_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        mutf7_decode(bad)


@pytest.mark.parametrize(
    ("folder", "dirname"),
    [
        ("Sent", ".Sent"),
        ("Archive/2024", ".Archive.2024"),
        ("v1.2", ".v1\\2e2"),
        ("a\\b", ".a\\5cb"),
        ("~x/~y", ".\\7ex.\\7ey"),
        ("x~", ".x~"),
        ("INBOX/Sub", ".INBOX.Sub"),
    ],
)
def test_folder_directory_names(folder: str, dirname: str) -> None:
    assert folder_dirname(folder) == dirname
    assert folder_from_dirname(dirname) == folder


def test_inbox_is_the_maildir_itself_and_any_case() -> None:
    assert normalize_folder("iNbOx") == INBOX
    assert normalize_folder("inbox/Sub") == "INBOX/Sub"
    assert folder_dirname(INBOX) == ""
    assert folder_from_dirname(".INBOX") is None  # would shadow the real INBOX


@pytest.mark.parametrize(
    "dirname",
    ["..", "...", "..mailward-deleted.x", "Sent", ".a..b", ".a.", ".&AC4-", ".a\\2E", ".a*b"],
)
def test_non_canonical_directories_are_not_folders(dirname: str) -> None:
    assert folder_from_dirname(dirname) is None


level = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="/*%"),
    min_size=1,
    max_size=12,
).filter(lambda s: s not in (".", ".."))


@given(st.lists(level, min_size=1, max_size=4))
def test_every_valid_folder_round_trips_to_one_safe_directory(levels: list[str]) -> None:
    folder = normalize_folder("/".join(levels))
    dirname = folder_dirname(folder)
    if folder == INBOX:
        assert dirname == ""
        return
    assert dirname.startswith(".") and not dirname.startswith("..")
    assert "/" not in dirname and "\x00" not in dirname
    assert dirname.isascii()
    assert dirname.count(".") == len(levels)
    assert folder_from_dirname(dirname) == folder


def test_over_long_folder_names_are_refused() -> None:
    assert normalize_folder("x" * 250) == "x" * 250
    with pytest.raises(InvalidFolderName, match="too long"):
        normalize_folder("x" * 255)
    with pytest.raises(InvalidFolderName, match="too long"):
        normalize_folder("ü" * 100)  # 100 characters, but 267 bytes in mUTF-7


@pytest.mark.parametrize(
    ("mailbox", "parts"),
    [
        ("ann@example.com", ("ann", "example.com")),
        ("first.last+tag@sub.example.co.uk", ("first.last+tag", "sub.example.co.uk")),
        ("jörg@xn--bcher-kva.example", ("jörg", "xn--bcher-kva.example")),
    ],
)
def test_valid_mailboxes_split(mailbox: str, parts: tuple[str, str]) -> None:
    assert split_mailbox(mailbox) == parts


@pytest.mark.parametrize(
    ("mailbox", "reason"),
    [
        ("ANN@example.com", "lower-case"),
        ("ann@bücher.example", "domain"),
        ("ann@-x.com", "domain"),
        (".ann@example.com", "local part"),
        ("a" * 65 + "@example.com", "local part"),
        ("a b@example.com", "forbidden"),
        ("a\tb@example.com", "forbidden"),
        ("a/b@example.com", "forbidden"),
    ],
)
def test_invalid_mailboxes_say_why(mailbox: str, reason: str) -> None:
    with pytest.raises(InvalidMailbox, match=reason):
        split_mailbox(mailbox)
