"""Mailbox logins for POP3, IMAP and SMTP submission: full address + the mailbox password.

Only mailboxes (and auto-cc addresses, which have one) can log in, and to POP3, IMAP and
submission only while their domain's hosting is on (the panel's self-service pages, e.g.
their quarantine, belong to filtering and stay open); forwarders and pending addresses
cannot. A refusal for hosting looks like a wrong password to the client (no oracle) and
counts as a failure; the log says why. Failures are rate-limited per client IP and per
address with the same limiter as the web login; a locked client gets ``retry_after`` and
no password check.

A password that verified is remembered for a short while (``AuthCache``), so mail clients
that reconnect do not pay Argon2id each time. The address's row (its current hash, kind
and hosting) is read and the lock checked on every login before the cache is asked; a
wrong password always takes the full check and counts as a failure.

Failures are counted in ``mailward_auth_failures_total`` and the failures that lock the
mailbox or the client in ``mailward_auth_lockouts_total``, by protocol.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select

from mailward.core.actor import Actor
from mailward.core.audit import record
from mailward.core.errors import InvalidInput
from mailward.core.normalize import normalize_address
from mailward.db import Address, AddressKind, Database, Domain
from mailward.directory.accounts import DUMMY_HASH
from mailward.directory.addresses import AddressService
from mailward.directory.auth_cache import AuthCache
from mailward.directory.auth_limit import AuthLimiter, retry_after_all
from mailward.directory.passwords import Passwords
from mailward.directory.users import login_key
from mailward.obs.metrics import AUTH_FAILURES, LOCKOUTS

log = logging.getLogger(__name__)
WEB = "web"  # the panel's mailbox login (``protocol``), which needs no hosting
CAN_LOG_IN = (AddressKind.MAILBOX, AddressKind.AUTOCC)


@dataclass(frozen=True, slots=True)
class LoginResult:
    """``mailbox`` on success; otherwise ``retry_after`` > 0 when the client is locked."""

    mailbox: str | None = None
    retry_after: int = 0

    @property
    def ok(self) -> bool:
        return self.mailbox is not None


class MailLogin:
    def __init__(self, db: Database, passwords: Passwords, limiter: AuthLimiter,
                 ip_limiter: AuthLimiter, cache: AuthCache | None = None) -> None:
        self.db = db
        self.passwords = passwords
        self.limiter = limiter  # per mailbox
        self.ip_limiter = ip_limiter  # per client IP: many users may share one (NAT)
        self.cache = cache if cache is not None else AuthCache.of(passwords.settings)

    async def authenticate(self, login: str, password: str, peer: str,
                           protocol: str = "mail") -> LoginResult:
        """Check a login; only failures count (concurrent logins from one IP are normal
        for mail clients, so attempts in progress are not held against it)."""
        try:
            address = normalize_address(login)
        except InvalidInput:
            address = login.strip().lower()[:320]
        wait = await self.retry_after(address, peer)
        if wait:
            self.cache.forget(address)
            log.warning("%s login for %s from %s refused: locked for %d s", protocol,
                        address, peer, wait)
            return LoginResult(retry_after=wait)
        if await self._verify(address, password, protocol, peer):
            return LoginResult(mailbox=address)
        await self.fail(address, peer)
        AUTH_FAILURES.labels(protocol).inc()
        if await self.retry_after(address, peer):  # this failure locked it
            LOCKOUTS.labels(protocol).inc()
            log.warning("%s login failed for %s from %s: now locked", protocol, address,
                        peer)
        else:
            log.info("%s login failed for %s from %s", protocol, address, peer)
        return LoginResult()

    async def retry_after(self, address: str, peer: str) -> int:
        """Seconds until ``address`` may try again from ``peer`` (0: now)."""
        return await retry_after_all([(self.limiter, f"mailbox:{address}"),
                                      (self.ip_limiter, f"mail-ip:{peer}")])

    async def fail(self, address: str, peer: str) -> None:
        """Count a failed login (a wrong password, or a wrong second-factor code)."""
        attempt = await self.limiter.fail(f"mailbox:{address}")
        await self.ip_limiter.fail(f"mail-ip:{peer}", attempt=attempt)  # an unlock takes both back

    async def _verify(self, address: str, password: str, protocol: str, peer: str) -> bool:
        async with self.db.session() as session:
            row = (await session.execute(
                select(Address.password_hash, Address.kind, Domain.hosting)
                .join(Domain, Domain.id == Address.domain_id).where(Address.email == address)
            )).first()
        if row is None or row.kind not in CAN_LOG_IN or not row.password_hash:
            await self.passwords.verify_async(DUMMY_HASH.get(self.passwords), password)
            return False
        may_log_in = row.hosting or protocol == WEB
        if may_log_in and self.cache.hit(address, row.password_hash, password):
            return True
        right = await self.passwords.verify_async(row.password_hash, password)
        if not may_log_in:  # as a wrong password, at the same cost
            log.warning("%s login for %s from %s refused: hosting is off for its domain "
                        "(password %s)", protocol, address, peer,
                        "right" if right else "wrong")
            return False
        if right:
            self.cache.remember(address, row.password_hash, password)
        return right

    async def may_send_as(self, login: str, address: str) -> bool:
        """A logged-in mailbox may send as itself, or as a forwarder (alias) whose
        destinations include it. An auto-cc address is someone's mailbox: getting a copy
        of its mail does not make its destinations its senders."""
        try:
            wanted = normalize_address(address)
        except InvalidInput:
            return False
        if wanted == login:
            return True
        async with self.db.session() as session:
            row = (await session.execute(
                select(Address.kind, Address.destinations).where(Address.email == wanted)
            )).first()
        if row is None or row.kind is not AddressKind.FORWARDER:
            return False
        targets = {d.strip().lower() for d in (row.destinations or "").split(",")}
        return login in targets

    async def sender_addresses(self, login: str, limit: int = 200) -> list[str]:
        """The addresses :meth:`may_send_as` allows ``login``: itself first, then the
        forwarders that deliver to it (at most ``limit``), sorted."""
        async with self.db.session() as session:
            rows = (await session.execute(
                select(Address.email, Address.destinations).where(
                    Address.kind == AddressKind.FORWARDER,
                    Address.destinations.contains(login, autoescape=True))
                .order_by(Address.email).limit(limit * 4))).all()
        found = [row.email for row in rows if login in
                 {d.strip().lower() for d in (row.destinations or "").split(",")}]
        return [login, *found[:limit]]

    async def quota(self, mailbox: str) -> int | None:
        """The mailbox's quota in bytes (``None``: unlimited or not a mailbox)."""
        async with self.db.session() as session:
            return (await session.execute(
                select(Address.quota_bytes).where(Address.email == mailbox)
            )).scalar_one_or_none()

    async def locked(self, address: str) -> int:
        """Seconds the address stays locked after failed logins (0 = not locked): mail
        protocols' or the panel's (a mailbox user logs in there too)."""
        address = address.strip().lower()
        return await self.limiter.retry_after(f"mailbox:{address}", login_key(address))

    async def lock_state(self, actor: Actor, addresses: AddressService,
                         email: str) -> LoginLockView:
        """An address's lock, for its account admin (tenant-checked via ``get``)."""
        view = await addresses.get(actor, email)
        return LoginLockView(view.email, await self.locked(view.email))

    async def unlock(self, actor: Actor, addresses: AddressService,
                     email: str) -> LoginLockView:
        """Forget an address's failed logins (its admin vouches for the user)."""
        view = await addresses.get(actor, email)
        was = await self.locked(view.email)
        async with self.db.session() as session:
            account_id = await session.scalar(
                select(Address.account_id).where(Address.email == view.email))
            record(session, actor, "address.unlock-login", view.email, account_id=account_id,
                   detail=f"was locked for {was} s")
            await session.commit()
        await self.limiter.clear(f"mailbox:{view.email}")
        await self.limiter.clear(login_key(view.email))
        log.info("%s cleared the login lock of %s", actor.name or "an admin", view.email)
        return LoginLockView(view.email, await self.locked(view.email))


@dataclass(frozen=True, slots=True)
class LoginLockView:
    """Whether failed mailbox logins (POP3/IMAP/submission) lock an address, cluster-wide."""

    email: str
    locked_seconds: int
