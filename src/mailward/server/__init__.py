"""Start roles in one event loop (``mailward serve``), handle signals, drain on exit."""

from mailward.server.roles import AVAILABLE_ROLES, KNOWN_ROLES, parse_roles
from mailward.server.run import describe, run, run_until_stopped

__all__ = ["AVAILABLE_ROLES", "KNOWN_ROLES", "describe", "parse_roles", "run", "run_until_stopped"]
