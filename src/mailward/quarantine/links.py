"""Quarantine release links: signed one-click tokens, and releasing through them.

A link carries ``{web_url}/quarantine/release?t=TOKEN``; the token is the entry id and an
expiry, signed with HMAC-SHA256 under the web secret (:func:`link_secret`: the delivery
and web nodes must share it, as ``MAILWARD_WEB_SECRET`` on each). A link expires with its
message or after :data:`LINK_DAYS` days, whichever is first, and releases once: release
claims the entry in one conditional UPDATE (:meth:`QuarantineService.release`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from hashlib import sha256

from sqlalchemy import select

from mailward.config import Settings
from mailward.config.secret import web_secret
from mailward.core.actor import Actor
from mailward.core.errors import Conflict, InvalidInput, NotFound
from mailward.db.models import QuarantinedMessage, QuarantineEntry, utcnow
from mailward.quarantine.service import HELD, QuarantineService, QuarantineView, Released

__all__ = ["AlreadyReleased", "ExpiredToken", "InvalidToken", "LinkTarget", "ReleaseLinks",
           "check_token", "link_expiry", "link_secret", "release_token"]

LINK_DAYS = 7  # a release link works this long at most
_VERSION = 1
_PAYLOAD = struct.Struct(">BQQ")  # version, entry id, expiry (Unix seconds)
_CONTEXT = b"mailward quarantine release\0"  # the web secret also signs CSRF tokens
_MAC_SIZE = sha256().digest_size
_MAX_TOKEN = 128


class InvalidToken(InvalidInput):
    """A release link that is malformed or not signed by us."""


class ExpiredToken(InvalidToken):
    """A release link past its expiry."""


class AlreadyReleased(Conflict):
    """The link's message was released before (links work once)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def release_token(secret: bytes, entry_id: int, expires: datetime) -> str:
    """A URL-safe token that releases quarantine entry ``entry_id`` until ``expires``."""
    payload = _PAYLOAD.pack(_VERSION, entry_id, int(expires.timestamp()))
    return _b64(payload + hmac.new(secret, _CONTEXT + payload, sha256).digest())


def check_token(secret: bytes, token: str, now: datetime) -> int:
    """The entry id ``token`` releases; :class:`InvalidToken` if it is malformed or its
    signature is wrong, :class:`ExpiredToken` if it has expired."""
    if not token or len(token) > _MAX_TOKEN or not token.isascii():
        raise InvalidToken("the release link is malformed (copy the whole link)")
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise InvalidToken("the release link is malformed (copy the whole link)") from None
    if len(raw) != _PAYLOAD.size + _MAC_SIZE:
        raise InvalidToken("the release link is malformed (copy the whole link)")
    payload, mac = raw[:_PAYLOAD.size], raw[_PAYLOAD.size:]
    if not hmac.compare_digest(mac, hmac.new(secret, _CONTEXT + payload, sha256).digest()):
        raise InvalidToken("the release link's signature is wrong (altered, or not ours)")
    version, entry_id, expires = _PAYLOAD.unpack(payload)
    if version != _VERSION:
        raise InvalidToken("the release link is of an unknown version")
    if now.timestamp() >= expires:
        when = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%d %H:%M UTC")
        raise ExpiredToken(f"the release link expired on {when}")
    return int(entry_id)


def link_expiry(message_expires_at: datetime, now: datetime) -> datetime:
    """When a link made ``now`` expires: with its message, or after LINK_DAYS days."""
    return min(message_expires_at, now + timedelta(days=LINK_DAYS))


def link_secret(settings: Settings) -> bytes:
    """The key release links are signed with: the web secret (:mod:`mailward.config.secret`)."""
    return web_secret(settings).encode()


@dataclass(frozen=True, slots=True)
class LinkTarget:
    """The entry a valid release link names, and the account it belongs to."""

    entry: QuarantineView
    account_id: int


class ReleaseLinks:
    """The web page's side: what a link names, and releasing through it (no login: the
    signature is the authority; the release acts as the entry's account, named after the
    recipient in the audit log)."""

    def __init__(self, quarantine: QuarantineService, settings: Settings) -> None:
        self.quarantine = quarantine
        self.db = quarantine.db
        self.secret = link_secret(settings)

    async def check(self, token: str, now: datetime | None = None) -> LinkTarget:
        """The entry ``token`` names; InvalidToken/ExpiredToken, or NotFound if deleted."""
        entry_id = check_token(self.secret, token, now or utcnow())
        async with self.db.session() as session:
            row = (await session.execute(
                select(QuarantineEntry, QuarantinedMessage)
                .join(QuarantinedMessage, QuarantinedMessage.id == QuarantineEntry.message_id)
                .where(QuarantineEntry.id == entry_id))).first()
            if row is None:
                raise NotFound("this message is no longer in the quarantine (deleted or "
                               "expired)")
            return LinkTarget(QuarantineView.of(row[0], row[1]), row[0].account_id)

    async def release(self, token: str, client: str, now: datetime | None = None) -> Released:
        """Release the entry ``token`` names; AlreadyReleased on a second use."""
        target = await self.check(token, now)
        entry = target.entry
        if entry.status != HELD:
            raise AlreadyReleased(_already(entry))
        actor = Actor.for_account(target.account_id, name=entry.recipient).via(
            f"digest link {client}")
        try:
            return await self.quarantine.release(actor, entry.id, by_recipient=True)
        except Conflict:  # released meanwhile (a double click, another node)
            if (await self.check(token, now)).entry.status != HELD:
                raise AlreadyReleased(_already(entry)) from None
            raise


def _already(entry: QuarantineView) -> str:
    return f"this message was already released to {entry.recipient}"
