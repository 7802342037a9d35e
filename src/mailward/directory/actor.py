"""Who is calling a service: an operator (sees everything) or one customer account."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, TypeVar

from sqlalchemy import Select

from mailward.db.models import Role
from mailward.directory.errors import Forbidden

Q = TypeVar("Q", bound=Select[Any])


@dataclass(frozen=True, slots=True)
class Actor:
    """The caller. ``account_id`` is ``None`` only for operators."""

    role: Role
    account_id: int | None = None
    user_id: int | None = None
    name: str = ""
    source: str = ""  # where the request came from, for the audit log: "web 192.0.2.7", "cli"

    def via(self, source: str) -> Actor:
        """This actor, acting from ``source``."""
        return replace(self, source=source)

    @classmethod
    def operator(cls, name: str = "operator", user_id: int | None = None) -> Actor:
        return cls(Role.OPERATOR, None, user_id, name)

    @classmethod
    def for_account(cls, account_id: int, name: str = "", user_id: int | None = None) -> Actor:
        return cls(Role.ACCOUNT_ADMIN, account_id, user_id, name)

    @property
    def is_operator(self) -> bool:
        return self.role is Role.OPERATOR

    def require_operator(self, doing: str) -> None:
        if not self.is_operator:
            raise Forbidden(f"only an operator may {doing}")

    def scope(self, query: Q, account_column: Any) -> Q:
        """Restrict a query to the caller's account (operators are not restricted)."""
        if self.is_operator:
            return query
        return query.where(account_column == self.account_id)

    def owns(self, account_id: int) -> bool:
        return self.is_operator or account_id == self.account_id
