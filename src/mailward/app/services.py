"""``Services``: the directory and every service above it, wired together once.

This is where the layers meet: the directory's route-change hook is the queue's "retry
now", its domain-added hook makes the domain's DKIM key, the quarantine gets the spool
and the filter settings, and the background jobs get what they need from here. The
directory's own services are reachable under the same names as on
:class:`~mailward.directory.Directory` (``services.accounts`` …), so the panel, the API
and the CLI reach every service alike.
"""

from __future__ import annotations

from mailward.app.tracing import TraceService
from mailward.config import Settings
from mailward.db import Database
from mailward.directory import Directory
from mailward.dkim import DkimService
from mailward.filter.settings import FilterSettingsService
from mailward.quarantine.service import QuarantineService
from mailward.queue.admin import QueueService, retry_domain_now
from mailward.queue.spool import Spool
from mailward.routing.servers import ServerService
from mailward.sieve.scripts import SieveScripts
from mailward.trace.recorder import Trace


class Services:
    """All services over one database."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        directory = Directory(db, settings, on_route_change=retry_domain_now,
                              on_domain_added=DkimService.on_domain_added)
        self.directory = directory
        # the directory's services, under their own names
        self.passwords = directory.passwords
        self.accounts = directory.accounts
        self.tokens = directory.tokens
        self.domains = directory.domains
        self.addresses = directory.addresses
        self.bulk = directory.bulk
        self.recipients = directory.recipients
        self.audit = directory.audit
        self.two_factor = directory.two_factor
        self.mailbox_two_factor = directory.mailbox_two_factor
        self.resellers = directory.resellers
        self.limiter = directory.limiter
        self.mail_login = directory.mail_login
        self.users = directory.users
        self.mailbox_self = directory.mailbox_self
        # and those of the layers above it
        self.trace = Trace(db, settings)  # this process's recorder of message traces
        self.tracing = TraceService(db, settings)  # reading traces back, within a scope
        self.sieve = SieveScripts(db)  # mailboxes' Sieve scripts (ManageSieve, editors)
        self.dkim = DkimService(db)
        self.servers = ServerService(db, settings, on_route_change=retry_domain_now)
        self.spool = Spool(db, settings.data_dir, trace=self.trace)  # wakes this process's workers
        self.queue = QueueService(db, self.spool, trace=self.trace)
        self.filter = FilterSettingsService(db, settings)
        self.quarantine = QuarantineService(db, settings, self.spool, self.filter,
                                            trace=self.trace)
