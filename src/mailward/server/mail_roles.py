"""The ``mx`` and ``delivery`` roles, shaped like the web role's server for ``run``.

Each has ``serve(sockets)``, a ``listening`` event, ``should_exit``/``force_exit`` flags
(set by the signal handler) and, for listeners, the bound ``port``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from dataclasses import dataclass, field

from mailward.app import Services
from mailward.config import Settings
from mailward.directory.forwarding import ForwardLimits
from mailward.directory.mail_login import MailLogin
from mailward.dns.recheck import DnsRechecker
from mailward.filter import filter_pipeline
from mailward.filter.auth import Authenticator
from mailward.filter.judge import Judge
from mailward.filter.virus import VirusScanner
from mailward.imap.fetch import ParsedCache
from mailward.imap.server import start_imap
from mailward.imap.session import ImapServices
from mailward.imap.session import LoginDeferred as ImapLoginDeferred
from mailward.inbound.mx import MxIntake
from mailward.inbound.submission import Signer, SubmissionIntake, dkim_signer
from mailward.managesieve import LoginDeferred as SieveLoginDeferred
from mailward.managesieve import start_managesieve
from mailward.migrate import MigrationRunner
from mailward.net.limits import ConnectionLimiter
from mailward.pop3 import LoginDeferred, start_pop3
from mailward.pop3.maildrop import MaildropLocks
from mailward.pop3.shared_locks import FileMaildropLocks, PostgresMaildropLocks
from mailward.quarantine.digest import QuarantineDigester
from mailward.quarantine.service import Quarantine
from mailward.queue.admin import QueueService
from mailward.queue.local import LocalDelivery
from mailward.queue.spool import Spool
from mailward.queue.worker import DeliveryWorker
from mailward.smtp.mx import start_mx
from mailward.smtp.submission import start_submission
from mailward.smtp.tls import ensure_certificate, server_context
from mailward.store import MailStore, open_store
from mailward.store.events import MailboxEvents, open_events

log = logging.getLogger(__name__)
DRAIN_SECONDS = 30


@dataclass
class MailSystem:
    """The services the mail roles share within one process."""

    spool: Spool
    store: MailStore
    queue: QueueService
    settings: Settings | None = None
    signer: Signer | None = None
    events: MailboxEvents = field(default_factory=MailboxEvents)
    _tls: ssl.SSLContext | None = None
    _tls_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _events_started: bool = False

    async def start_events(self) -> None:
        """Start listening for mailbox changes of other nodes (once per process)."""
        async with self._tls_lock:
            if not self._events_started:
                await self.events.start()
                self._events_started = True

    async def tls_context(self) -> ssl.SSLContext:
        """The listeners' TLS context; the certificate is generated once if missing."""
        async with self._tls_lock:
            if self._tls is None:
                assert self.settings is not None
                cert, key = self.settings.tls_files
                await asyncio.to_thread(ensure_certificate, cert, key,
                                        self.settings.node_name)
                self._tls = server_context(cert, key)
            return self._tls

    @classmethod
    def create(cls, services: Services, settings: Settings) -> MailSystem:
        queue = services.queue  # its spool wakes this process's workers on "retry now"
        events = open_events(settings)
        return cls(queue.spool, open_store(settings, services.db, events), queue, settings,
                   dkim_signer(services.dkim), events)


def connection_caps(settings: Settings, role: str) -> tuple[int, int]:
    """This process's ``(total, per client address)`` caps of a listening role: the
    node's total is shared out among its ``workers`` processes; the per-address cap
    applies in each process."""
    total, per_ip = settings.connection_caps(role)
    return -(-total // (settings.workers or 1)), per_ip


def maildrop_locks(settings: Settings) -> MaildropLocks:
    """POP3 maildrop locks that exclude each other across processes: advisory locks in
    the shared PostgreSQL store (several nodes), else lock files in the data dir (the
    worker processes of this node)."""
    if settings.store_backend == "postgresql":
        return PostgresMaildropLocks(settings.db_url)
    return FileMaildropLocks(settings.data_dir / "run" / "pop3-locks")


class _Role:
    """Stop flags as an event, so a role wakes the moment it is asked to stop."""

    def __init__(self) -> None:
        self.listening = asyncio.Event()
        self._stop = asyncio.Event()
        self.force_exit = False

    @property
    def should_exit(self) -> bool:
        return self._stop.is_set()

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        if value:
            self._stop.set()


class ListenerRole(_Role):
    """A role with one asyncio server per listening socket, stopped together."""

    def __init__(self, settings: Settings, mail: MailSystem) -> None:
        super().__init__()
        self.settings = settings
        self.mail = mail
        self._servers: list[asyncio.Server] = []
        self.limiter = ConnectionLimiter(*connection_caps(settings, self.role))  # all ports

    role = ""
    """The settings name of the role (``max_connections_<role>``)."""

    async def start(self, sock: socket.socket, index: int,
                    tls: ssl.SSLContext) -> asyncio.Server:
        raise NotImplementedError

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        assert sockets, "a listening role needs its sockets"
        tls = await self.mail.tls_context()
        await self.mail.start_events()
        try:
            for index, sock in enumerate(sockets):
                self._servers.append(await self.start(sock, index, tls))
            self.listening.set()
            await self._stop.wait()
        finally:
            for server in self._servers:
                server.close()  # stop accepting; sessions finish or time out
            self.closing()
            # Server.wait_closed does not wait for the connections before Python 3.12:
            # the limiter counts them (every session releases its count when it ends).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(
                    self.limiter.wait_drained(),
                    *(s.wait_closed() for s in self._servers)), DRAIN_SECONDS)
            await self.closed()

    def closing(self) -> None:
        """The listeners stopped accepting: end long-lived sessions (default: none)."""

    async def closed(self) -> None:
        """The sessions ended (or the drain timed out): free what they shared."""

    @property
    def ports(self) -> list[int]:
        return [int(s.sockets[0].getsockname()[1]) for s in self._servers]

    @property
    def port(self) -> int:
        return self.ports[0]


