"""The audit log: who changed what, when, and from where (panel, API or CLI).

Every mutating service method calls :func:`record` inside its own transaction, so a change
and its entry commit (or roll back) together. Entries never hold a password, a token or a
hash of either. Account admins read their account's entries; operators read all of them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailward.db import Database
from mailward.db.models import Account, AuditEntry
from mailward.directory.actor import Actor
from mailward.directory.errors import InvalidInput
from mailward.directory.views import AuditView, Page

MAX_PER_PAGE = 500
MAX_PAGE = 1_000_000
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


def _like(text: str) -> str:
    """``text`` as a LIKE pattern body, its wildcards escaped (escape character ``\\``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _utc(value: datetime) -> datetime:
    """A naive time is taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class AuditService:
    """Reading the audit log, tenant-scoped."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def search(
        self,
        actor: Actor,
        *,
        action: str | None = None,
        who: str | None = None,
        target: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page: int = 1,
        per_page: int = 50,
    ) -> Page[AuditView]:
        """Entries newest first. ``action`` is a prefix (``"address."``), ``who`` a part of
        the actor's login, ``target`` a part of the target; ``since``/``until`` inclusive."""
        if not 1 <= page <= MAX_PAGE:
            raise InvalidInput(f"page must be between 1 and {MAX_PAGE}")
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise InvalidInput(f"per_page must be between 1 and {MAX_PER_PAGE}")
        if since is not None and until is not None and _utc(since) > _utc(until):
            raise InvalidInput("since is after until")

        def narrow(query: Select) -> Select:  # type: ignore[type-arg]
            query = actor.scope(query, AuditEntry.account_id)
            if action and action.strip():
                query = query.where(
                    AuditEntry.action.like(_like(action.strip().lower()) + "%", escape="\\"))
            if who and who.strip():
                query = query.where(func.lower(AuditEntry.actor).like(
                    "%" + _like(who.strip().lower()) + "%", escape="\\"))
            if target and target.strip():
                query = query.where(func.lower(AuditEntry.target).like(
                    "%" + _like(target.strip().lower()) + "%", escape="\\"))
            if since is not None:
                query = query.where(AuditEntry.at >= _utc(since))
            if until is not None:
                query = query.where(AuditEntry.at <= _utc(until))
            return query

        async with self.db.session() as session:
            total = await session.scalar(narrow(select(func.count(AuditEntry.id))))
            rows = await session.execute(
                narrow(select(AuditEntry, Account.name)
                       .outerjoin(Account, Account.id == AuditEntry.account_id))
                .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
                .limit(per_page)
                .offset((page - 1) * per_page)
            )
            items = [AuditView.of(entry, account) for entry, account in rows]
        return Page(items, int(total or 0), page, per_page)
