"""Start roles in one event loop per worker process (``mailward serve``), handle signals,
drain on exit."""

from mailward.server.roles import AVAILABLE_ROLES, KNOWN_ROLES, parse_roles
from mailward.server.run import describe, run
from mailward.server.supervisor import StartFailed, run_until_stopped, worker_count

__all__ = ["AVAILABLE_ROLES", "KNOWN_ROLES", "StartFailed", "describe", "parse_roles", "run",
           "run_until_stopped", "worker_count"]
