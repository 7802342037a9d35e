"""Run the chosen roles in the current event loop until SIGINT/SIGTERM or cancellation.

One process of a node runs :func:`run`; ``mailward serve`` with several workers forks them
from :mod:`mailward.server.supervisor`, each running :func:`run` on the listening sockets
the supervisor bound (see :func:`listen_sockets`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable, Coroutine, Iterable, Iterator
from importlib.metadata import version
from types import FrameType
from typing import Any

from sqlalchemy.engine import make_url

from mailward.app import Services
from mailward.config import Settings
from mailward.db import Database
from mailward.server.mail_roles import (
    DRAIN_SECONDS,
    DeliveryRole,
    ImapRole,
    MailSystem,
    ManageSieveRole,
    MxRole,
    Pop3Role,
    SubmissionRole,
)
from mailward.server.observe import sample_process
from mailward.server.roles import AVAILABLE_ROLES, KNOWN_ROLES
from mailward.server.web_role import DESCRIPTION, RoleServer, bind, url_for, web_server

Ready = Callable[[dict[str, str]], None]
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
log = logging.getLogger(__name__)
STOP_SECONDS = DRAIN_SECONDS + 30  # listeners drain sessions for DRAIN_SECONDS first

NOTES = {
    "web": DESCRIPTION,
    "mx": "public SMTP of the filtering tier",
    "delivery": "queue workers: mailboxes, relay, bounces",
    "submission": "SMTP AUTH for mailbox users: STARTTLS, implicit TLS",
    "pop3": "mailbox access: STLS, implicit TLS",
    "imap": "mailbox access: STARTTLS, implicit TLS",
    "managesieve": "Sieve script editing (RFC 5804): STARTTLS",
}
# Each listening role: its ports (settings fields) and the URL scheme of each.
LISTENERS: dict[str, tuple[tuple[str, str], ...]] = {
    "web": (("port_web", "http"),),
    "mx": (("port_mx", "smtp"),),
    "submission": (("port_submission", "smtp"), ("port_submissions", "smtps"),
                   ("port_submission_alt", "smtp")),
    "pop3": (("port_pop3", "pop3"), ("port_pop3s", "pop3s")),
    "imap": (("port_imap", "imap"), ("port_imaps", "imaps")),
    "managesieve": (("port_managesieve", "sieve"),),
}


def describe(urls: dict[str, str]) -> list[str]:
    """One line per role, as printed when no ``ready`` callback is given."""
    return [
        f"{role:<8} {url}" + (f"  ({NOTES[role]})" if role in NOTES else "")
        for role, url in urls.items()
    ]


def banner(settings: Settings, urls: dict[str, str], pids: Iterable[int] = ()) -> list[str]:
    """What ``mailward serve`` prints at start: listeners, worker processes (``pids``),
    storage, operator hostnames."""
    database = make_url(settings.db_url).render_as_string(hide_password=True)
    mx = ", ".join(f"{m.host} ({m.priority})" for m in settings.mx_hosts)
    missing = [role for role in KNOWN_ROLES if role not in AVAILABLE_ROLES]
    lines = [f"mailward {version('mailward')} serving {', '.join(sorted(urls))}", *describe(urls)]
    if missing:
        lines.append(f"not implemented yet: {', '.join(missing)}")
    workers = settings.workers or 1
    shown = [str(pid) for pid in pids]
    lines += [
        f"workers   {workers} process{'es' if workers > 1 else ''}, one event loop each"
        + (f" (pid{'s' if len(shown) > 1 else ''} {', '.join(shown)})" if shown else ""),
        f"database  {database}",
        f"data dir  {settings.data_dir.resolve()}",
        f"MX hosts  {mx}; hosting host {settings.hosting_host}; "
        f"webmail host {settings.webmail_host}",
    ]
    credentials = settings.operator_credentials_file
    if credentials.exists():
        lines.append(f"first operator login: see {credentials} (delete it once stored)")
    lines.append("stop with Ctrl-C (SIGINT) or SIGTERM")
    return lines


def _check(roles: set[str]) -> None:
    if not roles:
        raise ValueError("no roles to run")
    for role in sorted(roles):
        if role not in KNOWN_ROLES:
            raise ValueError(f"unknown role {role!r} (known: {', '.join(KNOWN_ROLES)})")
        if role not in AVAILABLE_ROLES:
            raise ValueError(f"role {role!r} is not available yet")


def listen_sockets(settings: Settings, roles: Iterable[str]) -> dict[str, list[socket.socket]]:
    """Bind every listener of ``roles`` (``{role: sockets}``); if one cannot be bound,
    close those bound so far and raise the ``OSError``."""
    sockets: dict[str, list[socket.socket]] = {}
    try:
        for role in LISTENERS:
            if role in roles:
                sockets[role] = [bind(settings.bind, getattr(settings, field), role)
                                 for field, _ in listeners(role, settings)]
    except BaseException:
        close_all(sockets)
        raise
    return sockets


def close_all(sockets: dict[str, list[socket.socket]]) -> None:
    for bound in sockets.values():
        for sock in bound:
            sock.close()


async def run(
    settings: Settings, roles: set[str] | None = None, *, ready: Ready | None = None,
    sockets: dict[str, list[socket.socket]] | None = None,
) -> None:
    """Serve ``roles`` (default: all available) until a stop signal; then drain and return.

    ``ready`` receives ``{role: url}`` once every listener accepts connections, with the
    real port when the configured one is 0; without it, one line per role is printed.
    ``sockets`` are listening sockets bound already (:func:`listen_sockets`, e.g. by the
    supervisor); without them the listeners are bound here. Either way they are closed
    on return. Cancelling the task that runs this stops the servers gracefully as well.
    """
    roles = set(AVAILABLE_ROLES) if roles is None else set(roles)
    _check(roles)
    sockets = listen_sockets(settings, roles) if sockets is None else sockets
    db = Database(settings.db_url)
    samplers: asyncio.Task[None] | None = None
    services: Services | None = None
    try:
        services = Services(db, settings)
        mail = MailSystem.create(services, settings) if roles - {"web"} else None
        servers = _servers(services, settings, roles, mail)
        # the pool gauge in every process, the queue size in the node's first worker
        samplers = asyncio.create_task(sample_process(db, settings), name="mailward-samplers")
        with _stop_on_signals(servers.values()):
            try:
                await _serve(servers, sockets, settings, ready)
            finally:
                if mail is not None:  # stop hearing other nodes' mailbox changes
                    await asyncio.shield(mail.events.close())
    finally:
        if samplers is not None:
            samplers.cancel()
            await asyncio.gather(samplers, return_exceptions=True)
        if services is not None:  # what the trace still holds (refusals, counters)
            await asyncio.shield(services.trace.close())
        close_all(sockets)
        await db.dispose()


def _servers(services: Services, settings: Settings, roles: set[str],
             mail: MailSystem | None) -> dict[str, Any]:
    servers: dict[str, Any] = {}
    if "web" in roles:
        servers["web"] = web_server(services, settings, mail)
    if "mx" in roles:
        assert mail is not None
        servers["mx"] = MxRole(services, settings, mail)
    if "delivery" in roles:
        assert mail is not None
        servers["delivery"] = DeliveryRole(services, settings, mail)
    if "submission" in roles:
        assert mail is not None
        servers["submission"] = SubmissionRole(services, settings, mail)
    if "pop3" in roles:
        assert mail is not None
        servers["pop3"] = Pop3Role(services, settings, mail)
    if "imap" in roles:
        assert mail is not None
        servers["imap"] = ImapRole(services, settings, mail)
    if "managesieve" in roles:
        assert mail is not None
        servers["managesieve"] = ManageSieveRole(services, settings, mail)
    return servers


def _url(role: str, settings: Settings, server: Any) -> str:
    if role not in LISTENERS:
        each = " per worker" if (settings.workers or 1) > 1 else ""
        return f"{settings.delivery_concurrency} concurrent deliveries{each}"
    ports = server.ports if hasattr(server, "ports") else [server.port]
    return ", ".join(
        url_for(settings.bind, port).replace("http", scheme, 1)
        for port, (_, scheme) in zip(ports, listeners(role, settings), strict=True)
    )


def listeners(role: str, settings: Settings) -> list[tuple[str, str]]:
    """The role's (port setting, scheme) pairs, leaving out optional ports not set."""
    return [(field, scheme) for field, scheme in LISTENERS.get(role, ())
            if getattr(settings, field) is not None]


