"""Run the real ``web`` role (uvicorn on 127.0.0.1, port 0) inside the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

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


API = "/api/v1"
OPERATOR_PASSWORD = "Operator-pass-1"
ALICE_PASSWORD = "Wonderland-42x"
BOB_PASSWORD = "Bob-pass-12345"
MAILBOX_PASSWORD = "Mailbox-pass-1"

Headers = dict[str, str]


@dataclass
class Tenants:
    """Two customers: Acme (alice) and Globex (bob), each with one domain."""

    alice: Headers
    bob: Headers


async def ok(request: Any, status: int = 200) -> Any:
    """Await a request, check its status, return its JSON body."""
    response: httpx.Response = await request
    assert response.status_code == status, (response.status_code, response.text)
    return response.json() if response.content else None


async def error(request: Any, status: int, *fragments: str) -> str:
    """Await a request that must fail with ``status`` and ``{"error": ...}``."""
    response: httpx.Response = await request
    assert response.status_code == status, (response.status_code, response.text)
    message = response.json()["error"]
    for fragment in fragments:
        assert fragment in message, message
    return message


async def bulk(client: httpx.AsyncClient, headers: Headers, list_: str, text: str) -> Any:
    body = {"list": list_, "text": text}
    return await ok(client.post(f"{API}/addresses/bulk", json=body, headers=headers))
