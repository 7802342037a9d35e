"""DKIM keys: the TXT record's text, its DNS strings, selectors."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailward.core.errors import Conflict
from mailward.dkim import (
    generate_keypair,
    record_name,
    selector_for,
    txt_strings,
    txt_value,
    zone_line,
)


@pytest.fixture(scope="module")
def keypair():  # type: ignore[no-untyped-def]
    return generate_keypair()


def test_keypair_is_rsa_2048_and_p_matches_the_private_key(keypair) -> None:  # type: ignore[no-untyped-def]
    private = serialization.load_pem_private_key(keypair.private_pem.encode(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    assert private.key_size == 2048
    assert keypair.private_pem.startswith("-----BEGIN RSA PRIVATE KEY-----")
    public = serialization.load_der_public_key(base64.b64decode(keypair.public_b64))
    assert public.public_numbers() == private.public_key().public_numbers()  # type: ignore[attr-defined]


def test_record_text_and_name(keypair) -> None:  # type: ignore[no-untyped-def]
    value = txt_value(keypair.public_b64)
    assert value == f"v=DKIM1; k=rsa; p={keypair.public_b64}"
    assert record_name("mw202611", "acme.example") == "mw202611._domainkey.acme.example"


def test_strings_are_at_most_255_and_join_back(keypair) -> None:  # type: ignore[no-untyped-def]
    value = txt_value(keypair.public_b64)
    assert len(value) > 255
    strings = txt_strings(value)
    assert "".join(strings) == value
    assert all(0 < len(s) <= 255 for s in strings)
    assert strings[0] == "v=DKIM1; k=rsa; "
    assert strings[1].startswith("p=")


@pytest.mark.parametrize("length", [0, 1, 254, 255, 256, 510, 511, 1000])
def test_splitting_any_length(length: int) -> None:
    value = "p=" + "A" * length
    strings = txt_strings(value)
    assert "".join(strings) == value
    assert all(0 < len(s) <= 255 for s in strings)
    assert len(strings) == -(-len(value) // 255)
    assert txt_strings("short") == ["short"]


def test_zone_line_quotes_each_string(keypair) -> None:  # type: ignore[no-untyped-def]
    line = zone_line("mw202611", "acme.example", keypair.public_b64, ttl=300)
    assert line.startswith('mw202611._domainkey.acme.example. 300 IN TXT "v=DKIM1; k=rsa; " "p=')
    assert line.count('"') == 2 * len(txt_strings(txt_value(keypair.public_b64)))


def test_selector_is_month_based_and_avoids_taken_ones() -> None:
    when = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert selector_for(when) == "mw202611"
    assert selector_for(when, {"mw202611"}) == "mw202611b"
    assert selector_for(when, {"mw202611", "mw202611b"}) == "mw202611c"
    # the month is the UTC month
    late = datetime(2026, 11, 30, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert selector_for(late) == "mw202612"
    letters = {"mw202611"} | {f"mw202611{chr(c)}" for c in range(ord("b"), ord("z") + 1)}
    assert selector_for(when, letters) == "mw20261127"


def test_selector_exhaustion_is_a_conflict() -> None:
    when = datetime(2026, 11, 25, tzinfo=UTC)
    taken = {"mw202611"} | {f"mw202611{chr(c)}" for c in range(ord("b"), ord("z") + 1)}
    taken |= {f"mw202611{n}" for n in range(27, 10_000)}
    with pytest.raises(Conflict):
        selector_for(when, taken)
