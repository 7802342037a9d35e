"""What a mailbox user may do for themselves in the panel (logged in with their address and
mailbox password): see their mailbox and quota, change their own password (giving the
current one). Nothing else of the account is reachable this way."""

from __future__ import annotations

from sqlalchemy import select

from mailward.core.actor import Actor
from mailward.core.audit import record
from mailward.core.errors import InvalidInput, NotFound, TooManyAttempts
from mailward.db import Database
from mailward.db.models import Address
from mailward.directory.auth_limit import AuthLimiter
from mailward.directory.mail_login import CAN_LOG_IN
from mailward.directory.passwords import Passwords, fingerprint
from mailward.directory.views import AddressView

__all__ = ["MailboxSelfService"]


class MailboxSelfService:
    def __init__(self, db: Database, passwords: Passwords, limiter: AuthLimiter) -> None:
        self.db = db
        self.passwords = passwords
        self.limiter = limiter  # wrong current passwords count as failed logins

    async def view(self, mailbox: str, credential: str | None = None) -> AddressView:
        """The mailbox; ``NotFound`` also when its password changed since the session's
        ``credential`` was taken."""
        async with self.db.session() as session:
            address = await self._mailbox(session, mailbox)
            if credential is not None and credential != fingerprint(address.password_hash):
                raise NotFound("the password of this mailbox has changed")
            return AddressView.of(address)

    async def credential_of(self, mailbox: str) -> str:
        """The fingerprint of the mailbox's current password, for a new panel session."""
        async with self.db.session() as session:
            return fingerprint((await self._mailbox(session, mailbox)).password_hash)

    async def actor(self, mailbox: str, source: str) -> Actor:
        """An actor inside the mailbox's account, for the services a mailbox user may use
        on their own mail (the caller keeps them to that mailbox)."""
        async with self.db.session() as session:
            address = await self._mailbox(session, mailbox)
            return Actor.for_account(address.account_id, address.email).via(
                f"{source} (mailbox user)")

    async def change_password(self, mailbox: str, current: str, password: str, repeat: str,
                              *, source: str) -> None:
        """Set a new password after checking the current one (a stolen session alone
        cannot take the mailbox over)."""
        key = f"mailbox:{mailbox}"
        wait = await self.limiter.retry_after(key)
        if wait:
            raise TooManyAttempts(f"too many wrong passwords; try again in {wait} s")
        async with self.db.session() as session:
            address = await self._mailbox(session, mailbox)
            if not address.password_hash or not await self.passwords.verify_async(
                    address.password_hash, current):
                await self.limiter.fail(key)  # a stolen session cannot guess at leisure
                raise InvalidInput("the current password is not right")
            self.passwords.check_new(password, repeat, address=address.email)
            address.password_hash = await self.passwords.hash_async(password)
            # the audit log names the mailbox user; this actor exists only for the entry
            who = Actor.for_account(address.account_id, address.email).via(
                f"{source} (mailbox user)")
            record(session, who, "address.set-password", address.email,
                   account_id=address.account_id, detail="by the mailbox user")
            await session.commit()

    @staticmethod
    async def _mailbox(session: object, mailbox: str) -> Address:
        address = await session.scalar(  # type: ignore[attr-defined]
            select(Address).where(Address.email == mailbox))
        if address is None or address.kind not in CAN_LOG_IN:
            raise NotFound("no such mailbox")
        return address
