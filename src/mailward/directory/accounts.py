"""Customer accounts, panel/API users and API tokens."""

from __future__ import annotations

import secrets

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mailward.core.actor import Actor
from mailward.core.audit import record
from mailward.core.errors import Conflict, InvalidInput, NotFound
from mailward.db import Database
from mailward.db.models import Account, Domain, Reseller, Role, User
from mailward.directory.passwords import Passwords, fingerprint
from mailward.directory.users import check_login_domain
from mailward.directory.views import AccountView, UserView


def _account_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise InvalidInput("account name is empty")
    if len(cleaned) > 100:
        raise InvalidInput("account name is longer than 100 characters")
    if "/" in cleaned or not cleaned.isprintable():
        raise InvalidInput("account name may not contain '/' or control characters")
    return cleaned


class AccountService:
    def __init__(self, db: Database, passwords: Passwords) -> None:
        self.db = db
        self.passwords = passwords

    async def create(self, actor: Actor, name: str, *, reseller: str | None = None
                     ) -> AccountView:
        """A new customer account; a reseller's own, or (operators) ``reseller``'s."""
        actor.require_manager("create accounts")
        async with self.db.session() as session:
            reseller_id = actor.reseller_id
            if reseller is not None:
                actor.require_operator("give accounts to resellers")
                found = await session.scalar(select(Reseller).where(
                    Reseller.name == _account_name(reseller)))
                if found is None:
                    raise NotFound(f"no reseller {reseller!r}")
                reseller_id = found.id
            account = Account(name=_account_name(name), reseller_id=reseller_id)
            session.add(account)
            detail = f"reseller #{reseller_id}" if reseller_id is not None else ""
            record(session, actor, "account.create", account.name, account_id=None,
                   detail=detail)
            try:
                await session.commit()
            except IntegrityError:
                raise Conflict(f"account {name!r} already exists") from None
            return AccountView.of(account)

    async def list(self, actor: Actor) -> list[AccountView]:
        async with self.db.session() as session:
            query = actor.scope(select(Account).order_by(Account.name), Account.id)
            return [AccountView.of(a) for a in await session.scalars(query)]

    async def get(self, actor: Actor, name: str) -> AccountView:
        async with self.db.session() as session:
            query = actor.scope(
                select(Account).where(Account.name == _account_name(name)), Account.id
            )
            account = await session.scalar(query)
            if account is None:
                raise NotFound(f"no account {name!r}")
            return AccountView.of(account)

    async def actor_for(self, name: str) -> Actor:
        """An actor acting as account ``name`` (the CLI's ``--account``)."""
        account = await self.get(Actor.operator(), name)
        return Actor.for_account(account.id, account.name)

    async def delete(self, actor: Actor, name: str) -> None:
        """Delete an account that owns no domains (delete its domains first)."""
        actor.require_manager("delete accounts")
        async with self.db.session() as session:
            account = await session.scalar(actor.scope(
                select(Account).where(Account.name == _account_name(name)), Account.id))
            if account is None:
                raise NotFound(f"no account {name!r}")
            domains = await session.scalar(
                select(func.count()).select_from(Domain).where(Domain.account_id == account.id)
            )
            if domains:
                raise Conflict(f"account {name!r} still owns {domains} domain(s)")
            record(session, actor, "account.delete", account.name, account_id=None)
            await session.delete(account)
            await session.commit()

    # -- users ---------------------------------------------------------------------------

    async def create_user(
        self,
        actor: Actor,
        login: str,
        password: str,
        *,
        account: str | None = None,
        reseller: str | None = None,
        repeat: str | None = None,
    ) -> UserView:
        """Create an operator (neither ``account`` nor ``reseller``), a reseller user of
        ``reseller`` (operators only) or an account admin of ``account``."""
        login = login.strip().lower()
        if not login or len(login) > 254 or any(c.isspace() for c in login):
            raise InvalidInput("login must be 1-254 characters without spaces")
        async with self.db.session() as session:
            account_id, found_name, reseller_id = None, None, None
            if reseller is not None:
                actor.require_operator("create reseller users")
                found_reseller = await session.scalar(select(Reseller).where(
                    Reseller.name == _account_name(reseller)))
                if found_reseller is None:
                    raise NotFound(f"no reseller {reseller!r}")
                reseller_id, found_name, role = found_reseller.id, found_reseller.name, \
                    Role.RESELLER
            elif account is None:
                actor.require_operator("create operator users")
                role = Role.OPERATOR
            else:
                query = actor.scope(
                    select(Account).where(Account.name == _account_name(account)), Account.id
                )
                found = await session.scalar(query)
                if found is None:
                    raise NotFound(f"no account {account!r}")
                account_id, found_name, role = found.id, found.name, Role.ACCOUNT_ADMIN
            await check_login_domain(session, actor, login, account_id)
            self.passwords.check_new(password, repeat, address=login)
            user = User(
                login=login,
                password_hash=await self.passwords.hash_async(password),
                role=role,
                account_id=account_id,
                reseller_id=reseller_id,
            )
            session.add(user)
            record(session, actor, "user.create", login, account_id=account_id,
                   detail=role.value if found_name is None else f"{role.value} of {found_name}")
            try:
                await session.commit()
            except IntegrityError:
                raise Conflict(f"user {login!r} already exists") from None
            return UserView(user.id, user.login, user.role.value, account)

    async def actor_by_id(self, user_id: int, credential: str | None = None) -> Actor | None:
        """The actor of user ``user_id`` (a panel session's user), if it still exists and,
        given the session's ``credential``, its password has not changed since."""
        async with self.db.session() as session:
            user = await session.get(User, user_id)
            if user is None or (credential is not None
                                and credential != fingerprint(user.password_hash)):
                return None
            return await actor_of(session, user)

    async def credential_of(self, user_id: int) -> str:
        """The fingerprint of the user's current password, for a new panel session."""
        async with self.db.session() as session:
            return fingerprint(await session.scalar(
                select(User.password_hash).where(User.id == user_id)))

    async def count_operators(self) -> int:
        async with self.db.session() as session:
            query = select(func.count()).select_from(User).where(User.role == Role.OPERATOR)
            return int(await session.scalar(query) or 0)

    async def authenticate(self, login: str, password: str) -> Actor | None:
        """The actor for a login and password, or ``None`` (same cost either way)."""
        async with self.db.session() as session:
            user = await session.scalar(select(User).where(User.login == login.strip().lower()))
            if user is None:
                await self.passwords.verify_async(DUMMY_HASH.get(self.passwords), password)
                return None
            if not await self.passwords.verify_async(user.password_hash, password):
                return None
            return await actor_of(session, user)


async def actor_of(session: AsyncSession, user: User) -> Actor:
    """The actor of ``user``; a reseller's with the accounts it has now."""
    if user.role is Role.OPERATOR:
        return Actor.operator(user.login, user.id)
    if user.role is Role.RESELLER:
        assert user.reseller_id is not None
        ids = await session.scalars(select(Account.id).where(
            Account.reseller_id == user.reseller_id))
        return Actor.for_reseller(user.reseller_id, frozenset(ids), user.login, user.id)
    assert user.account_id is not None
    return Actor.for_account(user.account_id, user.login, user.id)


class _DummyHash:
    """A real hash to verify against for unknown logins, so timing does not leak them."""

    _value: str | None = None

    def get(self, passwords: Passwords) -> str:
        if self._value is None:
            self._value = passwords.hash(secrets.token_hex(16))
        return self._value


DUMMY_HASH = _DummyHash()