class MxRole(ListenerRole):
    role = "mx"

    def __init__(self, services: Services, settings: Settings, mail: MailSystem) -> None:
        super().__init__(settings, mail)
        on = settings.spam_filter
        virus = VirusScanner.of(services.db, settings)  # None: no clamd_socket
        self.intake = MxIntake(
            services.recipients, mail.spool, filter_pipeline(settings),
            Authenticator(settings) if on else None,
            Judge(services.db, settings, services.filter.learning) if on else None,
            # infected mail is held per domain setting even with the spam filter off
            Quarantine(services.db, settings, trace=services.trace) if on or virus else None,
            trace=services.trace, virus=virus)
        self.trace = services.trace

    async def start(self, sock: socket.socket, index: int,
                    tls: ssl.SSLContext) -> asyncio.Server:
        return await start_mx(
            self.intake, sock=sock, hostname=self.settings.node_name, tls_context=tls,
            trace=self.trace,
            data_size_limit=self.settings.max_message_size,
            max_recipients=self.settings.max_recipients,
            timeout=self.settings.smtp_timeout_seconds,
            data_memory_bytes=self.settings.smtp_data_memory_bytes,
            spill_dir=self.settings.data_dir / "tmp", limiter=self.limiter,
        )


class SubmissionRole(ListenerRole):
    """587 (STARTTLS) and 465 (implicit TLS): authenticated users sending mail."""

    role = "submission"

    def __init__(self, services: Services, settings: Settings, mail: MailSystem) -> None:
        super().__init__(settings, mail)
        self.login = services.mail_login
        self.intake = SubmissionIntake(services.mail_login, mail.spool, mail.signer,
                                       trace=services.trace)
        self.trace = services.trace

    async def start(self, sock: socket.socket, index: int,
                    tls: ssl.SSLContext) -> asyncio.Server:
        return await start_submission(
            self.intake, authenticator=self.login, sock=sock, trace=self.trace,
            hostname=self.settings.node_name, tls_context=tls, implicit_tls=index == 1,
            allow_plaintext_auth=self.settings.allow_plaintext_auth,
            data_size_limit=self.settings.max_message_size,
            max_recipients=self.settings.max_recipients,
            timeout=self.settings.smtp_timeout_seconds,
            preauth_timeout=self.settings.preauth_timeout_seconds,
            data_memory_bytes=self.settings.smtp_data_memory_bytes,
            spill_dir=self.settings.data_dir / "tmp", limiter=self.limiter,
        )


class _DirectoryLogin:
    """The directory's mailbox login, as a POP3, IMAP or ManageSieve server asks for it."""

    def __init__(self, login: MailLogin, protocol: str,
                 deferred: type[LoginDeferred] | type[ImapLoginDeferred]
                 | type[SieveLoginDeferred]) -> None:
        self.login = login
        self.protocol = protocol
        self.deferred = deferred

    async def authenticate(self, login: str, password: str, peer: str) -> str | None:
        result = await self.login.authenticate(login, password, peer, self.protocol)
        if result.retry_after:
            raise self.deferred(f"Too many failed logins; try again in "
                                f"{result.retry_after} seconds")
        return result.mailbox


class Pop3Role(ListenerRole):
    """110 (STLS) and 995 (implicit TLS)."""

    role = "pop3"

    def __init__(self, services: Services, settings: Settings, mail: MailSystem) -> None:
        super().__init__(settings, mail)
        self.authenticator = _DirectoryLogin(services.mail_login, "pop3", LoginDeferred)
        self.store = mail.store
        self.locks = maildrop_locks(settings)  # other processes serve the mailbox too

    async def closed(self) -> None:
        await self.locks.aclose()

    async def start(self, sock: socket.socket, index: int,
                    tls: ssl.SSLContext) -> asyncio.Server:
        return await start_pop3(
            authenticator=self.authenticator, store=self.store, sock=sock,
            hostname=self.settings.node_name, tls_context=tls, implicit_tls=index == 1,
            allow_plaintext_auth=self.settings.allow_plaintext_auth, locks=self.locks,
            preauth_timeout=float(self.settings.preauth_timeout_seconds),
            limiter=self.limiter,
        )


