"""The ``mx`` and ``delivery`` roles, shaped like the web role's server for ``run``.

Each has ``serve(sockets)``, a ``listening`` event, ``should_exit``/``force_exit`` flags
(set by the signal handler) and, for listeners, the bound ``port``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass

from mailward.config import Settings
from mailward.directory import Directory
from mailward.queue.admin import QueueService
from mailward.queue.intake import MxIntake
from mailward.queue.local import LocalDelivery
from mailward.queue.spool import Spool
from mailward.queue.worker import DeliveryWorker
from mailward.smtp.mx import start_mx
from mailward.smtp.tls import ensure_certificate, server_context
from mailward.store import MailStore, open_store

log = logging.getLogger(__name__)
DRAIN_SECONDS = 30


@dataclass
class MailSystem:
    """The services the mail roles share within one process."""

    spool: Spool
    store: MailStore
    queue: QueueService

    @classmethod
    def create(cls, directory: Directory, settings: Settings) -> MailSystem:
        queue = directory.queue  # its spool wakes this process's workers on "retry now"
        return cls(queue.spool, open_store(settings, directory.db), queue)


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


class MxRole(_Role):
    def __init__(self, directory: Directory, settings: Settings, mail: MailSystem) -> None:
        super().__init__()
        self.settings = settings
        self.intake = MxIntake(directory.recipients, mail.spool)
        self._server: asyncio.AbstractServer | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        assert sockets, "the mx role needs its listening socket"
        cert, key = self.settings.tls_files
        await asyncio.to_thread(ensure_certificate, cert, key, self.settings.node_name)
        server = await start_mx(
            self.intake,
            sock=sockets[0],
            hostname=self.settings.node_name,
            tls_context=server_context(cert, key),
            data_size_limit=self.settings.max_message_size,
            max_recipients=self.settings.max_recipients,
            timeout=self.settings.smtp_timeout_seconds,
        )
        self._server = server
        self.listening.set()
        try:
            await self._stop.wait()
        finally:
            server.close()  # stop accepting; sessions in DATA finish or time out
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), DRAIN_SECONDS)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])


class DeliveryRole(_Role):
    def __init__(self, directory: Directory, settings: Settings, mail: MailSystem) -> None:
        super().__init__()
        local = LocalDelivery(directory.db, mail.store, mail.spool)
        self.worker = DeliveryWorker(directory.db, settings, mail.spool, local)
        self.port = 0

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        task = asyncio.create_task(self.worker.run(), name="mailward-delivery-worker")
        self.listening.set()
        stop = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
