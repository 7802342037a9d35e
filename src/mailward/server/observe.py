"""The metrics and health listener of a node, and the samplers that feed the metrics.

:class:`Observer` serves, on its own port (``port_metrics`` on ``metrics_bind``, else
``bind``), from a thread of its own (it never blocks an event loop):

- ``/metrics``: the Prometheus text exposition (every worker process's values in
  multiprocess mode, see :mod:`mailward.obs.metrics`); 403 for a client outside
  ``metrics_allow``, 401 without the right ``Authorization: Bearer`` when
  ``metrics_token`` is set;
- ``/healthz``: 200 ``ok`` while the process is up;
- ``/readyz``: 200 when the database answers ``SELECT 1``, the spool directory
  (``data_dir/queue``) takes a new fsync'd file and the roles listen; else 503 with a JSON
  body naming the failed checks.

It runs in the supervisor when ``mailward serve`` has several workers, in the one
process otherwise. :func:`sample_queue_size` (one process per node) and
:func:`sample_process` (every process) feed the gauges sampled from outside the code
that changes them.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from mailward.config import Settings
from mailward.db import Database
from mailward.db.models import QueuedRecipient, QueueStatus
from mailward.obs.health import check_spool, reason
from mailward.obs.loop import watch_pool
from mailward.obs.metrics import QUEUE_SIZE, exposition
from mailward.server.web_role import bind, url_for

log = logging.getLogger(__name__)
DB_TIMEOUT: Final = 5.0  # seconds /readyz waits for SELECT 1
QUEUE_INTERVAL: Final = 15.0  # seconds between samples of the queue's size
READY_CACHE: Final = 1.0  # seconds a /readyz answer is reused (probes may come often)
NOTE: Final = "Prometheus /metrics, /healthz, /readyz"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(cidrs: list[str]) -> tuple[Network, ...]:
    """``metrics_allow`` parsed; a bad entry raises ``ValueError`` naming it."""
    parsed = []
    for cidr in cidrs:
        try:
            parsed.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError:
            raise ValueError(f"metrics_allow: {cidr!r} is not a network (CIDR)") from None
    return tuple(parsed)


def allowed(client: str, allow: tuple[Network, ...]) -> bool:
    """Whether ``client`` (an IPv4-mapped IPv6 address counts as its IPv4) is in ``allow``."""
    try:
        address = ipaddress.ip_address(client.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in allow)


# -- the readiness checks ------------------------------------------------------------------


def check_database(url: str, timeout: float = DB_TIMEOUT) -> None:
    """``SELECT 1`` over a fresh connection (raises when the database does not answer).
    A SQLite database must exist: connecting would create an empty one."""
    parsed = make_url(url)
    local = parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")
    if local and not Path(str(parsed.database)).is_file():
        raise FileNotFoundError(f"no SQLite database at {parsed.database}")

    async def select_one() -> None:
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            async with asyncio.timeout(timeout), engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    asyncio.run(select_one())


@dataclass
class Readiness:
    """``/readyz``'s checks: ``database`` and ``spool`` (callables raising on failure) and
    ``listening`` (the roles accept connections; the process running them says so)."""

    database: Callable[[], None]
    spool: Callable[[], None]
    listening: bool = False
    cache_seconds: float = READY_CACHE
    _last: tuple[float, dict[str, str]] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def results(self) -> dict[str, str]:
        """``{check: "ok" | why it failed}``; reused for ``cache_seconds``."""
        with self._lock:
            now = time.monotonic()
            if self._last is not None and now - self._last[0] < self.cache_seconds:
                return dict(self._last[1])
            results = {"database": self._run(self.database), "spool": self._run(self.spool),
                       "roles": "ok" if self.listening else "not listening"}
            self._last = (time.monotonic(), results)
            return dict(results)

    def forget(self) -> None:
        """Check again at the next request (e.g. once the roles listen or stop)."""
        with self._lock:
            self._last = None

    @staticmethod
    def _run(check: Callable[[], None]) -> str:
        try:
            check()
        except Exception as exc:
            return reason(exc)
        return "ok"


# -- the listener ----------------------------------------------------------------------


class Observer:
    """The ``/metrics`` + ``/healthz`` + ``/readyz`` listener (see the module): binds in
    the constructor (``OSError`` if it cannot), serves from :meth:`start` until
    :meth:`close`. Set :attr:`listening` when the roles listen, clear it when they stop.
    """

    def __init__(self, settings: Settings, *, readiness: Readiness | None = None,
                 cache_seconds: float = READY_CACHE) -> None:
        self.allow = networks(settings.metrics_allow)
        token = settings.metrics_token
        self.token = token.get_secret_value() if token is not None else None
        self.host = settings.metrics_bind or settings.bind
        self.readiness = readiness or Readiness(
            database=lambda: check_database(settings.db_url),
            spool=lambda: check_spool(settings.data_dir / "queue"),
            cache_seconds=cache_seconds)
        self.socket = bind(self.host, settings.port_metrics, "metrics")
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.socket.getsockname()[1])

    @property
    def url(self) -> str:
        """Where ``/metrics`` is (loopback when bound to every address)."""
        return f"{url_for(self.host, self.port)}/metrics"

    @property
    def listening(self) -> bool:
        return self.readiness.listening

    @listening.setter
    def listening(self, value: bool) -> None:
        self.readiness.listening = value
        self.readiness.forget()

    def banner_line(self) -> str:
        """Its line in the start banner, aligned with the roles' (``describe``)."""
        return f"{'metrics':<8} {self.url}  ({NOTE})"

    def start(self) -> Observer:
        self._server = _Server(self.socket, self)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.5},
                                        name="mailward-metrics", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._server.server_close()  # closes self.socket
        else:
            self.socket.close()
        self._server = self._thread = None

    def __enter__(self) -> Observer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- answers (called from the server's threads) --------------------------------------

    def answer(self, path: str, client: str, authorization: str | None
               ) -> tuple[int, str, bytes, dict[str, str]]:
        """``(status, content type, body, extra headers)`` for a GET of ``path``."""
        path = path.split("?", 1)[0]
        if path == "/healthz":
            return 200, "text/plain; charset=utf-8", b"ok\n", {}
        if path == "/readyz":
            results = self.readiness.results()
            failed = [name for name, result in results.items() if result != "ok"]
            body = {"status": "fail" if failed else "ok", "failed": failed, "checks": results}
            return (503 if failed else 200, "application/json",
                    json.dumps(body).encode() + b"\n", {})
        if path == "/metrics":
            if not allowed(client, self.allow):
                return 403, "text/plain; charset=utf-8", b"forbidden\n", {}
            if self.token is not None and not _bearer_matches(authorization, self.token):
                return (401, "text/plain; charset=utf-8", b"unauthorized\n",
                        {"WWW-Authenticate": 'Bearer realm="metrics"'})
            data, content_type = exposition()
            return 200, content_type, data, {}
        return 404, "text/plain; charset=utf-8", b"not found\n", {}


def _bearer_matches(header: str | None, token: str) -> bool:
    scheme, _, given = (header or "").strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              token.encode())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, sock: socket.socket, observer: Observer) -> None:
        super().__init__(sock.getsockname()[:2], _Handler, bind_and_activate=False)
        self.socket.close()  # the one made for us: ours is bound already
        self.socket = sock
        self.observer = observer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "mailward"
    sys_version = ""
    timeout = 30

    def do_GET(self) -> None:
        self._reply(send_body=True)

    def do_HEAD(self) -> None:
        self._reply(send_body=False)

    def _reply(self, *, send_body: bool) -> None:
        try:
            status, content_type, body, headers = self.server.observer.answer(
                self.path, str(self.client_address[0]), self.headers.get("Authorization"))
        except Exception:
            log.exception("metrics listener: %s failed", self.path)
            status, content_type, body, headers = (500, "text/plain; charset=utf-8",
                                                   b"internal error\n", {})
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics listener: %s %s", self.address_string(), format % args)


