"""Per-domain DKIM keys: generation, the TXT record to publish, rotation.

A domain gets an RSA-2048 key with selector ``mw<YYYYMM>`` when it is added. Rotating
adds a new key under a new selector and retires the old ones (kept, inactive, so the
operator can leave their TXT records published until mail signed with them has arrived).
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mailward.core.actor import Actor
from mailward.core.audit import record as record_change
from mailward.core.errors import Conflict, NotFound
from mailward.core.normalize import normalize_domain
from mailward.db import Database
from mailward.db.models import DkimKey
from mailward.directory import DomainAdded
from mailward.directory.facts import domain_by_id, domain_facts, scoped_domain

KEY_BITS = 2048
SELECTOR_PREFIX = "mw"
MAX_TXT_STRING = 255  # one <character-string> of a TXT record (RFC 1035 §3.3)


@dataclass(frozen=True, slots=True)
class KeyPair:
    private_pem: str  # PKCS#1 "BEGIN RSA PRIVATE KEY", as dkimpy expects
    public_b64: str  # SubjectPublicKeyInfo DER, base64: the record's p= value


def generate_keypair(bits: int = KEY_BITS) -> KeyPair:
    """A fresh RSA key (CPU-bound, ~50-100 ms: call it through :func:`new_keypair`)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode("ascii")
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return KeyPair(private_pem, base64.b64encode(public_der).decode("ascii"))


async def new_keypair(bits: int = KEY_BITS) -> KeyPair:
    """:func:`generate_keypair` off the event loop."""
    return await asyncio.to_thread(generate_keypair, bits)


def record_name(selector: str, domain: str) -> str:
    """Where the key is published: ``<selector>._domainkey.<domain>``."""
    return f"{selector}._domainkey.{domain}"


def txt_value(public_b64: str) -> str:
    """The TXT record's text: ``v=DKIM1; k=rsa; p=...``."""
    return f"v=DKIM1; k=rsa; p={public_b64}"


def txt_strings(value: str, size: int = MAX_TXT_STRING) -> list[str]:
    """``value`` cut into the ≤255-character strings one TXT record is made of.

    The tag list comes first on its own, so a zone shows ``"v=DKIM1; k=rsa; " "p=..."``;
    resolvers concatenate the strings without separators.
    """
    head, sep, key = value.partition("p=")
    parts = [head] if sep and head else []
    rest = sep + key if sep else value
    parts += [rest[i : i + size] for i in range(0, len(rest), size)] or [""]
    return [part for part in parts if part] or [""]


def zone_line(selector: str, domain: str, public_b64: str, ttl: int = 3600) -> str:
    """The record as one zone-file line (strings quoted, ready to paste)."""
    strings = " ".join(f'"{s}"' for s in txt_strings(txt_value(public_b64)))
    return f"{record_name(selector, domain)}. {ttl} IN TXT {strings}"


