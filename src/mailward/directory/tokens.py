"""API tokens: bearer secrets of panel/API users; only their SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from mailward.core.actor import Actor
from mailward.core.audit import record
from mailward.core.errors import InvalidInput, NotFound
from mailward.db import Database
from mailward.db.models import ApiToken, User
from mailward.directory.accounts import actor_of
from mailward.directory.views import TokenInfo, TokenView

TOKEN_PREFIX = "mw_"
MAX_DAYS = 3650  # the longest lifetime a token can be given (none: it never expires)
USE_RESOLUTION = timedelta(minutes=1)
"""``last_used_at`` is written at most this often per token (one write per request is waste)."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, actor: Actor, login: str, name: str = "api",
                     expires_days: int | None = None) -> TokenView:
        """Create a token for user ``login``; a user may only mint tokens for itself. With
        ``expires_days`` it stops working that many days from now."""
        if expires_days is not None and not 1 <= expires_days <= MAX_DAYS:
            raise InvalidInput(f"a token can live 1 to {MAX_DAYS} days")
        expires = datetime.now(UTC) + timedelta(days=expires_days) if expires_days else None
        async with self.db.session() as session:
            user = await session.scalar(select(User).where(User.login == login.strip().lower()))
            if user is None or not (actor.is_operator or actor.user_id == user.id):
                raise NotFound(f"no user {login!r}")
            token = TOKEN_PREFIX + secrets.token_urlsafe(32)
            row = ApiToken(
                user_id=user.id, name=name.strip()[:100] or "api", token_hash=hash_token(token),
                expires_at=expires,
            )
            session.add(row)
            await session.flush()
            until = f", until {expires:%Y-%m-%d %H:%M} UTC" if expires else ""
            record(session, actor, "token.create", user.login, account_id=user.account_id,
                   detail=f"token {row.id} ({row.name}){until}")
            await session.commit()
            return TokenView(row.id, row.name, user.login, token, expires)

    async def list(self, actor: Actor, login: str | None = None) -> list[TokenInfo]:
        """Tokens the caller may see: its own, or (operator) everyone's or ``login``'s."""
        query = select(ApiToken, User.login).join(User).order_by(ApiToken.id)
        if not actor.is_operator:
            query = query.where(ApiToken.user_id == actor.user_id)
        if login is not None:
            query = query.where(User.login == login.strip().lower())
        async with self.db.session() as session:
            rows = await session.execute(query)
            return [
                TokenInfo(row.id, row.name, owner, row.created_at, row.last_used_at,
                          row.expires_at)
                for row, owner in rows
            ]

    async def revoke(self, actor: Actor, token_id: int) -> None:
        """Delete a token: the caller's own, or any (operator)."""
        async with self.db.session() as session:
            row = await session.get(ApiToken, token_id)
            if row is None or not (actor.is_operator or row.user_id == actor.user_id):
                raise NotFound(f"no token {token_id}")
            owner = await session.get(User, row.user_id)
            record(session, actor, "token.revoke", owner.login if owner else f"user {row.user_id}",
                   account_id=owner.account_id if owner else None,
                   detail=f"token {row.id} ({row.name})")
            await session.delete(row)
            await session.commit()

    async def actor_for(self, token: str) -> Actor | None:
        """Who a bearer token belongs to, or ``None``."""
        async with self.db.session() as session:
            found = (
                await session.execute(
                    select(ApiToken, User)
                    .join(User, User.id == ApiToken.user_id)
                    .where(ApiToken.token_hash == hash_token(token))
                )
            ).first()
            if found is None:
                return None
            api_token, user = found
            now = datetime.now(UTC)
            if api_token.expires_at is not None and api_token.expires_at <= now:
                return None  # expired: 401, as a revoked one
            last = api_token.last_used_at
            if last is None or now - last > USE_RESOLUTION:
                api_token.last_used_at = now
                await session.commit()
            return await actor_of(session, user)
