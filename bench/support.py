"""What the benchmarks share: a scratch database per backend, and the server child."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

PG_URL = os.environ.get("MAILWARD_BENCH_PG_URL",
                        "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # as `mailward serve`


class BenchFailed(Exception):
    """The product refused, lost or garbled something, or did not start or stop cleanly."""


@contextlib.asynccontextmanager
async def database(backend: str, tmp: Path) -> AsyncIterator[str]:
    """A migrated, empty database; a scratch PostgreSQL database is dropped afterwards."""
    from mailward.db.migrate import upgrade

    if backend == "sqlite":
        await upgrade(url := f"sqlite+aiosqlite:///{tmp / 'bench.db'}")
        yield url
        return
    import asyncpg
    from sqlalchemy.engine import make_url

    name, admin = f"mailward_bench_{secrets.token_hex(4)}", make_url(PG_URL)
    conn = await asyncpg.connect(admin.set(drivername="postgresql").render_as_string(False))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        await upgrade(url := admin.set(database=name).render_as_string(False))
        yield url
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


def serve(overrides: str, roles: set[str]) -> None:
    """Child process: run ``roles``; print their URLs, then peak RSS and CPU at exit."""
    import logging

    from mailward.config import load_settings
    from mailward.server import run

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    settings = load_settings(**json.loads(overrides))
    asyncio.run(run(settings, roles, ready=lambda urls: print(json.dumps(urls), flush=True)))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"server_rss_mb": usage.ru_maxrss / 1024,
                      "server_cpu_s": usage.ru_utime + usage.ru_stime}), flush=True)
