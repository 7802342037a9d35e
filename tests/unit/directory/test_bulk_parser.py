"""The bulk-add line parser: formats of docs/procedures.md ("Bulk add"), and robustness."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mailward.db.models import AddressKind
from mailward.directory.bulk import parse_bulk, parse_line


def test_bare_address_is_pending_and_normalised() -> None:
    line = parse_line(1, "  Info@Example.COM \r")
    assert (line.address, line.kind, line.error) == ("info@example.com", AddressKind.PENDING, None)


def test_password_line_makes_a_mailbox() -> None:
    line = parse_line(1, "myaddress@mydomain.com|mypass")
    assert (line.kind, line.password, line.warning) == (AddressKind.MAILBOX, "mypass", None)


def test_relay_line_makes_a_forwarder_with_every_destination() -> None:
    line = parse_line(1, "addr1@tld.com|dest1@tld.com, Dest2@TLD.com|RELAY")
    assert line.kind is AddressKind.FORWARDER
    assert line.destinations == "dest1@tld.com,dest2@tld.com"
    assert line.password is None


def test_third_field_other_than_relay_is_a_mailbox_with_a_warning() -> None:
    line = parse_line(7, "a@tld.com|dest@tld.com|rely")
    assert line.kind is AddressKind.MAILBOX
    assert line.password == "dest@tld.com"
    assert line.warning is not None and "'rely'" in line.warning and "relay" in line.warning


def test_errors_name_the_reason() -> None:
    assert "not a valid address" in (parse_line(1, "no-at-sign").error or "")
    assert "at most 3" in (parse_line(1, "a@b.com|x|relay|more").error or "")
    assert "empty" in (parse_line(1, "a@b.com|").error or "")
    assert "128" in (parse_line(1, "a@b.com|" + ",".join(
        f"user{n}@example.com" for n in range(8)) + "|relay").error or "")
    assert "itself" in (parse_line(1, "a@b.com|A@b.com|relay").error or "")
    assert "not a valid address" in (parse_line(1, "a@b.com|nope|relay").error or "")


def test_destination_limit_counts_commas() -> None:
    dest = "d" * 50 + "@example.com"  # 62 characters; two joined by a comma = 125
    ok = parse_line(1, f"a@b.com|{dest},{dest.replace('d', 'e', 1)}|relay")
    assert ok.error is None and len(ok.destinations or "") == 125
    longer = "d" * 52 + "@example.com"  # 64 + 1 + 64 = 129
    assert parse_line(1, f"a@b.com|{longer},{longer.replace('d', 'e', 1)}|relay").error


def test_shown_text_never_contains_the_password() -> None:
    line = parse_line(1, "a@b.com|s3cret-password")
    assert "s3cret" not in line.shown and line.shown == "a@b.com"


def test_blank_lines_are_skipped_but_counted() -> None:
    lines = list(parse_bulk("\n  \na@b.com\n\t\nb@b.com|pw-123456\n"))
    assert [(ln.number, ln.address) for ln in lines] == [(3, "a@b.com"), (5, "b@b.com")]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_never_crashes_and_yields_one_result_per_non_blank_line(text: str) -> None:
    results = list(parse_bulk(text))
    non_blank = [n for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    assert [r.number for r in results] == non_blank
    for result in results:
        assert (result.error is None) == (result.address is not None)
        assert (result.error is None) == (result.kind is not None)


_address = st.from_regex(r"[a-z0-9._+-]{1,20}@[a-z0-9-]{1,20}\.(com|net|org)", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(
    _address,
    st.tuples(_address, st.text(min_size=1).filter(lambda s: "|" not in s and s.strip()))
    .map(lambda t: f"{t[0]}|{t[1]}"),
    st.tuples(_address, st.lists(_address, min_size=1, max_size=3))
    .map(lambda t: f"{t[0]}|{','.join(t[1])}|relay"),
    st.text(),
)))
def test_mixed_realistic_lines(lines: list[str]) -> None:
    text = "\n".join(lines)
    non_blank = [line for line in text.splitlines() if line.strip()]
    assert len(list(parse_bulk(text))) == len(non_blank)
