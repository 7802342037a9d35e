"""The roles one ``mailward serve`` process can run, and parsing ``--roles``."""

from __future__ import annotations

KNOWN_ROLES = ("mx", "delivery", "submission", "imap", "pop3", "managesieve", "web")
AVAILABLE_ROLES = ("mx", "delivery", "submission", "imap", "pop3", "managesieve", "web")
"""The roles implemented so far (a subset of ``KNOWN_ROLES``)."""


def parse_roles(text: str) -> set[str]:
    """``"all"`` → every available role; otherwise a comma-separated list of role names."""
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    if not names:
        raise ValueError("no roles given (use 'all' or a comma-separated list)")
    if names == ["all"]:
        return set(AVAILABLE_ROLES)
    roles: set[str] = set()
    for name in names:
        if name not in KNOWN_ROLES:
            known = ", ".join(("all", *KNOWN_ROLES))
            raise ValueError(f"unknown role {name!r} (known: {known})")
        if name not in AVAILABLE_ROLES:
            raise ValueError(f"role {name!r} is not available yet")
        roles.add(name)
    return roles
