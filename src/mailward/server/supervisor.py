"""``mailward serve`` with several worker processes: bind once, fork, restart, drain.

The supervisor (the process ``mailward serve`` started) binds every listening socket,
then forks ``workers`` children before it opens any database connection or event loop.
Each child runs :func:`mailward.server.run.run` with ``worker_index`` set, in its own
event loop, on the inherited sockets: the kernel hands each new connection to one of
the workers waiting on the socket. The supervisor prints the banner once every worker
listens, restarts a worker that dies (with a growing delay while it keeps dying soon
after its start), and on SIGTERM/SIGINT asks every worker to drain, waits for them
(bounded) and exits; a second SIGINT stops them without draining. Workers run in process
groups of their own, so a terminal's Ctrl-C reaches the supervisor only. A worker whose
supervisor vanished drains and exits too.

Node-wide background jobs run in worker 0 only (see ``DeliveryRole`` and ``web_server``);
queue leases are per worker (``Settings.lease_owner``).

The supervisor also serves ``/metrics``, ``/healthz`` and ``/readyz``
(:class:`~mailward.server.observe.Observer`, a thread of its own): ready while every
worker listens. Metrics aggregate over the workers when ``PROMETHEUS_MULTIPROC_DIR`` was
set before ``prometheus_client`` was imported (``mailward serve`` does, see
:mod:`mailward.obs.multiproc`); the live gauges of a worker that exits are dropped.
With one worker, :func:`serve_in_process` runs the roles and the listener in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any, NoReturn

from mailward.config import Settings
from mailward.config.secret import web_secret
from mailward.obs.logs import configure_logging
from mailward.obs.loop import watch_lag
from mailward.obs.metrics import mark_process_dead, multiprocess_mode
from mailward.obs.multiproc import ENV
from mailward.server.observe import Observer
from mailward.server.roles import AVAILABLE_ROLES
from mailward.server.run import (
    STOP_SECONDS,
    _check,
    banner,
    close_all,
    listen_sockets,
    run,
    run_in_new_loop,
)
from mailward.smtp.tls import ensure_certificate

log = logging.getLogger(__name__)
RESTART_MIN, RESTART_MAX = 0.5, 30.0  # delay before restarting a worker that keeps dying
STABLE_SECONDS = 30.0  # a worker that ran this long is restarted at once after it dies
KILL_SECONDS = STOP_SECONDS + 15  # then workers still draining are killed (they bound
# their own drain by STOP_SECONDS, plus a few seconds for leftover tasks)
FORWARDED = (signal.SIGINT, signal.SIGTERM)
WATCHED = (*FORWARDED, signal.SIGCHLD)


class StartFailed(Exception):
    """A worker could not start (its reason is the message); the node did not start."""


def worker_count(settings: Settings) -> int:
    """``workers`` from the settings, else the CPUs this process may run on."""
    if settings.workers:
        return settings.workers
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def run_until_stopped(settings: Settings, roles: set[str] | None = None) -> int:
    """``mailward serve``: the roles in :func:`worker_count` processes (in this one if
    it is 1) until SIGINT/SIGTERM; returns the exit status (non-zero if a worker did not
    stop cleanly). Raises :class:`StartFailed`, or ``OSError`` if a listener cannot be
    bound."""
    roles = set(AVAILABLE_ROLES) if roles is None else set(roles)
    count = worker_count(settings)
    settings = settings.model_copy(update={"workers": count, "worker_index": 0})
    if count == 1:
        serve_in_process(settings, roles)
        return 0
    return Supervisor(settings, roles).run()


def serve_in_process(settings: Settings, roles: set[str]) -> None:
    """``mailward serve`` with one worker: the roles, and the metrics listener in a
    thread, in this process until stopped."""
    _check(roles)
    with Observer(settings) as observer:
        run_in_new_loop(_observed(settings, roles, observer))


async def _observed(settings: Settings, roles: set[str], observer: Observer) -> None:
    def ready(urls: dict[str, str]) -> None:
        observer.listening = True
        print("\n".join(with_metrics(banner(settings, urls, [os.getpid()]), observer)),
              flush=True)

    lag = asyncio.create_task(watch_lag(), name="mailward-loop-lag")
    try:
        await run(settings, roles, ready=ready)
    finally:
        observer.listening = False
        lag.cancel()
        await asyncio.gather(lag, return_exceptions=True)


def with_metrics(lines: list[str], observer: Observer) -> list[str]:
    """The start banner with the metrics listener's line after the roles' lines."""
    at = next((k for k, line in enumerate(lines) if line.startswith("workers ")), len(lines))
    return [*lines[:at], observer.banner_line(), *lines[at:]]


@dataclass
class Worker:
    index: int
    pid: int = 0  # 0: not running
    started: float = 0.0  # time.monotonic() of the last fork
    ready: bool = False
    quick_deaths: int = 0  # deaths in a row, each soon after its start
    restart_at: float | None = None


class Supervisor:
    """Forks, watches and stops the worker processes of one node (see the module)."""

    def __init__(self, settings: Settings, roles: set[str]) -> None:
        self.settings = settings
        self.roles = roles
        self.workers = [Worker(k) for k in range(settings.workers or 1)]
        self.sockets: dict[str, list[socket.socket]] = {}
        self.urls: dict[str, str] = {}
        self.stopping = False
        self.failed_stop = False
        self._signals: list[int] = []
        self._buffer = b""
        self._fds: dict[str, int] = {}
        self.observer: Observer | None = None

    # -- the supervisor ---------------------------------------------------------------

    def run(self) -> int:
        _check(self.roles)
        self._prepare()
        self.sockets = listen_sockets(self.settings, self.roles)
        previous = {sig: signal.getsignal(sig) for sig in WATCHED}
        old_wakeup = -1
        try:
            self.observer = Observer(self.settings)
            if not multiprocess_mode():
                log.warning("%s was not set before prometheus_client was imported: "
                            "/metrics shows the supervisor's own values only", ENV)
            self._open_pipes()
            for sig in WATCHED:
                signal.signal(sig, self._on_signal)
            old_wakeup = signal.set_wakeup_fd(self._fds["wake_w"], warn_on_full_buffer=False)
            for worker in self.workers:
                self._fork(worker)
            self.observer.start()  # after the first forks: no thread is copied into them
            if self._start():
                lines = banner(self.settings, self.urls, [w.pid for w in self.workers])
                print("\n".join(with_metrics(lines, self.observer)), flush=True)
                self._supervise()
            self._drain()
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for fd in self._fds.values():
                os.close(fd)
            close_all(self.sockets)
            if self.observer is not None:
                self.observer.close()
        return 1 if self.failed_stop else 0

    def _set_listening(self) -> None:
        """``/readyz`` says the roles listen while every worker does (and none stops)."""
        if self.observer is not None:
            self.observer.listening = not self.stopping and all(
                w.ready for w in self.workers)

    def _prepare(self) -> None:
        """What workers would otherwise race to create: the TLS pair, the web secret."""
        if self.roles & {"mx", "submission", "imap", "pop3"}:
            cert, key = self.settings.tls_files
            ensure_certificate(cert, key, self.settings.node_name)
        web_secret(self.settings)

    def _open_pipes(self) -> None:
        for name in ("wake", "ready", "life"):
            read, write = os.pipe()
            self._fds[f"{name}_r"], self._fds[f"{name}_w"] = read, write
        for fd in (self._fds["wake_r"], self._fds["wake_w"], self._fds["ready_r"]):
            os.set_blocking(fd, False)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._signals.append(signum)  # handled in the main loop (the wake pipe wakes it)

    def _start(self) -> bool:
        """Until every worker listens (``True``), or a stop signal came (``False``).
        A worker that dies first stops the others and raises :class:`StartFailed`."""
        while not all(w.ready for w in self.workers):
            for message in self._wait(None):
                if "error" in message:
                    self._fail(f"worker {message['index']}: {message['error']}")
            for worker, status in self._reap():
                self._fail(f"worker {worker.index} exited during start-up ({_how(status)})")
            if self._stop_requested():
                return False
        return True

    def _fail(self, reason: str) -> NoReturn:
        self._stop_all()
        self._drain()
        raise StartFailed(reason)

    def _supervise(self) -> None:
        while not self._stop_requested():
            due = [w.restart_at for w in self.workers if w.restart_at is not None]
            timeout = max(0.0, min(due) - time.monotonic()) if due else None
            self._wait(timeout)  # a worker that fails logs why itself
            now = time.monotonic()
            for worker, status in self._reap():
                quick = now - worker.started < STABLE_SECONDS
                worker.quick_deaths = worker.quick_deaths + 1 if quick else 0
                delay = (0.0 if worker.quick_deaths <= 1 else
                         min(RESTART_MAX, RESTART_MIN * 2 ** (worker.quick_deaths - 2)))
                log.error("worker %d (pid %d) %s; restarting it in %.1f s", worker.index,
                          worker.pid, _how(status), delay)
                mark_process_dead(worker.pid)
                worker.pid, worker.ready, worker.restart_at = 0, False, now + delay
                self._set_listening()
            for worker in self.workers:
                if worker.restart_at is not None and worker.restart_at <= time.monotonic():
                    self._fork(worker)

    def _stop_requested(self) -> bool:
        """Handle the signals received: a stop signal starts the drain."""
        signals, self._signals = self._signals, []
        for signum in signals:
            if signum == signal.SIGCHLD:
                continue
            if not self.stopping:
                log.info("stopping: draining %d workers", len(self.workers))
                self.stopping = True
                self._stop_all()
            elif signum == signal.SIGINT:  # a second Ctrl-C: stop without draining
                self._stop_all(signal.SIGINT)
        return self.stopping

    def _stop_all(self, signum: int = signal.SIGTERM) -> None:
        self.stopping = True
        self._set_listening()
        close_all(self.sockets)  # once the workers closed theirs, new clients are refused
        self.sockets = {}
        for worker in self.workers:
            worker.restart_at = None
            if worker.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signum)

    def _drain(self) -> None:
        """Wait for every worker to exit; kill those still there after KILL_SECONDS."""
        deadline: float | None = time.monotonic() + KILL_SECONDS
        while any(w.pid for w in self.workers):
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                for worker in self.workers:
                    if worker.pid:
                        log.error("worker %d (pid %d) still stopping after %d s: killed",
                                  worker.index, worker.pid, KILL_SECONDS)
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(worker.pid, signal.SIGKILL)
                deadline = left = None
                self.failed_stop = True
            self._wait(left)
            self._stop_requested()
            for worker, status in self._reap():
                if not _clean(status):
                    log.error("worker %d (pid %d) %s while stopping", worker.index,
                              worker.pid, _how(status))
                    self.failed_stop = True
                mark_process_dead(worker.pid)
                worker.pid = 0

    def _wait(self, timeout: float | None) -> list[dict[str, Any]]:
        """Sleep until a signal, a worker's message or ``timeout``; the messages read."""
        with selectors.DefaultSelector() as selector:
            selector.register(self._fds["wake_r"], selectors.EVENT_READ)
            selector.register(self._fds["ready_r"], selectors.EVENT_READ)
            selector.select(timeout)
        with contextlib.suppress(BlockingIOError):
            while os.read(self._fds["wake_r"], 512):
                pass
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self._fds["ready_r"], 65536):
                self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        messages = [json.loads(line) for line in lines if line]
        for message in messages:
            worker = self.workers[message["index"]]
            if "urls" in message and worker.pid == message["pid"]:
                worker.ready = True
                self.urls = message["urls"]
                log.info("worker %d ready (pid %d)", worker.index, worker.pid)
                self._set_listening()
        return messages

    def _reap(self) -> list[tuple[Worker, int]]:
        """The workers that exited since the last call, with their wait status."""
        reaped = []
        by_pid = {w.pid: w for w in self.workers if w.pid}
        while by_pid:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid in by_pid:
                reaped.append((by_pid.pop(pid), status))
        return reaped

    def _fork(self, worker: Worker) -> None:
        worker.restart_at, worker.ready = None, False
        sys.stdout.flush()
        sys.stderr.flush()
        signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED)  # until the child reset them
        try:
            pid = os.fork()
            if pid == 0:
                self._child(worker.index)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, WATCHED)
        worker.pid, worker.started = pid, time.monotonic()
        log.info("worker %d started (pid %d)", worker.index, pid)

    # -- a worker ---------------------------------------------------------------------

    def _child(self, index: int) -> NoReturn:
        """The forked worker ``index``: serve until stopped, then exit (never returns)."""
        status = 1
        try:
            os.setpgid(0, 0)  # a terminal's Ctrl-C reaches the supervisor only; it forwards
            signal.set_wakeup_fd(-1)
            for sig in WATCHED:
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, WATCHED)
            for name in ("wake_r", "wake_w", "ready_r", "life_w"):
                os.close(self._fds.pop(name))
            if self.observer is not None:  # the supervisor's listener, not ours
                self.observer.socket.close()
            configure_logging(self.settings.log_format, self.settings.log_level)
            settings = self.settings.model_copy(update={"worker_index": index})
            run_in_new_loop(_worker(settings, self.roles, self.sockets, index,
                                    self._fds["ready_w"], self._fds["life_r"]))
            status = 0
        except BaseException as exc:
            log.exception("worker %d failed", index)
            _tell(self._fds.get("ready_w"), {"index": index, "pid": os.getpid(),
                                             "error": _reason(exc)})
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            for handler in logging.getLogger().handlers:
                with contextlib.suppress(Exception):
                    handler.flush()
            os._exit(status)


