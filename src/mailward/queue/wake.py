"""Waking delivery workers when mail is queued: an in-process event, plus LISTEN/NOTIFY
on PostgreSQL so a worker on another node hears about mail this node accepted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from mailward.db import Database

CHANNEL = "mailward_queue"
log = logging.getLogger(__name__)


class Wakeup:
    """One per process; ``wait`` returns early when new work may be due."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._event = asyncio.Event()

    def local(self) -> None:
        """Work was queued in this process."""
        self._event.set()

    async def announce(self, session: AsyncSession) -> None:
        """Tell other nodes, delivered when ``session``'s transaction commits."""
        if not self.db.is_sqlite:
            await session.execute(text(f"NOTIFY {CHANNEL}"))

    async def wait(self, seconds: float) -> None:
        """Until woken or ``seconds`` pass.

        ``asyncio.timeout``, not ``wait_for``: on Python 3.11 ``wait_for`` swallows a
        cancellation that arrives as the event is set, and the worker then kept running
        after ``serve`` had been asked to stop (a hang seen in the crash test).
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._event.wait()
        self._event.clear()

    @contextlib.asynccontextmanager
    async def listening(self) -> AsyncIterator[None]:
        """While inside, NOTIFYs from any node wake ``wait`` (PostgreSQL only)."""
        if self.db.is_sqlite:
            yield
            return
        import asyncpg

        url = make_url(self.db.url).set(drivername="postgresql")
        try:
            conn = await asyncpg.connect(url.render_as_string(hide_password=False))
        except (OSError, asyncpg.PostgresError) as exc:  # polling still delivers
            log.warning("queue: cannot LISTEN for new mail (%s); polling only", exc)
            yield
            return

        def heard(*_: Any) -> None:
            self._event.set()

        await conn.add_listener(CHANNEL, heard)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                await conn.close(timeout=5)
