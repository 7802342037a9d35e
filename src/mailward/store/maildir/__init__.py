"""Maildir++ backend of the mail store (the default; readable by Dovecot)."""

from mailward.store.maildir.store import MaildirStore

__all__ = ["MaildirStore"]
