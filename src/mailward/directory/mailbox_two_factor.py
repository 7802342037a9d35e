"""Optional two-factor login for mailboxes (the webmail login): the same time-based codes
and rules as the panel users' (:mod:`mailward.directory.two_factor`): a code is accepted
within one 30-second step of now, and only once. The webmail asks ``verify`` after the
mailbox password matched, and counts wrong codes itself.

A code is used up in one conditional UPDATE (the step only moves forward), so two logins
racing with the same code cannot both pass. The row goes with the address.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pyotp
from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mailward.core.actor import Actor
from mailward.core.audit import record
from mailward.core.errors import Conflict, InvalidInput, NotFound
from mailward.core.normalize import normalize_address
from mailward.db import Database
from mailward.db.models import Address, MailboxTotp
from mailward.directory.addresses import AddressService
from mailward.directory.mail_login import CAN_LOG_IN
from mailward.directory.two_factor import NewSecret, TwoFactorService, _matching_step

__all__ = ["MailboxTwoFactor", "NewSecret"]


class MailboxTwoFactor:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def new_secret(login: str) -> NewSecret:
        """A fresh secret for ``login`` (the mailbox address), to show once."""
        return TwoFactorService.new_secret(login)

    @staticmethod
    def uri(secret: str, login: str) -> str:
        """The ``otpauth://`` URI authenticator apps read (from a QR code)."""
        return TwoFactorService.uri(secret, login)

    async def enabled(self, mailbox: str) -> bool:
        async with self.db.session() as session:
            return await session.get(MailboxTotp, _key(mailbox)) is not None

    async def enable(self, mailbox: str, secret: str, code: str, *, source: str = "webmail",
                     now: datetime | None = None) -> None:
        """Turn two-factor login on for ``mailbox``, proven by a current code of ``secret``."""
        mailbox = _key(mailbox)
        try:
            pyotp.TOTP(secret).now()
        except Exception:
            raise InvalidInput("that is not a two-factor secret") from None
        if len(secret) > 64:
            raise InvalidInput("that is not a two-factor secret")
        step = _matching_step(secret, code, None, now or datetime.now(UTC))
        if step is None:
            raise InvalidInput("that code does not match: check the phone's clock and "
                               "enter the code now shown")
        async with self.db.session() as session:
            address = await _mailbox(session, mailbox)
            if await session.get(MailboxTotp, mailbox) is not None:
                raise Conflict("two-factor login is already on")
            session.add(MailboxTotp(mailbox=mailbox, secret=secret, last_step=step))
            record(session, _actor(address, source), "address.two-factor", mailbox,
                   account_id=address.account_id, detail="on, by the mailbox user")
            try:
                await session.commit()
            except IntegrityError:  # turned on by a concurrent request
                raise Conflict("two-factor login is already on") from None

    async def disable(self, mailbox: str, code: str, *, source: str = "webmail",
                      now: datetime | None = None) -> None:
        """Turn it off again, with a fresh code."""
        mailbox = _key(mailbox)
        async with self.db.session() as session:
            address = await _mailbox(session, mailbox)
            row = await session.get(MailboxTotp, mailbox)
            if row is None:
                raise Conflict("two-factor login is not on")
            if _matching_step(row.secret, code, row.last_step,
                              now or datetime.now(UTC)) is None:
                raise InvalidInput("that code does not match")
            await session.delete(row)
            record(session, _actor(address, source), "address.two-factor", mailbox,
                   account_id=address.account_id, detail="off, by the mailbox user")
            await session.commit()

    async def verify(self, mailbox: str, code: str, *, now: datetime | None = None) -> bool:
        """Whether ``code`` is a fresh code of the mailbox's secret (then it is used up).
        ``False`` too when two-factor login is off: ask ``enabled`` first."""
        mailbox = _key(mailbox)
        async with self.db.session() as session:
            row = await session.get(MailboxTotp, mailbox)
            if row is None:
                return False
            step = _matching_step(row.secret, code, row.last_step, now or datetime.now(UTC))
            if step is None:
                return False
            used = cast(CursorResult[Any], await session.execute(
                update(MailboxTotp)
                .where(MailboxTotp.mailbox == mailbox, MailboxTotp.secret == row.secret,
                       (MailboxTotp.last_step.is_(None)) | (MailboxTotp.last_step < step))
                .values(last_step=step)))
            await session.commit()
            return bool(used.rowcount)

    async def reset(self, actor: Actor, addresses: AddressService, email: str) -> bool:
        """Turn a mailbox's two-factor login off for its account admin (a lost phone);
        tenant-checked via ``addresses.get``. Returns whether it was on."""
        view = await addresses.get(actor, email)
        async with self.db.session() as session:
            gone = cast(CursorResult[Any], await session.execute(
                delete(MailboxTotp).where(MailboxTotp.mailbox == view.email)))
            if not gone.rowcount:
                return False
            account_id = await session.scalar(
                select(Address.account_id).where(Address.email == view.email))
            record(session, actor, "address.two-factor", view.email, account_id=account_id,
                   detail="off, reset by an admin")
            await session.commit()
            return True


def _key(mailbox: str) -> str:
    try:
        return normalize_address(mailbox)
    except InvalidInput:
        raise NotFound("no such mailbox") from None


async def _mailbox(session: AsyncSession, mailbox: str) -> Address:
    address = await session.scalar(select(Address).where(Address.email == mailbox))
    if address is None or address.kind not in CAN_LOG_IN:
        raise NotFound("no such mailbox")
    return address


def _actor(address: Address, source: str) -> Actor:
    """The mailbox user, for the audit entry only."""
    return Actor.for_account(address.account_id, address.email).via(
        f"{source} (mailbox user)")
