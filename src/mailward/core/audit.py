"""The audit log: who changed what, when, and from where (panel, API or CLI).

Every mutating service method calls :func:`record` inside its own transaction, so a change
and its entry commit (or roll back) together. Entries never hold a password, a token or a
hash of either. Reading it is the directory's (:mod:`mailward.directory.audit_log`):
account admins read their account's entries; operators read all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from mailward.core.actor import Actor
from mailward.db.models import AuditEntry


@dataclass(frozen=True, slots=True)
class AuditView:
    """One audit log entry: ``account`` is ``None`` for operator-wide changes."""

    at: datetime
    account: str | None
    actor: str
    role: str
    source: str
    action: str
    target: str
    detail: str

    @classmethod
    def of(cls, entry: AuditEntry, account: str | None) -> AuditView:
        return cls(entry.at, account, entry.actor, entry.role, entry.source, entry.action,
                   entry.target, entry.detail)



UNKNOWN_SOURCE = "unknown"


def _cut(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    target: str,
    *,
    account_id: int | None,
    detail: str = "",
) -> AuditEntry:
    """Add an entry to the caller's open transaction (committed with the change itself).

    ``account_id`` is the account the changed object belongs to (``None``: operator-wide).
    """
    entry = AuditEntry(
        at=datetime.now(UTC),
        account_id=account_id,
        actor=_cut(actor.name or actor.role.value, 254),
        role=actor.role.value,
        source=_cut(actor.source or UNKNOWN_SOURCE, 80),
        action=_cut(action, 64),
        target=_cut(target, 320),
        detail=detail,
    )
    session.add(entry)
    return entry
