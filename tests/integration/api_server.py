"""Run the real ``web`` role (uvicorn on 127.0.0.1, port 0) inside the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx

from mailward.config import Settings
from mailward.server import run

START_TIMEOUT = 30


async def start_server(settings: Settings) -> tuple[asyncio.Task[None], str]:
    """Start ``mailward.server.run`` (web role, as configured); return its task and URL."""
    started: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run(settings, {"web"}, ready=started.set_result))
    done, _ = await asyncio.wait(
        {task, started}, timeout=START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
    )
    if started not in done:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task  # surfaces a start-up error
        raise RuntimeError("server did not start")
    return task, started.result()["web"]


@contextlib.asynccontextmanager
async def running_server(settings: Settings) -> AsyncIterator[str]:
    """Serve on a free loopback port; yield the base URL; stop (gracefully) afterwards."""
    task, url = await start_server(settings.model_copy(update={"bind": "127.0.0.1", "port_web": 0}))
    try:
        yield url
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(client: httpx.AsyncClient, user: str, password: str) -> dict[str, str]:
    """Authorization headers for a fresh token of ``user``."""
    response = await client.post("/api/v1/auth/token", json={"login": user, "password": password})
    assert response.status_code == 201, response.text
    return bearer(response.json()["token"])
