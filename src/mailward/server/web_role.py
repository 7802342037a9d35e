"""The ``web`` role: the Litestar app on uvicorn, in the caller's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn

from mailward.config import Settings
from mailward.directory import Directory
from mailward.web import create_app

DESCRIPTION = "panel /panel, API /api/v1, OpenAPI /api/v1/openapi.json"
GRACEFUL_SHUTDOWN_SECONDS = 30


class RoleServer(uvicorn.Server):
    """A uvicorn server that leaves signals to ``mailward.server`` and says when it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """No-op: uvicorn's own handlers would re-raise the signal after shutdown."""
        yield

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().serve(sockets=sockets)
        except SystemExit as exc:  # uvicorn exits the process when start-up fails
            raise RuntimeError(f"web: start-up failed (exit status {exc.code})") from None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit:
            self.listening.set()

    @property
    def port(self) -> int:
        """The port actually bound (meaningful once ``listening`` is set)."""
        return int(self.servers[0].sockets[0].getsockname()[1])


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (port 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    dualstack = host == "::" and socket.has_dualstack_ipv6()  # "::" takes IPv4 too
    try:
        return socket.create_server(
            (host, port), family=family, backlog=2048, dualstack_ipv6=dualstack
        )
    except OSError as exc:
        raise OSError(exc.errno, f"web: cannot listen on {host}:{port}: {exc.strerror}") from exc


def web_server(directory: Directory, settings: Settings) -> RoleServer:
    app = create_app(directory, settings)
    config = uvicorn.Config(
        app,
        host=settings.bind,
        port=settings.port_web,
        log_level="warning",
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    return RoleServer(config)


WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def url_for(host: str, port: int) -> str:
    """A URL that reaches the listener (loopback when bound to every address)."""
    shown = WILDCARDS.get(host, host)
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"
