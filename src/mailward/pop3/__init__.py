"""POP3 access to a mailbox's INBOX (RFC 1939, 2449 CAPA, 2595 STLS, 5034 SASL PLAIN).

``commands`` is the pure wire grammar, ``maildrop`` the login snapshot and lock,
``session`` the state machine and ``server`` the listener factory.
"""

from __future__ import annotations

from mailward.pop3.maildrop import DEFAULT_LOCKS, MaildropLocks
from mailward.pop3.server import start_pop3
from mailward.pop3.session import LoginDeferred, Pop3Authenticator

__all__ = [
    "DEFAULT_LOCKS",
    "LoginDeferred",
    "MaildropLocks",
    "Pop3Authenticator",
    "start_pop3",
]