# -- samplers --------------------------------------------------------------------------


async def queue_sizes(db: Database) -> dict[str, int]:
    """Queued recipients by state (every state present, 0 when none)."""
    async with db.session() as session:
        rows = (await session.execute(
            select(QueuedRecipient.status, func.count()).group_by(QueuedRecipient.status)
        )).all()
    sizes = {state.value: 0 for state in QueueStatus}
    for status, count in rows:
        sizes[QueueStatus(status).value] = int(count)
    return sizes


async def sample_queue_size(db: Database, interval: float = QUEUE_INTERVAL) -> None:
    """Set ``mailward_queue_recipients`` from the queue tables every ``interval`` until
    cancelled. One process per node runs it (the gauge keeps the most recent sample).
    The first sample waits an interval too: a process stopped right after it started is
    not cancelled in the middle of a query (an aiosqlite connection torn down mid-query
    can hang the loop's shutdown)."""
    while True:
        await asyncio.sleep(interval)
        try:
            for state, count in (await queue_sizes(db)).items():
                QUEUE_SIZE.labels(state).set(count)
        except Exception:  # a sampler must never take the process down
            log.exception("sampling the queue size failed")


async def sample_process(db: Database, settings: Settings, *,
                         queue_interval: float = QUEUE_INTERVAL) -> None:
    """The samplers of one worker process until cancelled: its database pool, and in the
    node's first worker (``worker_index`` 0) the queue's size."""
    tasks = [asyncio.create_task(watch_pool(lambda: db.engine.pool), name="mailward-pool")]
    if settings.worker_index == 0:
        tasks.append(asyncio.create_task(sample_queue_size(db, queue_interval),
                                         name="mailward-queue-size"))
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