def selector_for(when: datetime, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """``mw<YYYYMM>``, or with a letter suffix (``mw202611b``...) if already used."""
    base = f"{SELECTOR_PREFIX}{when.astimezone(UTC):%Y%m}"
    if base not in taken:
        return base
    for n in range(2, 10_000):
        candidate = base + (chr(ord("a") + n - 1) if n <= 26 else str(n))
        if candidate not in taken:
            return candidate
    raise Conflict("no free DKIM selector left this month")


@dataclass(frozen=True, slots=True)
class DkimRecordView:
    """The TXT record to publish for a domain's signing key."""

    domain: str
    selector: str
    name: str  # <selector>._domainkey.<domain>
    value: str  # v=DKIM1; k=rsa; p=...
    strings: list[str]  # ``value`` as ≤255-character TXT strings
    created_at: datetime

    @classmethod
    def of(cls, key: DkimKey, domain: str) -> DkimRecordView:
        value = txt_value(key.public_key)
        return cls(
            domain,
            key.selector,
            record_name(key.selector, domain),
            value,
            txt_strings(value),
            key.created_at,
        )


class DkimService:
    """DKIM keys of the domains: tenant-scoped views and rotation, plus signing lookups."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    async def on_domain_added() -> DomainAdded:
        """The directory's hook for a domain being added: the key is generated now, before
        the transaction; the step returned stores it in that transaction."""
        keypair = await new_keypair()

        async def add(session: AsyncSession, domain_id: int, account_id: int) -> str:
            key = await DkimService.add_key(session, domain_id, account_id, keypair=keypair)
            return f"DKIM selector {key.selector}"

        return add

    @staticmethod
    async def add_key(
        session: AsyncSession, domain_id: int, account_id: int, *,
        keypair: KeyPair | None = None
    ) -> DkimKey:
        """Add a new active key for the domain (flushed, not committed); retire older ones.

        Pass a ``keypair`` made beforehand to keep key generation out of the transaction.
        """
        if keypair is None:
            keypair = await new_keypair()
        taken = set(
            await session.scalars(select(DkimKey.selector).where(DkimKey.domain_id == domain_id))
        )
        await session.execute(
            update(DkimKey)
            .where(DkimKey.domain_id == domain_id, DkimKey.active.is_(True))
            .values(active=False)
        )
        now = datetime.now(UTC)
        key = DkimKey(
            account_id=account_id,
            domain_id=domain_id,
            selector=selector_for(now, taken),
            private_key=keypair.private_pem,
            public_key=keypair.public_b64,
            active=True,
            created_at=now,
        )
        session.add(key)
        await session.flush()
        return key

    async def ensure_key(self, domain_id: int) -> DkimKey:
        """The domain's active key, generating one if it has none (e.g. older domains)."""
        async with self.db.session() as session:
            key = await self._active(session, domain_id)
            if key is not None:
                return key
        keypair = await new_keypair()
        async with self.db.session() as session:
            domain = await domain_by_id(session, domain_id)
            if domain is None:
                raise NotFound(f"no domain with id {domain_id}")
            key = await self._active(session, domain_id)
            if key is not None:  # made meanwhile by someone else
                return key
            key = await self.add_key(session, domain.id, domain.account_id, keypair=keypair)
            try:
                await session.commit()
            except IntegrityError:  # a concurrent ensure won the selector
                await session.rollback()
                key = await self._active(session, domain_id)
                if key is None:
                    raise
            return key

    async def record(self, actor: Actor, domain: str) -> DkimRecordView:
        """The TXT record of the domain's active key (one is made if it has none)."""
        async with self.db.session() as session:
            found = await scoped_domain(session, actor, domain)
            key = await self._active(session, found.id)
            name = found.name
            domain_id = found.id
        if key is None:
            key = await self.ensure_key(domain_id)
        return DkimRecordView.of(key, name)

    async def rotate(self, actor: Actor, domain: str) -> DkimRecordView:
        """A new key under a new selector; the old keys stop signing at once.

        Publish the new record before mail signed with it is delivered elsewhere; keep the
        old record published for a few days.
        """
        keypair = await new_keypair()
        async with self.db.session() as session:
            found = await scoped_domain(session, actor, domain)
            key = await self.add_key(session, found.id, found.account_id, keypair=keypair)
            record_change(session, actor, "dkim.rotate", found.name,
                          account_id=found.account_id, detail=f"new selector {key.selector}")
            try:
                await session.commit()
            except IntegrityError:
                raise Conflict(f"DKIM key of {found.name} was rotated concurrently") from None
            return DkimRecordView.of(key, found.name)

    async def signing_key(self, domain: str) -> tuple[str, bytes] | None:
        """``(selector, private PEM)`` to sign mail from ``domain``; not tenant-scoped."""
        try:
            name = normalize_domain(domain)
        except Exception:
            return None
        async with self.db.session() as session:
            facts = await domain_facts(session, name)
            key = None if facts is None else await self._active(session, facts.id)
        if key is None:
            return None
        return key.selector, key.private_key.encode("ascii")

    @staticmethod
    async def _active(session: AsyncSession, domain_id: int) -> DkimKey | None:
        return await session.scalar(
            select(DkimKey)
            .where(DkimKey.domain_id == domain_id, DkimKey.active.is_(True))
            .order_by(DkimKey.created_at.desc(), DkimKey.id.desc())
            .limit(1)
        )
