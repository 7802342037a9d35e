"""Conversation grouping (mailward.webmail.threads): by Message-ID / In-Reply-To /
References, and by normalised subject only for replies within the window and never on
generic subjects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailward.webmail.threads import SUBJECT_WINDOW, ThreadItem, group, normalize_subject

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def item(key: str, subject: str, hours: float, *, mid: str | None = None,
         reply_to: str | None = None, refs: tuple[str, ...] = ()) -> ThreadItem:
    return ThreadItem(key, mid, reply_to, refs, subject, T0 + timedelta(hours=hours))


def keys(groups: list[list[ThreadItem]]) -> list[list[object]]:
    return [[m.key for m in members] for members in groups]


@pytest.mark.parametrize(("subject", "base", "reply"), [
    ("Re: Lunch plans", "lunch plans", True),
    ("RE: Re: Fwd: Lunch  plans", "lunch plans", True),
    ("AW: SV: Lunch plans", "lunch plans", True),
    ("[team-list] Re: Lunch plans", "lunch plans", True),
    ("Re[2]: Lunch plans", "lunch plans", True),
    ("Lunch plans (fwd)", "lunch plans", False),
    ("Lunch plans", "lunch plans", False),
    ("Regarding lunch", "regarding lunch", False),  # "Re" only as a prefix with a colon
    ("[list]", "", False),
])
def test_normalize_subject(subject: str, base: str, reply: bool) -> None:
    assert normalize_subject(subject) == (base, reply)


def test_replies_join_by_ids_even_through_a_missing_parent() -> None:
    groups = group([
        item("a", "Budget", 0, mid="<a@x>"),
        item("b", "Something else entirely", 1, mid="<b@x>", reply_to="<a@x>"),
        item("c", "Other", 2, mid="<c@x>", refs=("<gone@x>",)),
        item("d", "Different", 3, mid="<d@x>", reply_to="<gone@x>"),  # same unseen parent
        item("e", "Budget", 4, mid="<e@x>"),  # same subject, but not a reply: its own thread
    ])
    assert keys(groups) == [["e"], ["c", "d"], ["a", "b"]]  # newest conversation first


def test_subject_fallback_needs_a_reply_prefix_and_the_window() -> None:
    late = SUBJECT_WINDOW.total_seconds() / 3600 + 1
    groups = group([
        item("q1", "Quarterly numbers", 0),
        item("q2", "Re: Quarterly numbers", 5),
        item("q3", "AW: [sales] quarterly  NUMBERS", 30),  # 25 h after q2: joins via q2
        item("q4", "Re: Quarterly numbers", 30 + late),  # past the window: alone
    ])
    assert keys(groups) == [["q4"], ["q1", "q2", "q3"]]


def test_generic_and_empty_subjects_never_merge() -> None:
    groups = group([
        item("h1", "Hello", 0), item("h2", "Re: hello", 1),
        item("n1", "", 2), item("n2", "Re:", 3),
        item("x1", "(no subject)", 4), item("x2", "Re: (no subject)", 5),
    ])
    assert sorted(keys(groups)) == [["h1"], ["h2"], ["n1"], ["n2"], ["x1"], ["x2"]]


def test_undated_messages_join_by_ids_only_and_sort_last() -> None:
    undated = ThreadItem("u", "<u@x>", "<a@x>", (), "Re: Budget", None)
    groups = group([item("a", "Budget", 0, mid="<a@x>"), undated,
                    ThreadItem("v", None, None, (), "Re: Budget", None)])
    assert keys(groups) == [["a", "u"], ["v"]]
