"""The directory: accounts, resellers, users, domains, addresses, logins and tokens.

``Directory`` bundles the directory services (and only those: the app layer's
``mailward.app.Services`` adds routing, the queue, the filter and the quarantine). The
API, panel and CLI all call these, so each rule lives once. Every method takes the
calling ``Actor`` and scopes its queries to it. Changes the layers above must react to
(a domain's route changed, a domain added) reach them through hooks passed in, never imports.
"""

from __future__ import annotations

from mailward.config import Settings
from mailward.core.actor import Actor
from mailward.core.audit import record
from mailward.core.errors import Conflict, Forbidden, InvalidInput, NotFound, ServiceError
from mailward.db import Database
from mailward.directory.accounts import AccountService
from mailward.directory.addresses import AddressFilter, AddressService
from mailward.directory.audit_log import AuditService
from mailward.directory.auth_limit import AuthLimiter
from mailward.directory.bulk_add import BulkAddService, BulkResult, LineResult, LineStatus
from mailward.directory.domains import DomainAdded, DomainService, OnDomainAdded
from mailward.directory.facts import RouteChanged
from mailward.directory.lookup import Recipient, RecipientLookup, Verdict
from mailward.directory.mail_login import LoginResult, MailLogin
from mailward.directory.mailbox_self import MailboxSelfService
from mailward.directory.mailbox_two_factor import MailboxTwoFactor
from mailward.directory.passwords import Passwords
from mailward.directory.resellers import ResellerService
from mailward.directory.tokens import TokenService
from mailward.directory.two_factor import TwoFactorService
from mailward.directory.users import UserService


class Directory:
    """All directory services over one database."""

    def __init__(self, db: Database, settings: Settings, *,
                 on_route_change: RouteChanged | None = None,
                 on_domain_added: OnDomainAdded | None = None) -> None:
        self.db = db
        self.settings = settings
        self.passwords = Passwords(settings)
        quota = settings.default_quota_mb * 1024 * 1024 or None
        self.accounts = AccountService(db, self.passwords)
        self.tokens = TokenService(db)
        self.domains = DomainService(db, on_route_change, on_domain_added)
        self.addresses = AddressService(db, self.passwords)
        self.bulk = BulkAddService(db, self.passwords, quota)
        self.recipients = RecipientLookup(db, settings.recipient_delimiter,
                                          postmaster=settings.postmaster,
                                          cache_entries=settings.lookup_cache_entries,
                                          cache_seconds=settings.lookup_cache_seconds)
        self.audit = AuditService(db)
        self.two_factor = TwoFactorService(db)
        self.mailbox_two_factor = MailboxTwoFactor(db)
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


__all__ = [
    "Actor",
    "AddressFilter",
    "AuditService",
    "BulkResult",
    "Conflict",
    "Directory",
    "DomainAdded",
    "Forbidden",
    "InvalidInput",
    "LineResult",
    "LineStatus",
    "LoginResult",
    "NotFound",
    "OnDomainAdded",
    "Recipient",
    "ServiceError",
    "TwoFactorService",
    "Verdict",
    "record",
]