async def _serve(
    servers: dict[str, RoleServer],
    sockets: dict[str, list[socket.socket]],
    settings: Settings,
    ready: Ready | None,
) -> None:
    tasks = {
        role: asyncio.create_task(
            server.serve(sockets=sockets.get(role)),
            name=f"mailward-{role}",
        )
        for role, server in servers.items()
    }
    try:
        for role, server in servers.items():
            listening = asyncio.create_task(server.listening.wait())
            done, _ = await asyncio.wait(
                {listening, tasks[role]}, return_when=asyncio.FIRST_COMPLETED
            )
            if listening not in done:
                listening.cancel()
                tasks[role].result()  # re-raises a start-up failure
                return  # asked to stop before it listened
        urls = {role: _url(role, settings, server) for role, server in servers.items()}
        if ready is None:
            print("\n".join(banner(settings, urls, [os.getpid()])), flush=True)
        else:
            ready(urls)
        # asyncio.wait, unlike gather, leaves the servers running if we are cancelled.
        done, _ = await asyncio.wait(tasks.values(), return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()  # re-raises the error that stopped a server
    finally:
        for server in servers.values():
            server.should_exit = True
        # Drain every server, even when we are being cancelled, but never forever: a role
        # stuck in its shutdown must not keep the process from exiting on SIGTERM.
        await asyncio.shield(_drain(tasks))


def run_in_process(settings: Settings, roles: set[str] | None = None) -> None:
    """:func:`run` in a fresh event loop: ``mailward serve`` with one worker."""
    run_in_new_loop(run(settings, roles))


def run_in_new_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` in a fresh event loop (one worker process of ``mailward serve``).

    Unlike ``asyncio.run``, leftover tasks get a bounded chance to finish once the roles
    have stopped: a task that ignores its cancellation is logged and abandoned instead of
    keeping the process alive after SIGTERM.
    """
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(main)
    finally:
        leftover = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in leftover:
            task.cancel()
        if leftover:
            loop.run_until_complete(asyncio.wait(leftover, timeout=5))
        for task in leftover:
            if not task.done():
                log.error("task %s ignored its cancellation; abandoned at exit",
                          task.get_name())
        loop.close()


async def _drain(tasks: dict[str, asyncio.Task[Any]]) -> None:
    """Wait for the roles to finish; cancel (and log) those still running after
    ``STOP_SECONDS``. Queued mail is safe either way: leases run out and it is retried."""
    _, stuck = await asyncio.wait(tasks.values(), timeout=STOP_SECONDS)
    if not stuck:
        return
    names = sorted(role for role, task in tasks.items() if task in stuck)
    log.error("roles still stopping after %d s, cancelled: %s", STOP_SECONDS, ", ".join(names))
    for task in stuck:
        for frame in task.get_stack():
            log.error("  %s stuck at %s:%d", task.get_name(), frame.f_code.co_filename,
                      frame.f_lineno)
        task.cancel()
    await asyncio.wait(stuck, timeout=5)


@contextlib.contextmanager
def _stop_on_signals(servers: Iterable[RoleServer]) -> Iterator[None]:
    """SIGINT/SIGTERM ask every server to stop; a second SIGINT forces it."""
    loop = asyncio.get_running_loop()
    targets = list(servers)
    # (signal, the handler it had: a callable, SIG_DFL/SIG_IGN, or None if not set from Python)
    installed: list[tuple[signal.Signals, Callable[[int, FrameType | None], Any] | int | None]] = []

    def stop(sig: signal.Signals) -> None:
        for server in targets:
            if server.should_exit and sig is signal.SIGINT:
                server.force_exit = True
            server.should_exit = True

    for sig in STOP_SIGNALS:
        previous = signal.getsignal(sig)
        try:
            loop.add_signal_handler(sig, stop, sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            continue
        installed.append((sig, previous))
    try:
        yield
    finally:
        for sig, previous in installed:
            loop.remove_signal_handler(sig)
            signal.signal(sig, previous)