async def _worker(settings: Settings, roles: set[str], sockets: dict[str, list[socket.socket]],
                  index: int, ready_fd: int, lifeline: int) -> None:
    """Serve ``roles`` on the inherited ``sockets``; say when ready; drain (as on SIGTERM)
    once the supervisor is gone (its end of the ``lifeline`` pipe closed)."""
    loop = asyncio.get_running_loop()

    def orphaned() -> None:
        loop.remove_reader(lifeline)
        log.error("worker %d: the supervisor is gone; stopping", index)
        os.kill(os.getpid(), signal.SIGTERM)

    loop.add_reader(lifeline, orphaned)

    def ready(urls: dict[str, str]) -> None:
        _tell(ready_fd, {"index": index, "pid": os.getpid(), "urls": urls})

    lag = asyncio.create_task(watch_lag(), name="mailward-loop-lag")
    try:
        await run(settings, roles, ready=ready, sockets=sockets)
    finally:
        loop.remove_reader(lifeline)
        lag.cancel()
        await asyncio.gather(lag, return_exceptions=True)


def _tell(fd: int | None, message: dict[str, Any]) -> None:
    """One line to the supervisor (short: a pipe write up to PIPE_BUF is atomic)."""
    if fd is not None:
        with contextlib.suppress(OSError):
            os.write(fd, json.dumps(message).encode() + b"\n")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return str(exc.strerror)
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0].strip() if lines else type(exc).__name__


def _clean(status: int) -> bool:
    """Exited 0, or ended by the stop signal before it could handle it."""
    if os.WIFSIGNALED(status):
        return os.WTERMSIG(status) in FORWARDED
    return os.waitstatus_to_exitcode(status) == 0


def _how(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"
