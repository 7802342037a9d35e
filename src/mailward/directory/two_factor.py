"""Optional two-factor login for panel and API users: time-based one-time codes (RFC 6238,
pyotp), as authenticator apps make them. A code is accepted within one 30-second step of
now, and only once (the step it matched is stored, so a seen code cannot be replayed)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

import pyotp

from mailward.core.actor import Actor
from mailward.core.audit import record
from mailward.core.errors import Conflict, InvalidInput, NotFound
from mailward.db import Database
from mailward.db.models import User

__all__ = ["NewSecret", "TwoFactorService"]

ISSUER = "mailward"
WINDOW = 1  # steps either side of now (clock drift of the phone)


@dataclass(frozen=True, slots=True)
class NewSecret:
    """A secret to enrol: shown once, as text and as the authenticator's URI."""

    secret: str
    uri: str


def _matching_step(secret: str, code: str, after: int | None, now: datetime) -> int | None:
    """The time step within the window whose code is ``code`` (and later than ``after``)."""
    code = "".join(code.split())
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in range(current - WINDOW, current + WINDOW + 1):
        if (after is None or step > after) and hmac.compare_digest(
                totp.generate_otp(step), code):
            return step
    return None


class TwoFactorService:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def new_secret(login: str) -> NewSecret:
        secret = pyotp.random_base32()
        return NewSecret(secret, TwoFactorService.uri(secret, login))

    @staticmethod
    def uri(secret: str, login: str) -> str:
        """The ``otpauth://`` URI authenticator apps read (from a QR code)."""
        return pyotp.TOTP(secret).provisioning_uri(name=login, issuer_name=ISSUER)

    async def enabled(self, user_id: int) -> bool:
        async with self.db.session() as session:
            user = await session.get(User, user_id)
            return user is not None and user.totp_secret is not None

    async def enable(self, actor: Actor, secret: str, code: str, *,
                     now: datetime | None = None) -> None:
        """Turn two-factor login on for ``actor``'s own user, proven by a code of ``secret``."""
        async with self.db.session() as session:
            user = await self._own(session, actor)
            if user.totp_secret is not None:
                raise Conflict("two-factor login is already on")
            try:
                pyotp.TOTP(secret).now()
            except Exception:
                raise InvalidInput("that is not a two-factor secret") from None
            step = _matching_step(secret, code, None, now or datetime.now(UTC))
            if step is None:
                raise InvalidInput("that code does not match: check the phone's clock and "
                                   "enter the code now shown")
            user.totp_secret, user.totp_last_step = secret, step
            record(session, actor, "user.two-factor", user.login, account_id=user.account_id,
                   detail="on")
            await session.commit()

    async def disable(self, actor: Actor, code: str, *, now: datetime | None = None) -> None:
        """Turn it off again, with a current code."""
        async with self.db.session() as session:
            user = await self._own(session, actor)
            if user.totp_secret is None:
                raise Conflict("two-factor login is not on")
            if _matching_step(user.totp_secret, code, user.totp_last_step,
                              now or datetime.now(UTC)) is None:
                raise InvalidInput("that code does not match")
            user.totp_secret = user.totp_last_step = None
            record(session, actor, "user.two-factor", user.login, account_id=user.account_id,
                   detail="off")
            await session.commit()

    async def verify(self, user_id: int, code: str, *, now: datetime | None = None) -> bool:
        """Whether ``code`` is a fresh code of the user's secret (then it is used up)."""
        async with self.db.session() as session:
            user = await session.get(User, user_id)
            if user is None or user.totp_secret is None:
                return False
            step = _matching_step(user.totp_secret, code, user.totp_last_step,
                                  now or datetime.now(UTC))
            if step is None:
                return False
            user.totp_last_step = step
            await session.commit()
            return True

    async def _own(self, session: object, actor: Actor) -> User:
        if actor.user_id is None:
            raise NotFound("no such user")
        user = await session.get(User, actor.user_id)  # type: ignore[attr-defined]
        if user is None:
            raise NotFound("no such user")
        return user
