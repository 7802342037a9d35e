"""LIST / LSUB matching and attributes (RFC 3501, 5258, 3348, 6154)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailward.imap.listing import (
    SPECIAL_USE,
    ListEntry,
    canonical_name,
    join_reference,
    list_folders,
    pattern_matches,
)

FOLDERS = [
    "INBOX",
    "Archive/2023",
    "Archive/2024",
    "Drafts",
    "Junk",
    "Lists/python/dev",
    "Sent",
    "Trash",
    "Work",
    "Work/Projects",
]

HNC = "\\HasNoChildren"
HC = "\\HasChildren"
NOSEL = "\\Noselect"
SUB = "\\Subscribed"
NONEX = "\\NonExistent"


def names(entries: list[ListEntry]) -> list[str]:
    return [e.name for e in entries]


def attrs(entries: list[ListEntry]) -> dict[str, tuple[str, ...]]:
    return {e.name: e.attributes for e in entries}


# ----------------------------------------------------------------------- pattern_matches


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("*", "a/b/c", True),
        ("%", "a", True),
        ("%", "a/b", False),
        ("a/%", "a/b", True),
        ("a/%", "a/b/c", False),
        ("a/*", "a/b/c", True),
        ("a/*", "a", False),
        ("a*", "a", True),
        ("a*", "ab/c", True),
        ("a%", "ab/c", False),
        ("%/%", "a/b", True),
        ("%/%", "a/b/c", False),
        ("*/c", "a/b/c", True),
        ("a%c", "abbc", True),
        ("a%c", "ab/c", False),
        ("Work", "work", False),
        ("Work", "Work", True),
        ("", "", True),
        ("", "a", False),
        ("%", "", True),
        ("a.b", "axb", False),
        ("a(b)", "a(b)", True),
        ("Gr%ße", "Grüße", True),
        ("**%%a", "xya", True),
        ("%*", "a/b", True),
        ("*%", "a/b", True),
    ],
)
def test_pattern_matches(pattern: str, name: str, expected: bool) -> None:
    assert pattern_matches(pattern, name) is expected


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("inbox", "INBOX", True),
        ("InBoX", "INBOX", True),
        ("in%", "INBOX", True),
        ("i*", "INBOX", True),
        ("inbox/%", "INBOX/child", True),
        ("INBOX/%", "INBOX/child", True),
        ("inbox/CHILD", "INBOX/child", False),
        ("inbox", "Inbox2", False),
        ("inbox2", "INBOX2", False),
        ("Inbox2", "Inbox2", True),
        ("INBOX", "INBOXES", False),
        ("inbox*", "INBOXES", False),
    ],
)
def test_inbox_is_case_insensitive(pattern: str, name: str, expected: bool) -> None:
    assert pattern_matches(pattern, name) is expected


def _reference(pattern: str, name: str) -> bool:
    regex = "".join(
        ".*" if ch == "*" else "[^/]*" if ch == "%" else re.escape(ch) for ch in pattern
    )
    return re.fullmatch(regex, name, re.DOTALL) is not None


_ALPHABET = st.sampled_from(["a", "b", "/", "*", "%", "."])


@given(
    st.text(_ALPHABET, max_size=8),
    st.text(st.sampled_from(["a", "b", "/", "."]), max_size=10),
)
def test_pattern_matches_agrees_with_regex(pattern: str, name: str) -> None:
    assert pattern_matches(pattern, name) is _reference(pattern, name)


def test_pathological_pattern_is_fast() -> None:
    assert not pattern_matches("*a" * 30 + "b", "a" * 300)
    assert not pattern_matches("%a" * 30 + "b", "a" * 300)


# ----------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("reference", "pattern", "expected"),
    [
        ("", "%", "%"),
        ("Work/", "%", "Work/%"),
        ("Work", "%", "Work%"),
        ("Work/", "/%", "Work/%"),
        ("Work", "/%", "Work/%"),
        ("", "/x", "/x"),
    ],
)
def test_join_reference(reference: str, pattern: str, expected: str) -> None:
    assert join_reference(reference, pattern) == expected


def test_canonical_name() -> None:
    assert canonical_name("inbox") == "INBOX"
    assert canonical_name("Inbox/Sub") == "INBOX/Sub"
    assert canonical_name("Inboxes") == "Inboxes"
    assert canonical_name("Work") == "Work"


# ----------------------------------------------------------------------- LIST


def test_list_star_lists_everything_with_superiors() -> None:
    entries = list_folders("", "*", FOLDERS)
    assert names(entries) == [
        "INBOX",
        "Archive",
        "Archive/2023",
        "Archive/2024",
        "Drafts",
        "Junk",
        "Lists",
        "Lists/python",
        "Lists/python/dev",
        "Sent",
        "Trash",
        "Work",
        "Work/Projects",
    ]
    a = attrs(entries)
    assert a["INBOX"] == (HNC,)
    assert a["Archive"] == (NOSEL, HC)
    assert a["Lists/python"] == (NOSEL, HC)
    assert a["Archive/2023"] == (HNC,)
    assert a["Work"] == (HC,)
    assert a["Drafts"] == (HNC, "\\Drafts")
    assert a["Sent"] == (HNC, "\\Sent")
    assert a["Trash"] == (HNC, "\\Trash")
    assert a["Junk"] == (HNC, "\\Junk")


def test_list_percent_top_level() -> None:
    entries = list_folders("", "%", FOLDERS)
    assert names(entries) == [
        "INBOX",
        "Archive",
        "Drafts",
        "Junk",
        "Lists",
        "Sent",
        "Trash",
        "Work",
    ]
    assert attrs(entries)["Archive"] == (NOSEL, HC)
    assert attrs(entries)["Lists"] == (NOSEL, HC)


def test_list_percent_one_level_down() -> None:
    assert names(list_folders("", "Archive/%", FOLDERS)) == ["Archive/2023", "Archive/2024"]
    entries = list_folders("", "Lists/%", FOLDERS)
    assert entries == [ListEntry("Lists/python", (NOSEL, HC))]
    assert list_folders("", "Lists/%/%", FOLDERS) == [ListEntry("Lists/python/dev", (HNC,))]


def test_list_with_reference() -> None:
    assert names(list_folders("Work/", "%", FOLDERS)) == ["Work/Projects"]
    assert names(list_folders("Work", "%", FOLDERS)) == ["Work"]  # Dovecot: "Work%"
    assert names(list_folders("Archive/", "*", FOLDERS)) == ["Archive/2023", "Archive/2024"]
    assert names(list_folders("Archive", "/%", FOLDERS)) == ["Archive/2023", "Archive/2024"]
    assert names(list_folders("Nope/", "*", FOLDERS)) == []


def test_list_inbox_any_case() -> None:
    assert names(list_folders("", "inbox", FOLDERS)) == ["INBOX"]
    assert names(list_folders("", "Inbox", ["inbox", "Work"])) == ["INBOX"]
    assert names(list_folders("", "in%", FOLDERS)) == ["INBOX"]
    assert names(list_folders("", "inbox/%", ["INBOX", "INBOX/Sub"])) == ["INBOX/Sub"]
    assert attrs(list_folders("", "INBOX", ["INBOX", "INBOX/Sub"])) == {"INBOX": (HC,)}


def test_inbox_is_listed_even_if_not_passed() -> None:
    assert names(list_folders("", "*", ["Work"])) == ["INBOX", "Work"]


def test_exact_name_and_no_match() -> None:
    assert list_folders("", "Sent", FOLDERS) == [ListEntry("Sent", (HNC, "\\Sent"))]
    assert list_folders("", "sent", FOLDERS) == []
    assert list_folders("", "Nope", FOLDERS) == []


def test_special_use_only_top_level_and_optional() -> None:
    entries = list_folders("", "*", ["INBOX", "Work", "Work/Sent", "Sent"])
    assert attrs(entries)["Work/Sent"] == (HNC,)
    assert attrs(entries)["Sent"] == (HNC, "\\Sent")
    plain = list_folders("", "Sent", ["Sent"], return_special_use=False)
    assert plain == [ListEntry("Sent", (HNC,))]
    assert set(SPECIAL_USE) == {"Drafts", "Sent", "Trash", "Junk"}


def test_children_attributes_optional() -> None:
    entries = list_folders("", "*", FOLDERS, return_children=False)
    a = attrs(entries)
    assert a["Work"] == ()
    assert a["Archive"] == (NOSEL,)
    assert a["Sent"] == ("\\Sent",)


def test_return_subscribed() -> None:
    subs = ["INBOX", "Work/Projects", "Gone"]
    entries = list_folders("", "*", FOLDERS, subscriptions=subs, return_subscribed=True)
    a = attrs(entries)
    assert a["INBOX"] == (SUB, HNC)
    assert a["Work/Projects"] == (SUB, HNC)
    assert a["Work"] == (HC,)
    assert "Gone" not in a  # plain LIST lists only existing folders
    no_flag = attrs(list_folders("", "*", FOLDERS, subscriptions=subs))
    assert no_flag["INBOX"] == (HNC,)


def test_select_subscribed() -> None:
    subs = ["Work/Projects", "Gone", "inbox", "Sent", "Archive", "Zzz/child"]
    entries = list_folders("", "*", FOLDERS, subscriptions=subs, select_subscribed=True)
    assert entries == [
        ListEntry("INBOX", (SUB, HNC)),
        ListEntry("Archive", (SUB, NONEX, HC)),
        ListEntry("Gone", (SUB, NONEX)),
        ListEntry("Sent", (SUB, HNC, "\\Sent")),
        ListEntry("Work/Projects", (SUB, HNC)),
        ListEntry("Zzz/child", (SUB, NONEX)),
    ]
    top = list_folders("", "%", FOLDERS, subscriptions=subs, select_subscribed=True)
    assert names(top) == ["INBOX", "Archive", "Gone", "Sent"]


# ----------------------------------------------------------------------- LSUB


def test_lsub_lists_only_subscribed_without_children_attributes() -> None:
    subs = ["INBOX", "Sent", "Work", "Work/Projects", "Gone"]
    entries = list_folders("", "*", FOLDERS, subscriptions=subs, lsub=True)
    assert entries == [
        ListEntry("INBOX", ()),
        ListEntry("Gone", ()),
        ListEntry("Sent", ()),
        ListEntry("Work", ()),
        ListEntry("Work/Projects", ()),
    ]


def test_lsub_percent_returns_unsubscribed_parent_as_noselect() -> None:
    subs = ["Lists/python/dev", "Work/Projects"]
    entries = list_folders("", "%", FOLDERS, subscriptions=subs, lsub=True)
    assert entries == [ListEntry("Lists", (NOSEL,)), ListEntry("Work", (NOSEL,))]
    assert list_folders("", "Lists/%", FOLDERS, subscriptions=subs, lsub=True) == [
        ListEntry("Lists/python", (NOSEL,))
    ]
    star = list_folders("", "*", FOLDERS, subscriptions=subs, lsub=True)
    assert names(star) == ["Lists/python/dev", "Work/Projects"]


def test_lsub_subscribed_parent_is_not_noselect() -> None:
    subs = ["Work", "Work/Projects"]
    assert list_folders("", "%", FOLDERS, subscriptions=subs, lsub=True) == [ListEntry("Work", ())]


def test_lsub_with_reference_and_nothing_subscribed() -> None:
    subs = ["Work/Projects"]
    assert list_folders("Work/", "%", FOLDERS, subscriptions=subs, lsub=True) == [
        ListEntry("Work/Projects", ())
    ]
    assert list_folders("", "*", FOLDERS, lsub=True) == []
