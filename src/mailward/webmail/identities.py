"""A mailbox's sender identities: the addresses it may send as (itself, or a forwarder
that delivers to it: ``MailLogin.may_send_as``), each with a display name, a Reply-To and
signatures. One is the default; with none saved the mailbox itself is.

Signatures are stored as given (the HTML one is sanitised where it is shown or sent).
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mailward.app import Services
from mailward.core.errors import InvalidInput, NotFound
from mailward.core.normalize import normalize_address
from mailward.db.models import WebmailIdentity

__all__ = ["Identities", "Identity", "IdentityIn"]

MAX_IDENTITIES = 50
NAME_CHARS = 200
SIGNATURE_BYTES = 10 * 1024


@dataclass(frozen=True, slots=True)
class Identity:
    id: int | None  # None: the mailbox itself (nothing saved)
    address: str
    name: str
    reply_to: str | None
    signature_text: str
    signature_html: str | None
    default: bool


@dataclass(frozen=True, slots=True)
class IdentityIn:
    address: str
    name: str = ""
    reply_to: str | None = None
    signature_text: str = ""
    signature_html: str | None = None
    default: bool = False


class Identities:
    def __init__(self, services: Services) -> None:
        self.db = services.db
        self.mail_login = services.mail_login

    async def list(self, mailbox: str) -> list[Identity]:
        """The saved identities, the default first, then in the order they were made."""
        async with self.db.session() as session:
            return [_view(row) for row in await _rows(session, mailbox)]

    async def get(self, mailbox: str, identity_id: int) -> Identity:
        async with self.db.session() as session:
            return _view(await _row(session, mailbox, identity_id))

    async def save(self, mailbox: str, data: IdentityIn,
                   id: int | None = None) -> Identity:
        """Add an identity (``id`` None) or change one; ``default`` makes it the default."""
        try:
            address = normalize_address(data.address)
        except InvalidInput:
            raise InvalidInput(f"{data.address.strip()!r} is not a valid address") from None
        if not await self.mail_login.may_send_as(mailbox, address):
            raise InvalidInput(f"this mailbox may not send as {address}")
        name = " ".join(data.name.split())
        if len(name) > NAME_CHARS:
            raise InvalidInput(f"the name is longer than {NAME_CHARS} characters")
        reply_to = normalize_address(data.reply_to) if data.reply_to and \
            data.reply_to.strip() else None
        text = data.signature_text.replace("\r\n", "\n").replace("\r", "\n")
        html = data.signature_html if data.signature_html and \
            data.signature_html.strip() else None
        for what, value in (("text", text), ("HTML", html or "")):
            if len(value.encode()) > SIGNATURE_BYTES:
                raise InvalidInput(f"the {what} signature is larger than "
                                   f"{SIGNATURE_BYTES // 1024} KB")
        async with self.db.session() as session:
            if id is None:
                count = await session.scalar(select(func.count()).select_from(
                    WebmailIdentity).where(WebmailIdentity.mailbox == mailbox)) or 0
                if count >= MAX_IDENTITIES:
                    raise InvalidInput(f"at most {MAX_IDENTITIES} identities")
                row = WebmailIdentity(mailbox=mailbox, is_default=False)
                session.add(row)
            else:
                row = await _row(session, mailbox, id)
            row.address, row.name, row.reply_to = address, name, reply_to
            row.signature_text, row.signature_html = text, html
            try:
                await session.flush()
            except IntegrityError:
                raise NotFound("no such mailbox") from None
            if data.default:
                await session.execute(
                    update(WebmailIdentity)
                    .where(WebmailIdentity.mailbox == mailbox, WebmailIdentity.id != row.id)
                    .values(is_default=False).execution_options(synchronize_session=False))
                row.is_default = True
            elif row.is_default:  # no longer the default: the oldest other one is
                row.is_default = False
            await _settle(session, mailbox, row.id)
            await session.commit()
            await session.refresh(row)
            return _view(row)

    async def delete(self, mailbox: str, identity_id: int) -> None:
        async with self.db.session() as session:
            await session.delete(await _row(session, mailbox, identity_id))
            await session.flush()
            await _settle(session, mailbox, None)
            await session.commit()

    async def addresses(self, mailbox: str) -> builtins.list[str]:
        """What an identity of ``mailbox`` may use: itself and the forwarders to it."""
        return await self.mail_login.sender_addresses(mailbox)

    async def default(self, mailbox: str) -> Identity:
        """The default identity; the mailbox itself when none saved may still send."""
        for identity in await self.list(mailbox):
            if await self.mail_login.may_send_as(mailbox, identity.address):
                return identity
        return Identity(None, mailbox, "", None, "", None, True)


async def _rows(session: AsyncSession, mailbox: str) -> list[WebmailIdentity]:
    return list(await session.scalars(
        select(WebmailIdentity).where(WebmailIdentity.mailbox == mailbox)
        .order_by(WebmailIdentity.is_default.desc(), WebmailIdentity.id)))


async def _row(session: AsyncSession, mailbox: str, identity_id: int) -> WebmailIdentity:
    row = await session.scalar(select(WebmailIdentity).where(
        WebmailIdentity.mailbox == mailbox, WebmailIdentity.id == identity_id))
    if row is None:
        raise NotFound("no such identity")
    return row


async def _settle(session: AsyncSession, mailbox: str, fallback: int | None) -> None:
    """Exactly one default: with none, the oldest identity other than ``fallback`` (the
    one just turned off) becomes it, else ``fallback`` itself."""
    rows = sorted(await _rows(session, mailbox), key=lambda r: r.id)
    if not rows or any(r.is_default for r in rows):
        return
    others = [r for r in rows if r.id != fallback]
    (others or rows)[0].is_default = True
    await session.flush()


def _view(row: WebmailIdentity) -> Identity:
    return Identity(row.id, row.address, row.name, row.reply_to, row.signature_text,
                    row.signature_html, row.is_default)
