"""Panel/API users after they were created: list them, change or reset a password, lift a
login lock, delete one.

Who may do what: every user changes their own password (giving the current one); an
operator manages every user; a reseller the admins of its accounts; an account admin the
admins of its own account. Operator and reseller users are managed by operators only. Every
change is in the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailward.core.actor import Actor
from mailward.core.audit import record
from mailward.core.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    TooManyAttempts,
)
from mailward.db import Database
from mailward.db.models import Account, ApiToken, Domain, Role, User
from mailward.directory.auth_limit import AuthLimiter
from mailward.directory.passwords import Passwords
from mailward.directory.views import UserView

__all__ = ["PasswordChanged", "UserLockView", "UserService", "check_login_domain",
           "login_key"]


def login_key(login: str) -> str:
    """The limiter key that failed panel/API logins of ``login`` count against."""
    return f"login:{login.strip().lower()[:254]}"


@dataclass(frozen=True, slots=True)
class UserLockView:
    """Whether failed panel/API logins lock a user (seconds left; 0: not locked)."""

    login: str
    locked_seconds: int


@dataclass(frozen=True, slots=True)
class PasswordChanged:
    """A user after a password change, and how many of their API tokens it revoked."""

    id: int
    login: str
    role: str
    account: str | None
    tokens_revoked: int = 0


async def check_login_domain(session: AsyncSession, actor: Actor, login: str,
                             account_id: int | None) -> None:
    """A login that is an address in a domain we serve must be in a domain of the user's
    own account (``account_id``): an admin cannot pass off a user as another tenant's
    address. Operators may give any login; logins outside our domains are anyone's."""
    if actor.is_operator:
        return
    _, at, domain = login.strip().lower().rpartition("@")
    if not at or not domain:
        return
    owner = await session.scalar(select(Domain.account_id).where(Domain.name == domain))
    if owner is not None and owner != account_id:
        raise Forbidden(f"{domain} belongs to another account: a login in it must be one "
                        "of that account's users")


def _view(user: User, account: str | None) -> UserView:
    return UserView(user.id, user.login, user.role.value, account)


_WITH_ACCOUNT = select(User, Account.name).outerjoin(Account, User.account_id == Account.id)


class UserService:
    def __init__(self, db: Database, passwords: Passwords, limiter: AuthLimiter) -> None:
        self.db = db
        self.passwords = passwords
        self.limiter = limiter

    async def list(self, actor: Actor, account: str | None = None) -> list[UserView]:
        """The users the actor manages (``account``: only that account's admins)."""
        query = _WITH_ACCOUNT.order_by(User.login)
        if not actor.is_operator:
            query = actor.scope(query.where(User.account_id.is_not(None)), User.account_id)
        if account is not None:
            query = query.where(Account.name == " ".join(account.split()))
        async with self.db.session() as session:
            return [_view(user, name) for user, name in await session.execute(query)]

    async def set_password(self, actor: Actor, login: str, password: str, *,
                           repeat: str | None = None, current: str | None = None,
                           revoke_tokens: bool | None = None) -> PasswordChanged:
        """A new password: one's own (``current`` must be right), or a managed user's (a
        reset). A reset revokes the user's API tokens unless ``revoke_tokens`` is false
        (whoever knew the old password may have minted some); one's own change keeps
        them unless it is true."""
        async with self.db.session() as session:
            user, account = await self._find(session, actor, login, own_ok=True)
            own = user.id == actor.user_id
            if own:
                await self._check_current(user, current)
            self.passwords.check_new(password, repeat, address=user.login)
            user.password_hash = await self.passwords.hash_async(password)
            revoked = 0
            if revoke_tokens if revoke_tokens is not None else not own:
                result = cast(CursorResult[Any], await session.execute(  # DML: has rowcount
                    delete(ApiToken).where(ApiToken.user_id == user.id)))
                revoked = int(result.rowcount or 0)
            record(session, actor, "user.set-password", user.login,
                   account_id=user.account_id, detail=f"{revoked} API token(s) revoked")
            await session.commit()
            return PasswordChanged(user.id, user.login, user.role.value, account, revoked)

    async def _check_current(self, user: User, current: str | None) -> None:
        """One's own current password; wrong ones count against the login's limit (a
        stolen session or token cannot guess it at leisure)."""
        key = login_key(user.login)
        wait = await self.limiter.retry_after(key)
        if wait:
            raise TooManyAttempts(f"too many wrong passwords; try again in {wait} s")
        if current is None or not await self.passwords.verify_async(user.password_hash,
                                                                    current):
            await self.limiter.fail(key)
            raise InvalidInput("the current password is wrong")

    async def lock_state(self, actor: Actor, login: str) -> UserLockView:
        async with self.db.session() as session:
            user, _ = await self._find(session, actor, login)
        return UserLockView(user.login, await self.limiter.retry_after(login_key(user.login)))

    async def unlock(self, actor: Actor, login: str) -> UserLockView:
        """Forget the user's failed logins (on every node), and what those attempts
        counted against the client address."""
        async with self.db.session() as session:
            user, _ = await self._find(session, actor, login)
            key = login_key(user.login)
            record(session, actor, "user.unlock-login", user.login, account_id=user.account_id,
                   detail=f"was locked for {await self.limiter.retry_after(key)} s")
            await session.commit()
        await self.limiter.clear(key)
        return UserLockView(user.login, 0)

    async def delete(self, actor: Actor, login: str) -> UserView:
        """Delete a user (their API tokens go with them; their panel sessions end)."""
        async with self.db.session() as session:
            user, account = await self._find(session, actor, login)
            if user.id == actor.user_id:
                raise Conflict("you cannot delete your own login")
            if user.role is Role.OPERATOR and await session.scalar(
                    select(func.count()).select_from(User).where(
                        User.role == Role.OPERATOR)) == 1:
                raise Conflict("the last operator cannot be deleted")
            view = _view(user, account)
            record(session, actor, "user.delete", user.login, account_id=user.account_id,
                   detail=user.role.value)
            await session.delete(user)
            await session.commit()
            return view

    async def _find(self, session: AsyncSession, actor: Actor, login: str, *,
                    own_ok: bool = False) -> tuple[User, str | None]:
        """The user ``login`` (and their account's name) if the actor manages them (or it
        is the actor, ``own_ok``); a user of someone else's account is not found."""
        row = (await session.execute(_WITH_ACCOUNT.where(
            User.login == login.strip().lower()))).first()
        if row is None:
            raise NotFound(f"no user {login!r}")
        user, account = row
        if (own_ok and user.id == actor.user_id) or actor.is_operator:
            return user, account
        if user.account_id is None or not actor.owns(user.account_id):
            raise NotFound(f"no user {login!r}")  # operators' and resellers' logins too
        return user, account
