"""ManageSieve (RFC 5804): editing a mailbox's Sieve scripts from mail clients.

``grammar`` is the pure wire grammar (strings, literals, responses), ``session`` the
state machine over :class:`mailward.sieve.scripts.SieveScripts` and ``server`` the
listener factory.
"""

from __future__ import annotations

from mailward.managesieve.server import start_managesieve
from mailward.managesieve.session import Authenticator, LoginDeferred

__all__ = ["Authenticator", "LoginDeferred", "start_managesieve"]
