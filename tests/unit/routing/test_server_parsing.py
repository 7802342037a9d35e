"""Parsing and validating mail server entries (FQDN or IP, optional port)."""

from __future__ import annotations

import pytest

from mailward.core.errors import InvalidInput
from mailward.routing.servers import check_preference, parse_server, server_address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mx.example.com", ("mx.example.com", None)),
        (" MX.Example.COM.:2525 ", ("mx.example.com", 2525)),
        ("192.0.2.1", ("192.0.2.1", None)),
        ("192.0.2.1:26", ("192.0.2.1", 26)),
        ("2001:DB8::1", ("2001:db8::1", None)),
        ("[2001:db8::1]:2525", ("2001:db8::1", 2525)),
        ("mail.bücher.example", ("mail.xn--bcher-kva.example", None)),
    ],
)
def test_valid_servers(text: str, expected: tuple[str, int | None]) -> None:
    assert parse_server(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("mail", "fully qualified"),
        ("a_b.example", "fully qualified"),
        ("-x.example", "fully qualified"),
        ("x.example:0", "out of range"),
        ("x.example:65536", "out of range"),
        ("x.example:abc", "not a number"),
        ("1.2.3", "not a valid IP"),
        ("[::1", "IPv6"),
        ("[::1]x", "IPv6"),
    ],
)
def test_invalid_servers_say_why(text: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        parse_server(text)


def test_preference_range() -> None:
    assert check_preference("0") == 0 and check_preference(65535) == 65535
    for bad in (-1, 65536, "ten"):
        with pytest.raises(InvalidInput, match="preference"):
            check_preference(bad)


def test_address_brackets_ipv6() -> None:
    assert server_address("2001:db8::1", 25) == "[2001:db8::1]:25"
    assert server_address("mx.example.com", 2525) == "mx.example.com:2525"
