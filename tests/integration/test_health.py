"""``/healthz`` and ``/readyz`` of the metrics listener: ready only while the database
answers, the spool directory takes a file and the roles listen; otherwise 503 naming the
check that failed."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from mail_helpers import mail_roles, mail_settings
from sqlalchemy.engine import make_url

from mailward.config import Settings
from mailward.server.observe import Observer


def observer_for(settings: Settings) -> Observer:
    return Observer(settings.model_copy(update={"port_metrics": 0, "bind": "127.0.0.1"}),
                    cache_seconds=0)


async def get(observer: Observer, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.get(observer.url.removesuffix("/metrics") + path)


async def ready(observer: Observer) -> tuple[int, dict[str, Any]]:
    response = await get(observer, "/readyz")
    assert response.headers["content-type"] == "application/json"
    return response.status_code, response.json()


@pytest.fixture
async def roles(settings: Settings) -> AsyncIterator[Settings]:
    configured = mail_settings(settings)
    async with mail_roles(configured, frozenset({"pop3"})):
        yield configured


async def test_ready_once_the_roles_listen(roles: Settings) -> None:
    with observer_for(roles) as observer:
        health = await get(observer, "/healthz")
        assert (health.status_code, health.text) == (200, "ok\n")
        status, body = await ready(observer)
        assert (status, body["failed"]) == (503, ["roles"])
        assert body["checks"]["database"] == body["checks"]["spool"] == "ok"
        observer.listening = True
        status, body = await ready(observer)
        assert (status, body["status"], body["failed"]) == (200, "ok", [])
        assert body["checks"] == {"database": "ok", "spool": "ok", "roles": "ok"}
        assert not list((roles.data_dir / "queue").iterdir())  # the probe file is gone
        observer.listening = False  # e.g. draining
        assert (await ready(observer))[0] == 503
        assert (await get(observer, "/healthz")).status_code == 200


async def test_not_ready_when_the_spool_is_not_writable(roles: Settings) -> None:
    spool = roles.data_dir / "queue"
    if spool.exists():
        spool.rmdir()
    spool.write_text("not a directory")  # root ignores permissions: a file stands in the way
    with observer_for(roles) as observer:
        observer.listening = True
        status, body = await ready(observer)
    assert (status, body["status"], body["failed"]) == (503, "fail", ["spool"])
    assert body["checks"]["spool"] != "ok" and body["checks"]["database"] == "ok"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_not_ready_when_the_database_is_unreachable(roles: Settings) -> None:
    url = make_url(roles.db_url)
    if url.get_backend_name() == "sqlite":
        gone = url.set(database=str(roles.data_dir / "moved-away.db"))
    else:  # nothing listens there
        gone = url.set(host="127.0.0.1", port=closed_port())
    unreachable = roles.model_copy(
        update={"database_url": gone.render_as_string(hide_password=False)})
    with observer_for(unreachable) as observer:
        observer.listening = True
        status, body = await ready(observer)
    assert (status, body["failed"]) == (503, ["database"])
    assert body["checks"]["spool"] == "ok"
    assert body["checks"]["database"] != "ok"
    assert not (roles.data_dir / "moved-away.db").exists()  # the probe created none


async def test_the_web_port_answers_healthz_and_readyz(settings: Settings,
                                                        client: httpx.AsyncClient) -> None:
    """The same checks on the web port (a load balancer in front of the web nodes)."""
    assert (await client.get("/healthz")).text == "ok\n"
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "spool": "ok"}
    queue = settings.data_dir / "queue"
    queue.parent.mkdir(parents=True, exist_ok=True)
    if queue.exists():
        queue.rmdir()
    queue.write_text("not a directory")
    response = await client.get("/readyz")
    assert response.status_code == 503 and response.json()["failed"] == ["spool"]
