"""Reading the audit log (:mod:`mailward.core.audit` writes it): account admins read their
account's entries, operators all of them, filtered and paged."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from mailward.core.actor import Actor, Q
from mailward.core.audit import AuditView
from mailward.core.errors import InvalidInput
from mailward.core.paging import Page
from mailward.db import Database
from mailward.db.models import Account, AuditEntry

MAX_PER_PAGE = 500
MAX_PAGE = 1_000_000


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

        def narrow(query: Q) -> Q:
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
