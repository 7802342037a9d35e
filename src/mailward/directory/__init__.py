"""The directory: accounts, users, domains, addresses and the reference doc §2 operations.

``Directory`` bundles the services; the API, panel and CLI all call these, so each rule
lives once. Every method takes the calling ``Actor`` and scopes its queries to it.
"""

from __future__ import annotations

from mailward.config import Settings
from mailward.db import Database
from mailward.directory.accounts import AccountService
from mailward.directory.actor import Actor
from mailward.directory.addresses import AddressFilter, AddressService
from mailward.directory.audit import AuditService, record
from mailward.directory.auth_limit import AuthLimiter
from mailward.directory.bulk_add import BulkAddService, BulkResult, LineResult, LineStatus
from mailward.directory.domains import DomainService
from mailward.directory.errors import Conflict, DirectoryError, Forbidden, InvalidInput, NotFound
from mailward.directory.lookup import Recipient, RecipientLookup, Verdict
from mailward.directory.mail_login import LoginResult, MailLogin
from mailward.directory.mailbox_self import MailboxSelfService
from mailward.directory.passwords import Passwords
from mailward.directory.resellers import ResellerService
from mailward.directory.tokens import TokenService
from mailward.directory.two_factor import TwoFactorService
from mailward.directory.users import UserService


class Directory:
    """All directory services over one database."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.passwords = Passwords(settings)
        quota = settings.default_quota_mb * 1024 * 1024 or None
        self.accounts = AccountService(db, self.passwords)
        self.tokens = TokenService(db)
        self.domains = DomainService(db)
        self.addresses = AddressService(db, self.passwords)
        self.bulk = BulkAddService(db, self.passwords, quota)
        self.recipients = RecipientLookup(db, settings.recipient_delimiter,
                                          postmaster=settings.postmaster)
        self.audit = AuditService(db)
        self.two_factor = TwoFactorService(db)
        self.resellers = ResellerService(db)
        # One brute-force limit for web, POP3, IMAP and submission logins, counted in the
        # database so that every node of a cluster enforces it.
        self.limiter = AuthLimiter(db, settings.auth_failures_per_window,
                                   settings.auth_window_seconds)
        mail_ips = AuthLimiter(db, settings.auth_ip_failures_per_window,
                               settings.auth_window_seconds)
        self.mail_login = MailLogin(db, self.passwords, self.limiter, mail_ips)
        self.users = UserService(db, self.passwords, self.limiter)
        self.mailbox_self = MailboxSelfService(db, self.passwords, self.limiter)
        # Mail server settings, the queue and the filter live in ``routing``/``queue``/
        # ``filter`` (which import this package, hence the late imports); bundled here so
        # the panel, API and CLI reach every service alike.
        from mailward.queue.admin import QueueService
        from mailward.queue.spool import Spool
        from mailward.routing.servers import ServerService

        self.servers = ServerService(db, settings)
        self.queue = QueueService(db, Spool(db, settings.data_dir))
        # the spam filter's customer-facing services (they queue and learn, hence here)
        from mailward.filter.quarantine import QuarantineService
        from mailward.filter.settings import FilterSettingsService

        self.filter = FilterSettingsService(db, settings)
        self.quarantine = QuarantineService(db, settings, self.queue.spool, self.filter)


__all__ = [
    "Actor",
    "AddressFilter",
    "AuditService",
    "BulkResult",
    "Conflict",
    "Directory",
    "DirectoryError",
    "Forbidden",
    "InvalidInput",
    "LineResult",
    "LineStatus",
    "LoginResult",
    "NotFound",
    "Recipient",
    "TwoFactorService",
    "Verdict",
    "record",
]
