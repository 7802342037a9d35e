"""The verified-credential cache (``AuthCache``) on its own: what matches, what is
dropped, for how long."""

from __future__ import annotations

import pytest

from mailward.directory.auth_cache import AuthCache

HASH = "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"
NEW_HASH = "$argon2id$v=19$m=1024,t=1,p=1$b3RoZXJzYWx0$bmV3aGFzaA"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_only_the_password_that_verified_matches_and_only_for_its_login() -> None:
    cache = AuthCache(300, 10)
    cache.remember("ann@acme.example", HASH, "right-pass")
    assert cache.hit("ann@acme.example", HASH, "right-pass")
    assert not cache.hit("ann@acme.example", HASH, "wrong-pass")
    assert not cache.hit("ann@acme.example", HASH, "right-pass ")
    assert not cache.hit("bob@acme.example", HASH, "right-pass")
    # a wrong password does not evict the entry: the mailbox's own clients keep it
    assert cache.hit("ann@acme.example", HASH, "right-pass")


def test_a_changed_stored_hash_never_matches_and_drops_the_entry() -> None:
    cache = AuthCache(300, 10)
    cache.remember("ann@acme.example", HASH, "right-pass")
    assert not cache.hit("ann@acme.example", NEW_HASH, "right-pass")
    assert len(cache) == 0
    assert not cache.hit("ann@acme.example", HASH, "right-pass")  # not even back again


def test_entries_expire_after_the_ttl_counted_from_the_verification() -> None:
    clock = Clock()
    cache = AuthCache(300, 10, clock=clock)
    cache.remember("ann@acme.example", HASH, "right-pass")
    clock.now += 299
    assert cache.hit("ann@acme.example", HASH, "right-pass")  # a hit does not extend it
    clock.now += 1
    assert not cache.hit("ann@acme.example", HASH, "right-pass")
    assert len(cache) == 0


def test_the_least_recently_used_login_goes_first_when_full() -> None:
    cache = AuthCache(300, 2)
    cache.remember("a@acme.example", HASH, "pass-a")
    cache.remember("b@acme.example", HASH, "pass-b")
    assert cache.hit("a@acme.example", HASH, "pass-a")  # a is now the most recent
    cache.remember("c@acme.example", HASH, "pass-c")
    assert len(cache) == 2
    assert not cache.hit("b@acme.example", HASH, "pass-b")
    assert cache.hit("a@acme.example", HASH, "pass-a")
    assert cache.hit("c@acme.example", HASH, "pass-c")


def test_forget_and_clear() -> None:
    cache = AuthCache(300, 10)
    cache.remember("a@acme.example", HASH, "pass-a")
    cache.remember("b@acme.example", HASH, "pass-b")
    cache.forget("a@acme.example")
    cache.forget("nobody@acme.example")
    assert not cache.hit("a@acme.example", HASH, "pass-a")
    assert cache.hit("b@acme.example", HASH, "pass-b")
    cache.clear()
    assert len(cache) == 0


@pytest.mark.parametrize(("ttl", "size"), [(0, 10), (300, 0)])
def test_zero_ttl_or_size_turns_it_off(ttl: int, size: int) -> None:
    cache = AuthCache(ttl, size)
    assert not cache.enabled
    cache.remember("ann@acme.example", HASH, "right-pass")
    assert len(cache) == 0
    assert not cache.hit("ann@acme.example", HASH, "right-pass")


def test_no_password_is_kept_and_each_process_keys_its_own_digests() -> None:
    first, second = AuthCache(300, 10), AuthCache(300, 10)
    for cache in (first, second):
        cache.remember("ann@acme.example", HASH, "right-pass")
    one, two = first._entries["ann@acme.example"], second._entries["ann@acme.example"]
    assert b"right-pass" not in one.digest and len(one.digest) == 32
    assert one.digest != two.digest  # a per-process random HMAC key


def test_negative_settings_are_refused() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        AuthCache(-1, 10)
