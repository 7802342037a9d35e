"""The login limiter with a fake clock: sliding window, Retry-After, forgiveness, memory."""

from __future__ import annotations

import pytest

from mailward.directory.auth_limit import AuthLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_locks_at_the_limit_and_unlocks_as_failures_age(clock: FakeClock) -> None:
    limiter = AuthLimiter(3, 60, clock=clock)
    for _ in range(2):
        assert limiter.retry_after("ip:a") == 0
        limiter.fail("ip:a")
        clock.advance(10)
    assert limiter.retry_after("ip:a") == 0
    limiter.fail("ip:a")  # failures at t=0, 10, 20 → locked until the first is 60 s old
    assert limiter.retry_after("ip:a") == 40
    clock.advance(39.5)
    assert limiter.retry_after("ip:a") == 1  # rounds up, never 0 while locked
    clock.advance(0.5)
    assert limiter.retry_after("ip:a") == 0
    limiter.fail("ip:a")  # t=60: failures at 10, 20, 60 → locked until t=70
    assert limiter.retry_after("ip:a") == 10


def test_any_locked_key_locks_the_attempt(clock: FakeClock) -> None:
    limiter = AuthLimiter(2, 100, clock=clock)
    limiter.fail("ip:a", "login:bob")
    limiter.fail("ip:b", "login:bob")
    assert limiter.retry_after("ip:c", "login:bob") == 100
    assert limiter.retry_after("ip:a", "login:eve") == 0
    assert limiter.retry_after("ip:c", "login:eve") == 0


def test_forgive_takes_back_a_provisional_failure(clock: FakeClock) -> None:
    limiter = AuthLimiter(2, 100, clock=clock)
    limiter.fail("ip:a")
    clock.advance(1)
    stamp = limiter.fail("ip:a")
    assert limiter.retry_after("ip:a") > 0
    limiter.forgive(stamp, "ip:a")
    assert limiter.retry_after("ip:a") == 0
    limiter.forgive(stamp, "ip:a", "ip:unknown")  # forgiving twice or unknown keys is harmless
    assert limiter.retry_after("ip:a") == 0


def test_expired_keys_are_dropped_and_memory_is_bounded(clock: FakeClock) -> None:
    limiter = AuthLimiter(1, 10, clock=clock, max_keys=3)
    limiter.fail("k1")
    limiter.fail("k2")
    clock.advance(11)
    assert limiter.retry_after("k1") == 0
    assert len(limiter) == 1  # k1 expired and was forgotten on lookup; k2 not looked at yet
    limiter.fail("k3", "k4")
    assert len(limiter) == 3
    limiter.fail("k5")  # full: the expired k2 is swept to make room
    assert len(limiter) == 3
    limiter.fail("k6")  # full of live keys: the oldest (k3) is dropped
    assert len(limiter) == 3
    assert limiter.retry_after("k3") == 0
    assert all(limiter.retry_after(k) == 10 for k in ("k4", "k5", "k6"))


def test_rejects_nonsense_settings(clock: FakeClock) -> None:
    with pytest.raises(ValueError):
        AuthLimiter(0, 10, clock=clock)
    with pytest.raises(ValueError):
        AuthLimiter(1, 0, clock=clock)
