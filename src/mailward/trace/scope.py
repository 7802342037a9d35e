"""Who may see which trace events: :class:`TraceScope`, and its SQL conditions.

An operator sees everything. An account admin (or a reseller) sees the events of their
domains, a mailbox user those of their own address. A trace is theirs when one of its
events is; its story then shows those events plus the message-level ones (``domain``
None: the connection, MAIL FROM, DATA, refusals of addresses that are not ours), never
another tenant's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, false, func, or_, true

from mailward.db.models import TraceEventRow


@dataclass(frozen=True, slots=True)
class TraceScope:
    """``domains`` None: every domain (an operator); else the domains whose events the
    caller sees. ``mailbox`` set: only the events of that address (a mailbox user)."""

    domains: frozenset[str] | None
    mailbox: str | None = None

    @classmethod
    def everything(cls) -> TraceScope:
        return cls(None)

    @classmethod
    def of_mailbox(cls, address: str) -> TraceScope:
        address = address.strip().lower()
        return cls(frozenset({address.rpartition("@")[2]}), address)

    @property
    def unlimited(self) -> bool:
        return self.domains is None and self.mailbox is None

    @property
    def empty(self) -> bool:
        """Nothing at all is visible (an account without domains)."""
        return self.mailbox is None and self.domains is not None and not self.domains

    def own(self, table: Any = TraceEventRow, *, by_index: bool = True
            ) -> ColumnElement[bool]:
        """Events that are the caller's own (what makes a trace theirs). ``by_index``
        False: a condition no index serves, for a subquery that must find its rows by
        another one (``trace_id``), whatever the planner's guess."""

        def column(name: str) -> Any:
            found = getattr(table, name)
            return found if by_index else func.coalesce(found, "")

        if self.mailbox is not None:
            return column("mailbox") == self.mailbox
        if self.domains is None:
            return true()
        if not self.domains:
            return false()
        return column("domain").in_(sorted(self.domains))

    def visible(self, table: Any = TraceEventRow) -> ColumnElement[bool]:
        """Events the caller may see in a trace that is theirs: their own and the
        message-level ones. Only ever a filter on rows found by another index (a trace's
        events by ``trace_id``): no index serves it, so no planner walks ``domain``'s
        (every message-level event has domain NULL)."""
        if self.unlimited:
            return true()
        return or_(func.coalesce(table.domain, "") == "", self.own(table, by_index=False))

    def owns(self, domain: str | None, mailbox: str | None) -> bool:
        """:meth:`own`, for one event already read."""
        if self.mailbox is not None:
            return mailbox == self.mailbox
        return self.domains is None or domain in self.domains
