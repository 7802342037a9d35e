"""Address/domain normalisation and destination lists."""

from __future__ import annotations

import pytest

from mailward.core.errors import InvalidInput
from mailward.core.normalize import (
    display_domain,
    normalize_address,
    normalize_domain,
    parse_destinations,
)


def test_addresses_are_lower_cased_with_ascii_domains() -> None:
    assert normalize_address(" Bob@Example.COM ") == "bob@example.com"
    assert normalize_address("Jörg@Bücher.example") == "jörg@xn--bcher-kva.example"


def test_domains_are_idna_and_trailing_dot_free() -> None:
    assert normalize_domain("Bücher.Example.") == "xn--bcher-kva.example"
    assert display_domain("xn--bcher-kva.example") == "bücher.example"


@pytest.mark.parametrize("bad", ["", "nodot", "a b.com", "under_score.com", "-x.com"])
def test_bad_domains_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        normalize_domain(bad)


@pytest.mark.parametrize("bad", ["", "plain", "a@@b.com", "a b@c.com", "x" * 65 + "@b.com"])
def test_bad_addresses_are_refused_with_a_reason(bad: str) -> None:
    with pytest.raises(InvalidInput, match="address"):
        normalize_address(bad)


def test_destinations_dedupe_and_join() -> None:
    assert parse_destinations("A@x.com, a@x.com ,b@y.org") == "a@x.com,b@y.org"
    with pytest.raises(InvalidInput, match="empty entry"):
        parse_destinations("a@x.com,,b@y.org")
    with pytest.raises(InvalidInput, match="itself"):
        parse_destinations("me@x.com", owner="me@x.com")
