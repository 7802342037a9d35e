"""Webmail's services (no HTTP): reading, sanitising, composing and sending, folders and
conversations, search, the filter inside the mail UI, contacts, identities and settings.

``Webmail(services, store)`` is built once by the web role over the same mail store as
IMAP; the ``web.webmail`` pages call only this.
"""

from __future__ import annotations

from mailward.app import Services
from mailward.store import MailStore
from mailward.webmail.contacts import Contacts
from mailward.webmail.filtering import MailFiltering
from mailward.webmail.identities import Identities
from mailward.webmail.images import ImageProxy
from mailward.webmail.mailbox import MailboxView
from mailward.webmail.outbox import Outbox
from mailward.webmail.prefs import Prefs
from mailward.webmail.reading import Reader
from mailward.webmail.search import MailSearch

__all__ = ["Webmail"]


class Webmail:
    """Every webmail service over one mail store."""

    def __init__(self, services: Services, store: MailStore) -> None:
        settings = services.settings
        self.services = services
        self.store = store
        self.mailboxes = MailboxView(services, store)
        self.reader = Reader(store, settings)
        self.images = ImageProxy(settings)
        self.search = MailSearch(services.db, store)
        self.outbox = Outbox(services, store)
        self.contacts = Contacts(services.db)
        self.identities = Identities(services)
        self.prefs = Prefs(services.db, undo_default=settings.webmail_undo_seconds)
        self.filtering = MailFiltering(services, store)
