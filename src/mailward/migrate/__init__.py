"""Mail migration: copying hosted mailboxes from the customer's old IMAP server.

``jobs`` (the service the panel and the CLI use), ``runner`` (the delivery role's worker),
``source`` (the old server over ``imaplib``), ``folders`` (folder names translated) and
``credentials`` (the old password sealed with a key derived from the web secret).
"""

from mailward.migrate.credentials import CredentialBox, CredentialError
from mailward.migrate.jobs import JobView, MigrationService, Source, master_login
from mailward.migrate.runner import MigrationRunner

__all__ = ["CredentialBox", "CredentialError", "JobView", "MigrationRunner",
           "MigrationService", "Source", "master_login"]
