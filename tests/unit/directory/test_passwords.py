"""Password strength and Argon2id hashing."""

from __future__ import annotations

import pytest

from mailward.config import load_settings
from mailward.core.errors import InvalidInput
from mailward.directory.passwords import Passwords


@pytest.fixture
def passwords(tmp_path) -> Passwords:  # type: ignore[no-untyped-def]
    return Passwords(load_settings(data_dir=tmp_path, argon2_time_cost=1, argon2_memory_kib=1024))


def test_hashes_are_argon2id_and_verify(passwords: Passwords) -> None:
    digest = passwords.hash("correct horse")
    assert digest.startswith("$argon2id$")
    assert passwords.verify(digest, "correct horse")
    assert not passwords.verify(digest, "wrong horse")
    assert not passwords.verify("not-a-hash", "correct horse")
    assert not passwords.verify(None, "correct horse")


@pytest.mark.parametrize(
    ("password", "reason"),
    [("short1", "at least 8"), ("aaaaaaaaaa", "too simple"), (" padded-pass", "space"),
     ("bobsmith-2024", "contain the address")],
)
def test_weak_passwords_are_refused(passwords: Passwords, password: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        passwords.check_strength(password, address="bobsmith@example.com")


def test_typed_twice_must_match(passwords: Passwords) -> None:
    with pytest.raises(InvalidInput, match="do not match"):
        passwords.check_new("Good-pass-1", "Good-pass-2", address=None)
    passwords.check_new("Good-pass-1", "Good-pass-1", address=None)
