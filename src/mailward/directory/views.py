"""Plain result records of the directory services; the stable shape of ``--json`` and the API."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime

from mailward.core.normalize import display_domain
from mailward.db.models import Account, Address, AddressKind, AddressList, Domain


@dataclass(frozen=True, slots=True)
class AccountView:
    id: int
    name: str
    created_at: datetime

    @classmethod
    def of(cls, account: Account) -> AccountView:
        return cls(account.id, account.name, account.created_at)


@dataclass(frozen=True, slots=True)
class UserView:
    id: int
    login: str
    role: str
    account: str | None


@dataclass(frozen=True, slots=True)
class TokenView:
    """A freshly created API token: ``token`` is shown once and never stored in clear."""

    id: int
    name: str
    login: str
    token: str
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """An existing API token, as listed (the secret itself is never shown again)."""

    id: int
    name: str
    login: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None = None


VERIFICATION_PREFIX = "mailward-verification="


@dataclass(frozen=True, slots=True)
class DomainView:
    """A domain; ``verification_txt`` is the TXT record to publish at its apex to verify it
    (``verified_by``: ``txt``, ``mx`` or ``operator``; ``None`` while unverified)."""

    name: str
    display_name: str
    account: str
    hosting: bool
    created_at: datetime
    verified: bool = False
    verified_by: str | None = None
    verified_at: datetime | None = None
    verification_txt: str = ""

    @classmethod
    def of(cls, domain: Domain, account_name: str) -> DomainView:
        return cls(
            domain.name,
            display_domain(domain.name),
            account_name,
            domain.hosting,
            domain.created_at,
            domain.verified_at is not None,
            domain.verified_by,
            domain.verified_at,
            VERIFICATION_PREFIX + domain.verification_token,
        )


@dataclass(frozen=True, slots=True)
class AddressView:
    email: str
    domain: str
    list: AddressList
    kind: AddressKind
    destinations: builtins.list[str]
    quota_bytes: int | None
    used_bytes: int
    needs_setup: bool

    @classmethod
    def of(cls, address: Address) -> AddressView:
        return cls(
            email=address.email,
            domain=address.email.rpartition("@")[2],
            list=address.list,
            kind=address.kind,
            destinations=address.destinations.split(",") if address.destinations else [],
            quota_bytes=address.quota_bytes,
            used_bytes=address.used_bytes,
            needs_setup=address.kind is AddressKind.PENDING,
        )
