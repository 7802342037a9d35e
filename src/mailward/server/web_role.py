"""The ``web`` role: the Litestar app on uvicorn, in the caller's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator

import uvicorn

from mailward.app import Services
from mailward.config import Settings
from mailward.server.mail_roles import MailSystem
from mailward.store import open_store
from mailward.store.events import open_events
from mailward.web import create_app
from mailward.web.context import STATE_KEY, WebContext
from mailward.web.sessions import PURGE_EVERY_SECONDS, purge_expired_sessions

DESCRIPTION = "panel /panel, webmail /mail, API /api/v1, OpenAPI /api/v1/openapi.json"
GRACEFUL_SHUTDOWN_SECONDS = 30

log = logging.getLogger(__name__)


Job = Callable[[], Awaitable[object]]


async def run_once(name: str, job: Job) -> None:
    """Run ``job``; a failure is logged (the next run goes ahead as planned)."""
    try:
        await job()
    except Exception:
        log.exception("web: %s failed", name)


async def every(seconds: float, name: str, job: Job) -> None:
    """Run ``job`` every ``seconds`` (the first time after one interval), until cancelled."""
    while True:
        await asyncio.sleep(seconds)
        await run_once(name, job)


class RoleServer(uvicorn.Server):
    """A uvicorn server that leaves signals to ``mailward.server`` and says when it listens;
    while it serves, its ``background`` jobs (name → (interval, job)) run once as it
    starts, then every interval beside it (e.g. the session purge)."""

    def __init__(self, config: uvicorn.Config,
                 background: dict[str, tuple[float, Job]] | None = None, *,
                 start: Job | None = None, stop: Job | None = None) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()
        self.background = dict(background or {})
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.start, self.stop = start, stop  # before serving / after (e.g. mailbox events)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """No-op: uvicorn's own handlers would re-raise the signal after shutdown."""
        yield

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        if self.start is not None:
            await self.start()
        try:
            await self._serve_role(sockets)
        finally:
            if self.stop is not None:
                await asyncio.shield(self.stop())

    async def _serve_role(self, sockets: list[socket.socket] | None) -> None:
        for name, (_, job) in self.background.items():
            await run_once(name, job)
        self.tasks = {name: asyncio.create_task(every(seconds, name, job),
                                                name=f"mailward-web-{name}")
                      for name, (seconds, job) in self.background.items()}
        try:
            await super().serve(sockets=sockets)
        except SystemExit as exc:  # uvicorn exits the process when start-up fails
            raise RuntimeError(f"web: start-up failed (exit status {exc.code})") from None
        finally:
            for task in self.tasks.values():
                task.cancel()
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit:
            self.listening.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Tell the app first (its update streams end), then stop as uvicorn does."""
        state = getattr(self.config.app, "state", None)
        context = state.get(STATE_KEY) if state is not None else None
        if isinstance(context, WebContext):
            context.stopping.set()
        await super().shutdown(sockets=sockets)

    @property
    def port(self) -> int:
        """The port actually bound (meaningful once ``listening`` is set)."""
        return int(self.servers[0].sockets[0].getsockname()[1])


def bind(host: str, port: int, role: str = "web") -> socket.socket:
    """A listening TCP socket of ``role`` on ``host``:``port`` (port 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    dualstack = host == "::" and socket.has_dualstack_ipv6()  # "::" takes IPv4 too
    try:
        return socket.create_server(
            (host, port), family=family, backlog=2048, dualstack_ipv6=dualstack
        )
    except OSError as exc:
        raise OSError(exc.errno, f"{role}: cannot listen on {host}:{port}: {exc.strerror}") from exc


def web_server(services: Services, settings: Settings,
               mail: MailSystem | None = None) -> RoleServer:
    """The web role. Its webmail writes to a mail store that announces changes to IMAP
    IDLE sessions and to the webmail's live updates: the store and events of the mail
    roles of this process (``mail``), else its own, heard while the role serves."""
    start: Job | None
    stop: Job | None
    if mail is not None:
        store, start, stop = mail.store, mail.start_events, None  # the process closes them
    else:
        events = open_events(settings)
        store, start, stop = open_store(settings, services.db, events), events.start, \
            events.close
    app = create_app(services, settings, store)
    config = uvicorn.Config(
        app,
        host=settings.bind,
        port=settings.port_web,
        log_level="warning",
        log_config=None,  # uvicorn's loggers propagate to the root (mailward.obs.logs)
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    async def purge_sessions() -> int:  # expired panel sessions
        return await purge_expired_sessions(services.db)

    if settings.worker_index:  # one worker of the node purges for all
        return RoleServer(config, start=start, stop=stop)
    return RoleServer(config, {"session-purge": (PURGE_EVERY_SECONDS, purge_sessions)},
                      start=start, stop=stop)


WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def url_for(host: str, port: int) -> str:
    """A URL that reaches the listener (loopback when bound to every address)."""
    shown = WILDCARDS.get(host, host)
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"
