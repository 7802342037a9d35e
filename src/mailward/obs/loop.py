"""Samplers run as tasks in each worker's event loop: event-loop lag and pool usage."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from mailward.obs.metrics import DB_POOL, LOOP_LAG

log = logging.getLogger(__name__)
LAG_INTERVAL = 0.5  # seconds between wake-ups of the lag watcher
POOL_INTERVAL = 5.0  # seconds between pool samples


async def watch_lag(interval: float = LAG_INTERVAL,
                    observe: Callable[[float], Any] = LOOP_LAG.observe) -> None:
    """Sleep ``interval`` again and again; observe how much later than asked each
    wake-up ran (a busy or blocked loop wakes late). Runs until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval
        await asyncio.sleep(interval)
        observe(max(0.0, loop.time() - due))


def pool_usage(pool: Any) -> tuple[int, int] | None:
    """``(in_use, idle)`` connections of a SQLAlchemy pool, ``None`` if it does not say
    (e.g. ``NullPool``)."""
    try:
        return int(pool.checkedout()), int(pool.checkedin())
    except (AttributeError, TypeError, NotImplementedError):
        return None


def sample_pool(pool: Any) -> None:
    usage = pool_usage(pool)
    if usage is not None:
        DB_POOL.labels("in_use").set(usage[0])
        DB_POOL.labels("idle").set(usage[1])


async def watch_pool(pool: Callable[[], Any], interval: float = POOL_INTERVAL) -> None:
    """Sample ``pool()`` (the engine's current pool) every ``interval`` until cancelled."""
    while True:
        try:
            sample_pool(pool())
        except Exception:  # a sampler must never take the process down
            log.exception("sampling the database pool failed")
        await asyncio.sleep(interval)