class ImapRole(ListenerRole):
    """143 (STARTTLS) and 993 (implicit TLS)."""

    role = "imap"

    def __init__(self, services: Services, settings: Settings, mail: MailSystem) -> None:
        super().__init__(settings, mail)
        self.services = services
        self._services: list[ImapServices] = []
        self._parsed = ParsedCache()  # one for both ports

    def closing(self) -> None:
        for services in self._services:  # IDLE sessions would otherwise last 30 minutes
            services.shut_down()

    async def start(self, sock: socket.socket, index: int,
                    tls: ssl.SSLContext) -> asyncio.Server:
        settings = self.settings
        services = ImapServices(
            authenticator=_DirectoryLogin(self.services.mail_login, "imap", ImapLoginDeferred),
            store=self.mail.store,
            events=self.mail.events, quota=self.services.mail_login.quota,
            hostname=settings.node_name, tls_context=tls,
            allow_plaintext_auth=settings.allow_plaintext_auth,
            max_literal=settings.imap_max_literal or settings.max_message_size,
            idle_timeout=float(settings.imap_idle_timeout_seconds), parsed=self._parsed,
            preauth_max_literal=settings.preauth_max_literal,
            preauth_timeout=float(settings.preauth_timeout_seconds), limiter=self.limiter,
            spam_reporter=self.services.filter,  # Junk moves teach the domain's filter
        )
        self._services.append(services)
        return await start_imap(services, sock=sock, implicit_tls=index == 1)


class ManageSieveRole(ListenerRole):
    """4190 (STARTTLS): mail clients' Sieve editors (RFC 5804) on the mailbox's scripts."""

    role = "managesieve"

    def __init__(self, services: Services, settings: Settings, mail: MailSystem) -> None:
        super().__init__(settings, mail)
        self.authenticator = _DirectoryLogin(services.mail_login, "managesieve",
                                             SieveLoginDeferred)
        self.scripts = services.sieve

    async def start(self, sock: socket.socket, index: int,
                    tls: ssl.SSLContext) -> asyncio.Server:
        return await start_managesieve(
            authenticator=self.authenticator, scripts=self.scripts, sock=sock,
            hostname=self.settings.node_name, tls_context=tls,
            allow_plaintext_auth=self.settings.allow_plaintext_auth,
            preauth_timeout=float(self.settings.preauth_timeout_seconds),
            preauth_max_literal=self.settings.preauth_max_literal, limiter=self.limiter,
        )


class DeliveryRole(_Role):
    def __init__(self, services: Services, settings: Settings, mail: MailSystem) -> None:
        super().__init__()
        local = LocalDelivery(services.db, mail.store, mail.spool, services.recipients,
                              ForwardLimits.of(settings), signer=mail.signer)
        self.worker = DeliveryWorker(services.db, settings, mail.spool, local,
                                     trace=services.trace)
        # the background jobs of the platform run with the delivery workers of the node's
        # first worker process (one is enough; two would send digests twice)
        first = settings.worker_index == 0
        self.rechecker = (DnsRechecker(services.directory, settings, mail.spool)
                          if settings.dns_recheck_interval_seconds and first else None)
        # quarantine: retention purge always, digests unless the interval is 0
        self.digester = QuarantineDigester(services.db, settings, mail.spool,
                                           trace=services.trace) if first else None
        # the message trace: retention pruning and queue-depth samples for the charts
        self.tracing = services.tracing if first else None
        # mail copied from customers' old IMAP servers: each process takes one job at a
        # time under a lease
        self.migrations = MigrationRunner(services.db, mail.store, settings,
                                          quota=services.mail_login.quota)
        self.mail = mail
        self.port = 0

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        await self.mail.start_events()
        tasks = {asyncio.create_task(self.worker.run(), name="mailward-delivery-worker")}
        if self.rechecker is not None:
            tasks.add(asyncio.create_task(self.rechecker.run(), name="mailward-dns-recheck"))
        if self.digester is not None:
            tasks.add(asyncio.create_task(self.digester.run(), name="mailward-quarantine"))
        if self.tracing is not None:
            tasks.add(asyncio.create_task(self.tracing.run(), name="mailward-trace-jobs"))
        tasks.add(asyncio.create_task(self.migrations.run(), name="mailward-migrations"))
        self.listening.set()
        stop = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({*tasks, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.worker.relay.aclose()  # QUIT the cached outgoing connections
