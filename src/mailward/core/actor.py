"""Who is calling a service: an operator (sees everything) or one customer account."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, TypeVar

from sqlalchemy import Select

from mailward.core.errors import Forbidden
from mailward.db.models import Role

Q = TypeVar("Q", bound=Select[*tuple[Any, ...]])  # any select, whatever its columns


@dataclass(frozen=True, slots=True)
class Actor:
    """The caller: an operator (sees everything), a reseller (the accounts in
    ``account_ids``, those of reseller ``reseller_id``) or one account's admin."""

    role: Role
    account_id: int | None = None
    user_id: int | None = None
    name: str = ""
    source: str = ""  # where the request came from, for the audit log: "web 192.0.2.7", "cli"
    reseller_id: int | None = None
    account_ids: frozenset[int] = frozenset()  # a reseller's accounts when the actor was made

    def via(self, source: str) -> Actor:
        """This actor, acting from ``source``."""
        return replace(self, source=source)

    @classmethod
    def operator(cls, name: str = "operator", user_id: int | None = None) -> Actor:
        return cls(Role.OPERATOR, None, user_id, name)

    @classmethod
    def for_account(cls, account_id: int, name: str = "", user_id: int | None = None) -> Actor:
        return cls(Role.ACCOUNT_ADMIN, account_id, user_id, name)

    @classmethod
    def for_reseller(cls, reseller_id: int, account_ids: frozenset[int], name: str = "",
                     user_id: int | None = None) -> Actor:
        return cls(Role.RESELLER, None, user_id, name, "", reseller_id, account_ids)

    @property
    def is_operator(self) -> bool:
        return self.role is Role.OPERATOR

    @property
    def is_reseller(self) -> bool:
        return self.role is Role.RESELLER

    @property
    def manages_accounts(self) -> bool:
        """Operators and resellers create and look after customer accounts."""
        return self.is_operator or self.is_reseller

    def require_operator(self, doing: str) -> None:
        if not self.is_operator:
            raise Forbidden(f"only an operator may {doing}")

    def require_manager(self, doing: str) -> None:
        """Operators, and resellers (for their own accounts: the caller checks which)."""
        if not self.manages_accounts:
            raise Forbidden(f"only an operator or a reseller may {doing}")

    def scope(self, query: Q, account_column: Any) -> Q:
        """Restrict a query to the caller's accounts (operators are not restricted)."""
        if self.is_operator:
            return query
        if self.is_reseller:
            return query.where(account_column.in_(sorted(self.account_ids)))
        return query.where(account_column == self.account_id)

    def owns(self, account_id: int) -> bool:
        if self.is_reseller:
            return account_id in self.account_ids
        return self.is_operator or account_id == self.account_id
