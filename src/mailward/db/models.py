"""SQLAlchemy models. Every table that belongs to a tenant carries ``account_id``."""

from __future__ import annotations

import enum
import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_verification_token() -> str:
    """A domain's random verification token (published as a TXT record to prove control)."""
    return secrets.token_hex(16)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, on every backend.

    SQLite keeps no zone and hands back naive values; those are UTC by construction here.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC) if value is not None else None


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    """Enums stored as short strings (portable; values are the API's words)."""
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda e: [m.value for m in e],
    )


class Role(enum.StrEnum):
    OPERATOR = "operator"
    ACCOUNT_ADMIN = "account-admin"
    RESELLER = "reseller"  # manages the accounts of one reseller


class AddressList(enum.StrEnum):
    """The two address lists (docs/procedures.md): filtered, or hosted but not filtered."""

    FILTER = "filter"
    NO_FILTER = "no-filter"


class AddressKind(enum.StrEnum):
    PENDING = "pending"
    MAILBOX = "mailbox"
    FORWARDER = "forwarder"
    AUTOCC = "autocc"


class Reseller(Base):
    """A reseller: sells the service on, and manages its own customers' accounts."""

    __tablename__ = "resellers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Account(Base):
    """A customer account: owns domains, and through them addresses."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    reseller_id: Mapped[int | None] = mapped_column(
        ForeignKey("resellers.id", ondelete="SET NULL"), index=True
    )

    domains: Mapped[list[Domain]] = relationship(back_populates="account")


class User(Base):
    """Someone who logs in to the panel/API: an operator, a reseller or an account admin."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "(role = 'operator' AND account_id IS NULL AND reseller_id IS NULL) OR "
            "(role = 'reseller' AND account_id IS NULL AND reseller_id IS NOT NULL) OR "
            "(role = 'account-admin' AND account_id IS NOT NULL AND reseller_id IS NULL)",
            name="role_account",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    login: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(_enum(Role, "user_role"))
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    reseller_id: Mapped[int | None] = mapped_column(
        ForeignKey("resellers.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # optional two-factor login (RFC 6238 TOTP): the base32 secret, and the last time step
    # a code was accepted for (a code is good once)
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)


class ApiToken(Base):
    """A bearer token for the JSON API; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # None: never


class Domain(Base):
    """A customer domain; globally unique, stored lower-case in its ASCII (IDNA) form."""

    __tablename__ = "domains"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(253), unique=True)
    hosting: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Proof of control: until verified, the domain's mail server settings and
    # hosting are not used for mail that starts inside mailward.
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    verified_by: Mapped[str | None] = mapped_column(String(16))  # txt, mx, operator
    verification_token: Mapped[str] = mapped_column(
        String(64), default=new_verification_token
    )

    account: Mapped[Account] = relationship(back_populates="domains")


class Address(Base):
    """One address of a domain, on the Filter or Do Not Filter list.

    ``destinations`` is the comma-joined forward list exactly as the doc's 128-character
    field; ``quota_bytes`` of ``None`` means unlimited.
    """

    __tablename__ = "addresses"
    __table_args__ = (
        CheckConstraint("used_bytes >= 0", name="used_nonnegative"),
        Index("ix_addresses_account_email", "account_id", "email"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    domain_id: Mapped[int] = mapped_column(
        ForeignKey("domains.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(320), unique=True)
    list: Mapped[AddressList] = mapped_column(_enum(AddressList, "address_list"))
    kind: Mapped[AddressKind] = mapped_column(_enum(AddressKind, "address_kind"))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    destinations: Mapped[str | None] = mapped_column(String(128))
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger)
    used_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, onupdate=utcnow
    )


class MailServer(Base):
    """Where the MX tier delivers a domain's filtered mail, lowest preference first."""

    __tablename__ = "mail_servers"
    __table_args__ = (
        UniqueConstraint("domain_id", "host", "port"),
        CheckConstraint("preference >= 0 AND preference <= 65535", name="preference_range"),
        CheckConstraint("port >= 1 AND port <= 65535", name="port_range"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id", ondelete="CASCADE"))
    host: Mapped[str] = mapped_column(String(253))
    port: Mapped[int] = mapped_column(Integer, default=25)
    preference: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class QueueStatus(enum.StrEnum):
    """Where a queued recipient stands; finished recipients leave the queue."""

    QUEUED = "queued"  # waiting for its first attempt
    DEFERRED = "deferred"  # tried, failed temporarily; retried at ``next_attempt_at``
    ACTIVE = "active"  # claimed by a delivery worker until ``lease_until``


# Queue origins of mail that arrived at our MX tier from outside ("release": quarantined
# there, then released). Every other origin (submission, forward, dsn, notice, ...) is
# mail that starts inside mailward.
EXTERNAL_ORIGINS = frozenset({"mx", "release"})


class QueuedMessage(Base):
    """A spooled message. On PostgreSQL its bytes live in ``body`` (any node can deliver
    it); on SQLite they are an fsync'd file named by ``queue_id`` in the data dir."""

    __tablename__ = "queue_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    queue_id: Mapped[str] = mapped_column(String(32), unique=True)
    sender: Mapped[str] = mapped_column(String(320))
    size: Mapped[int] = mapped_column(BigInteger)
    origin: Mapped[str] = mapped_column(String(16))  # mx, submission, forward, dsn
    peer: Mapped[str | None] = mapped_column(String(64))
    envid: Mapped[str | None] = mapped_column(String(100))
    ret: Mapped[str | None] = mapped_column(String(4))
    smtputf8: Mapped[bool] = mapped_column(Boolean, default=False)
    subject: Mapped[str | None] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    # the message's trace (issue 20): the queue id of the first copy of what arrived; its
    # forwards, DSNs and releases keep it (None: queued before traces existed)
    trace_id: Mapped[str | None] = mapped_column(String(32), index=True)

    recipients: Mapped[list[QueuedRecipient]] = relationship(
        back_populates="message", cascade="all, delete-orphan", passive_deletes=True
    )


class QueuedRecipient(Base):
    """One recipient of a spooled message: its own status, attempts and last failure.

    ``account_id`` is the account owning the recipient's domain (``None`` for mail to
    domains we do not serve, e.g. DSNs and forwards leaving us); it scopes queue admin.
    """

    __tablename__ = "queue_recipients"
    __table_args__ = (
        Index("ix_queue_recipients_due", "status", "next_attempt_at"),
        Index("ix_queue_recipients_domain", "domain"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("queue_messages.id", ondelete="CASCADE"), index=True
    )
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), index=True
    )
    recipient: Mapped[str] = mapped_column(String(320))
    domain: Mapped[str] = mapped_column(String(253))
    orcpt: Mapped[str | None] = mapped_column(String(500))
    notify: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[QueueStatus] = mapped_column(_enum(QueueStatus, "queue_status"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(253))
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    delay_warned: Mapped[bool] = mapped_column(Boolean, default=False)

    message: Mapped[QueuedMessage] = relationship(back_populates="recipients")


class StoreMailbox(Base):
    """A mailbox of the PostgreSQL mail store; its row is the per-mailbox lock.

    ``usage_bytes`` is exact (updated in the transaction that adds or removes messages);
    ``last_uidvalidity`` is the highest UIDVALIDITY handed out to any of its folders.
    """

    __tablename__ = "store_mailboxes"
    __table_args__ = (CheckConstraint("usage_bytes >= 0", name="usage_nonnegative"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(320), unique=True)
    usage_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    last_uidvalidity: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class StoreFolder(Base):
    """A folder of a store mailbox with its IMAP counters (``uidnext`` only grows)."""

    __tablename__ = "store_folders"
    __table_args__ = (UniqueConstraint("mailbox_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("store_mailboxes.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(1024))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uidnext: Mapped[int] = mapped_column(BigInteger, default=1)
    # -- helper CONDSTORE (issue 22): RFC 7162 HIGHESTMODSEQ, and the expunged UIDs kept
    # for VANISHED (EARLIER) in mailward.store.modseq's text form (bounded).
    highestmodseq: Mapped[int] = mapped_column(BigInteger, default=1, server_default="1")
    vanished: Mapped[str | None] = mapped_column(Text, nullable=True)


class StoreMessage(Base):
    """One stored message; ``flags`` are the canonical flags joined by single spaces."""

    __tablename__ = "store_messages"
    __table_args__ = (UniqueConstraint("folder_id", "uid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    folder_id: Mapped[int] = mapped_column(ForeignKey("store_folders.id", ondelete="CASCADE"))
    uid: Mapped[int] = mapped_column(BigInteger)
    size: Mapped[int] = mapped_column(BigInteger)
    flags: Mapped[str] = mapped_column(Text, default="")
    internal_date: Mapped[datetime] = mapped_column(UTCDateTime())
    body: Mapped[bytes] = mapped_column(LargeBinary)
    # -- helper "store" (issue 18): the message's packed ENVELOPE/BODYSTRUCTURE summary,
    # kept from delivery on (mailward.store.summary); NULL: made on first listing.
    summary: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # -- helper CONDSTORE (issue 22): the RFC 7162 mod-sequence of the last change.
    modseq: Mapped[int] = mapped_column(BigInteger, default=1, server_default="1")


class StoreSubscription(Base):
    """An IMAP subscription of a store mailbox (the folder need not exist)."""

    __tablename__ = "store_subscriptions"
    __table_args__ = (UniqueConstraint("mailbox_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("store_mailboxes.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(1024))


class DkimKey(Base):
    """A domain's DKIM signing key; ``public_key`` is the base64 ``p=`` value of its TXT.

    The newest ``active`` key of a domain signs; a rotated-out key stays (inactive) so its
    TXT record can stay published until mail signed with it has been verified.
    """

    __tablename__ = "dkim_keys"
    __table_args__ = (UniqueConstraint("domain_id", "selector"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    domain_id: Mapped[int] = mapped_column(
        ForeignKey("domains.id", ondelete="CASCADE"), index=True
    )
    selector: Mapped[str] = mapped_column(String(63))
    private_key: Mapped[str] = mapped_column(Text)
    public_key: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DnsObservation(Base):
    """One answer set a domain's DNS gave for a record type, as the checks saw it.

    ``answer`` is the canonical text of the whole set (``"10 mx1.example.net.,20
    mx2.example.net."``); ``ttl`` the longest TTL seen with it; ``first_seen`` and
    ``last_seen`` bound when it was seen. From these the domain check knows the old answer,
    its TTL and when it changed, so it can say when every cache has the new one.
    """

    __tablename__ = "dns_observations"
    __table_args__ = (UniqueConstraint("domain_id", "rdtype", "answer"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain_id: Mapped[int] = mapped_column(
        ForeignKey("domains.id", ondelete="CASCADE"), index=True
    )
    rdtype: Mapped[str] = mapped_column(String(16))
    answer: Mapped[str] = mapped_column(Text)
    ttl: Mapped[int] = mapped_column(Integer)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DomainDnsStatus(Base):
    """The latest scheduled DNS re-check of a domain (:mod:`mailward.dns.recheck`).

    ``next_check_at`` is also the claim: a node takes a due domain by moving it forward in
    one conditional UPDATE, so with several nodes each domain is checked once per round.
    ``status`` is ``None`` until the first check; ``problems`` the JSON list of the
    check's warn/fail items (``name``, ``status``, ``message``, ``fix``).
    """

    __tablename__ = "domain_dns_status"

    domain_id: Mapped[int] = mapped_column(
        ForeignKey("domains.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str | None] = mapped_column(String(4))
    problems: Mapped[str] = mapped_column(Text, default="[]")
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_check_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class WebSession(Base):
    """A panel login session (Litestar server-side session data), shared by every web node."""

    __tablename__ = "web_sessions"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)


class LoginFailure(Base):
    """One failed (or still unproven) login against a limiter key such as ``ip:…`` or
    ``mailbox:…``; shared by every node, so a lock holds cluster-wide."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(400))
    # the keys one attempt counted against share it: forgetting a login's failures also
    # takes them off the client address's count (an unlock must let the user in)
    attempt: Mapped[str] = mapped_column(String(16), index=True)
    at: Mapped[float] = mapped_column(Float)  # Unix time: comparable across nodes
    expires: Mapped[float] = mapped_column(Float, index=True)  # at + the limiter's window


class AuditEntry(Base):
    """One change made through the panel, the API or the CLI: who, what, when, from where.

    ``account_id`` is the account the change belongs to (``None``: operator-wide, e.g. a
    new account); account admins read their account's entries, operators all of them.
    """

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_account_at", "account_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(254))  # the login of who did it
    role: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(80))  # "web 192.0.2.7", "api ...", "cli"
    action: Mapped[str] = mapped_column(String(64))  # e.g. "address.set-password"
    target: Mapped[str] = mapped_column(String(320))  # what it was done to
    detail: Mapped[str] = mapped_column(Text, default="")


def _only_where(condition: str) -> dict[str, Any]:
    """Keyword arguments making an index partial on both backends."""
    return {"sqlite_where": text(condition), "postgresql_where": text(condition)}


class FilterPolicy(Base):
    """Spam filter settings of a domain (``address_id`` None) or of one of its addresses.

    A ``None`` field inherits: an address from its domain, a domain from the config.
    """

    __tablename__ = "filter_policies"
    __table_args__ = (
        Index("uq_filter_policies_domain_wide", "domain_id", unique=True,
              **_only_where("address_id IS NULL")),
        UniqueConstraint("address_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id", ondelete="CASCADE"))
    address_id: Mapped[int | None] = mapped_column(
        ForeignKey("addresses.id", ondelete="CASCADE"))
    tag_score: Mapped[float | None] = mapped_column(Float)
    quarantine_score: Mapped[float | None] = mapped_column(Float)
    reject_score: Mapped[float | None] = mapped_column(Float)
    subject_tag: Mapped[str | None] = mapped_column(String(40))
    dmarc_reject: Mapped[str | None] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    # issue 21 (VIRUS): what an infected message does, reject at DATA or quarantine
    # (None: inherit; the default is reject)
    virus_action: Mapped[str | None] = mapped_column(String(16))
    # issue 21 (SIGNALS): what bulk mail gets, deliver / tag / junk, from which score on
    # (None: inherit; the defaults are filter_bulk_action and filter_bulk_score)
    bulk_action: Mapped[str | None] = mapped_column(String(8))
    bulk_score: Mapped[float | None] = mapped_column(Float)


class FilterSenderRule(Base):
    """An allow or block list entry of a domain or of one address.

    ``sender`` is an address (``user@example.org``) or a domain (``example.org``, which
    also covers its subdomains), lower-case.
    """

    __tablename__ = "filter_sender_rules"
    __table_args__ = (
        Index("uq_filter_sender_rules_domain_wide", "domain_id", "sender", unique=True,
              **_only_where("address_id IS NULL")),
        UniqueConstraint("address_id", "sender"),
        CheckConstraint("action IN ('allow', 'block')", name="action"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id", ondelete="CASCADE"))
    address_id: Mapped[int | None] = mapped_column(
        ForeignKey("addresses.id", ondelete="CASCADE"))
    sender: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class FilterDomainModel(Base):
    """A domain's own refinement of the content model, learnt from its users' corrections
    (the gzip'd JSON of :class:`mailward.filter.model.LogisticModel`)."""

    __tablename__ = "filter_domain_models"

    domain_id: Mapped[int] = mapped_column(
        ForeignKey("domains.id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    model: Mapped[bytes] = mapped_column(LargeBinary)
    spam_count: Mapped[int] = mapped_column(Integer, default=0)
    ham_count: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class QuarantinedMessage(Base):
    """A message held by the filter, kept outside every mailbox until it expires; its
    bytes are in the row (committed before the sender is told 250)."""

    __tablename__ = "quarantine_messages"
    __table_args__ = ({"sqlite_autoincrement": True},)  # ids never come back (release links)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sender: Mapped[str] = mapped_column(String(320))
    from_header: Mapped[str] = mapped_column(String(320), default="")
    subject: Mapped[str] = mapped_column(String(200), default="")
    size: Mapped[int] = mapped_column(BigInteger)
    score: Mapped[float] = mapped_column(Float)
    findings: Mapped[str] = mapped_column(Text, default="[]")  # JSON: check, score, reason
    peer: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    trace_id: Mapped[str | None] = mapped_column(String(32))  # the message's trace

    entries: Mapped[list[QuarantineEntry]] = relationship(
        back_populates="message", cascade="all, delete-orphan", passive_deletes=True
    )


class QuarantineEntry(Base):
    """One recipient's copy of a quarantined message: held until released or deleted.

    ``digest_sent_at`` is when it was listed in the recipient's digest (None: not yet).
    """

    __tablename__ = "quarantine_entries"
    __table_args__ = (
        Index("ix_quarantine_entries_account_at", "account_id", "created_at"),
        Index("ix_quarantine_entries_recipient", "recipient", "status"),
        {"sqlite_autoincrement": True},  # an old release link must never name a new entry
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("quarantine_messages.id", ondelete="CASCADE"), index=True
    )
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    domain_id: Mapped[int] = mapped_column(
        ForeignKey("domains.id", ondelete="CASCADE"), index=True
    )
    recipient: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(10), default="held")  # held / released
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    released_by: Mapped[str | None] = mapped_column(String(254))
    digest_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    message: Mapped[QuarantinedMessage] = relationship(back_populates="entries")


class QuarantineDigest(Base):
    """When an address may get its next quarantine digest; also the claim between nodes
    (moved forward in one conditional UPDATE, like ``domain_dns_status``)."""

    __tablename__ = "quarantine_digests"

    recipient: Mapped[str] = mapped_column(String(320), primary_key=True)
    next_digest_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


# -- caches (issue 18): the lookup generation --------------------------------------------


class LookupGeneration(Base):
    """One row (id 1): a counter moved in every transaction that changes a table the
    per-process lookup caches read, so each process sees in one SELECT whether its cached
    answers may be out of date (:mod:`mailward.db.generation`)."""

    __tablename__ = "lookup_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


# -- webmail sending (issue 19): held mail and delivery outcomes --------------------------


class WebmailOutbox(Base):
    """A message a mailbox sent from webmail: its queue id, the Sent copy, and until when
    the queue holds it (undo window or send later). Kept after delivery for the trace."""

    __tablename__ = "webmail_outbox"
    __table_args__ = (Index("ix_webmail_outbox_mailbox_message_id", "mailbox", "message_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    queue_id: Mapped[str] = mapped_column(String(32), unique=True)
    mailbox: Mapped[str] = mapped_column(String(320))
    message_id: Mapped[str] = mapped_column(String(250))
    subject: Mapped[str] = mapped_column(String(200), default="")
    recipients: Mapped[str] = mapped_column(Text)  # envelope recipients, comma-separated
    sent_folder: Mapped[str | None] = mapped_column(String(500))
    sent_uid: Mapped[int | None] = mapped_column(Integer)
    release_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    undo: Mapped[bool] = mapped_column(Boolean, default=True)  # False: sent later
    draft_state: Mapped[str | None] = mapped_column(Text)  # the form's state, for undo
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebmailDelivery(Base):
    """How a recipient of a webmail message finished (it then leaves the queue): written
    by the delivery worker with the outcome, for the sender's delivery trace."""

    __tablename__ = "webmail_deliveries"
    __table_args__ = (Index("ix_webmail_deliveries_at", "at"),)  # retention (mailward.trace)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    queue_id: Mapped[str] = mapped_column(String(32), index=True)
    recipient: Mapped[str] = mapped_column(String(320))
    result: Mapped[str] = mapped_column(String(10))  # delivered, relayed, bounced
    status: Mapped[str] = mapped_column(String(16))  # RFC 3463, e.g. "2.0.0"
    detail: Mapped[str] = mapped_column(Text)  # the remote reply or our reason
    remote_mta: Mapped[str | None] = mapped_column(String(253))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


WEBMAIL_ORIGIN = "webmail"  # queue origin of mail sent from webmail (starts inside mailward)


# -- webmail (issue 19, H4): address book, identities, settings, mailbox two-factor ------
# Keyed by the mailbox's address; the foreign key to ``addresses.email`` takes the rows
# with the address when it is deleted (directly, or with its domain).


class WebmailContact(Base):
    """A contact of a mailbox's address book; its addresses are ``WebmailContactEmail``s."""

    __tablename__ = "webmail_contacts"
    __table_args__ = (
        Index("ix_webmail_contacts_mailbox_name_key", "mailbox", "name_key"),
        UniqueConstraint("mailbox", "uid"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox: Mapped[str] = mapped_column(
        String(320), ForeignKey("addresses.email", ondelete="CASCADE"))
    uid: Mapped[str | None] = mapped_column(String(255))  # the vCard UID, when imported
    name: Mapped[str] = mapped_column(String(200), default="")
    name_key: Mapped[str] = mapped_column(String(200), default="")  # casefolded, for search
    organisation: Mapped[str] = mapped_column(String(200), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    phones: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of strings
    used: Mapped[int] = mapped_column(Integer, default=0)  # mails sent to it (suggestions)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class WebmailContactEmail(Base):
    """One address of a contact; ``position`` 0 is its primary address."""

    __tablename__ = "webmail_contact_emails"
    __table_args__ = (
        UniqueConstraint("contact_id", "email"),
        Index("ix_webmail_contact_emails_mailbox_email", "mailbox", "email"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("webmail_contacts.id", ondelete="CASCADE"))
    mailbox: Mapped[str] = mapped_column(String(320))  # the contact's, for scoped lookups
    email: Mapped[str] = mapped_column(String(320))
    position: Mapped[int] = mapped_column(Integer, default=0)


class WebmailContactGroup(Base):
    """A named group of a mailbox's contacts (vCard CATEGORIES)."""

    __tablename__ = "webmail_contact_groups"
    __table_args__ = (UniqueConstraint("mailbox", "name_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox: Mapped[str] = mapped_column(
        String(320), ForeignKey("addresses.email", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    name_key: Mapped[str] = mapped_column(String(100))  # casefolded: names are unique so
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebmailContactGroupMember(Base):
    """A contact in a group (both of the same mailbox)."""

    __tablename__ = "webmail_contact_group_members"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("webmail_contact_groups.id", ondelete="CASCADE"), primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("webmail_contacts.id", ondelete="CASCADE"), primary_key=True, index=True)


class WebmailIdentity(Base):
    """A sender identity of a mailbox: an address it may send as, a name, signatures."""

    __tablename__ = "webmail_identities"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox: Mapped[str] = mapped_column(
        String(320), ForeignKey("addresses.email", ondelete="CASCADE"), index=True)
    address: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    reply_to: Mapped[str | None] = mapped_column(String(320))
    signature_text: Mapped[str] = mapped_column(Text, default="")
    signature_html: Mapped[str | None] = mapped_column(Text)  # as given; sanitised when shown
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebmailPrefs(Base):
    """A mailbox's webmail settings: the JSON object of the keys it changed."""

    __tablename__ = "webmail_prefs"

    mailbox: Mapped[str] = mapped_column(
        String(320), ForeignKey("addresses.email", ondelete="CASCADE"), primary_key=True)
    prefs: Mapped[str] = mapped_column(Text, default="{}")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class MailboxTotp(Base):
    """A mailbox's two-factor login (RFC 6238): its base32 secret and the last time step a
    code was accepted for (a code is good once), as ``User.totp_*`` for panel users."""

    __tablename__ = "mailbox_two_factor"

    mailbox: Mapped[str] = mapped_column(
        String(320), ForeignKey("addresses.email", ondelete="CASCADE"), primary_key=True)
    secret: Mapped[str] = mapped_column(String(64))
    last_step: Mapped[int | None] = mapped_column(BigInteger)
    enabled_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# -- helper H1 (issue 19): the webmail's mail search index -----------------------------

from sqlalchemy.dialects.postgresql import TSVECTOR  # noqa: E402 - only this block uses it


class MailSearchDoc(Base):
    """One message in the search index (:mod:`mailward.store.search_index`), keyed as the
    store keys it. PostgreSQL keeps the words in ``tsv`` (weights: A from, B to, C
    subject, D body); SQLite leaves ``tsv`` NULL and keeps them in the FTS5 table
    ``mail_search_fts`` (made by migration 0018 only there), whose rowid is ``id``."""

    __tablename__ = "mail_search_docs"
    __table_args__ = (
        UniqueConstraint("mailbox", "folder", "uidvalidity", "uid"),
        Index("ix_mail_search_docs_tsv", "tsv", postgresql_using="gin"),  # SQLite: unused
        # newest first: PostgreSQL walks it backwards for a query most messages match
        Index("ix_mail_search_docs_mailbox_received", "mailbox", "received"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(320))
    folder: Mapped[str] = mapped_column(String(1024))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    received: Mapped[datetime] = mapped_column(UTCDateTime())
    tsv: Mapped[str | None] = mapped_column(
        Text().with_variant(TSVECTOR(), "postgresql"), nullable=True)


class MailSearchFolder(Base):
    """A folder's store counters when the search index last caught up with it: a search
    skips the folder while they are unchanged."""

    __tablename__ = "mail_search_folders"
    __table_args__ = (UniqueConstraint("mailbox", "folder"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(320))
    folder: Mapped[str] = mapped_column(String(1024))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uidnext: Mapped[int] = mapped_column(BigInteger)
    messages: Mapped[int] = mapped_column(BigInteger)


# -- message trace (issue 20): events, and the counters the charts read -----------------

_TRACE_ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite: a rowid alias


class TraceEventRow(Base):
    """One event of a message's life (:mod:`mailward.trace`): connection, RCPT answer,
    verdict, delivery attempt, ... ``domain`` and ``mailbox`` are whom it concerns (the
    tenant scope); both None for events about the whole message."""

    __tablename__ = "trace_events"
    __table_args__ = (
        Index("ix_trace_events_domain_at", "domain", "at"),
        Index("ix_trace_events_mailbox_at", "mailbox", "at"),
    )

    id: Mapped[int] = mapped_column(_TRACE_ID, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    node: Mapped[str] = mapped_column(String(260))
    trace_id: Mapped[str] = mapped_column(String(32), index=True)
    session_id: Mapped[str | None] = mapped_column(String(32))
    queue_id: Mapped[str | None] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(16))
    sender: Mapped[str | None] = mapped_column(String(320), index=True)
    recipient: Mapped[str | None] = mapped_column(String(320), index=True)
    domain: Mapped[str | None] = mapped_column(String(253))
    mailbox: Mapped[str | None] = mapped_column(String(320))
    peer: Mapped[str | None] = mapped_column(String(64), index=True)
    subject: Mapped[str | None] = mapped_column(String(200))
    message_id: Mapped[str | None] = mapped_column(String(250), index=True)
    detail: Mapped[str] = mapped_column(Text, default="{}")  # JSON object


class TraceCount(Base):
    """How many events of one kind (``metric``) a domain had in one hour; domain ``*`` is
    every domain together. Added to by each process's recorder (never recounted)."""

    __tablename__ = "trace_counts"
    __table_args__ = (Index("ix_trace_counts_hour", "hour"),)  # pruning by age

    domain: Mapped[str] = mapped_column(String(253), primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    metric: Mapped[str] = mapped_column(String(32), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)


class TraceTop(Base):
    """How often one sender or recipient (``field``) was refused for a domain in one hour."""

    __tablename__ = "trace_top"
    __table_args__ = (Index("ix_trace_top_hour", "hour"),)

    domain: Mapped[str] = mapped_column(String(253), primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    field: Mapped[str] = mapped_column(String(10), primary_key=True)
    value: Mapped[str] = mapped_column(String(320), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)


class TraceGauge(Base):
    """A sampled value (queue depth by state) for the charts; ``account_id`` None is the
    whole platform."""

    __tablename__ = "trace_gauges"
    __table_args__ = (Index("ix_trace_gauges_account_name_at", "account_id", "name", "at"),
                      Index("ix_trace_gauges_at", "at"))

    id: Mapped[int] = mapped_column(_TRACE_ID, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(32))
    value: Mapped[int] = mapped_column(BigInteger)


# -- per-user learning (issue 21, helper LEARN): each address's corrections per kind of
# sender (mailward.filter.personal); the rows go with the address, its domain or account.


class FilterPersonalSender(Base):
    """What one address's corrections taught about one kind of sender (``key``: a From:
    address, a List-Id or a registrable domain, prefixed by its kind): the points its next
    message from that kind gets (negative: ham)."""

    __tablename__ = "filter_personal_senders"
    __table_args__ = (UniqueConstraint("address_id", "key"),
                      Index("ix_filter_personal_senders_updated_at", "updated_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    domain_id: Mapped[int] = mapped_column(
        ForeignKey("domains.id", ondelete="CASCADE"), index=True)
    address_id: Mapped[int] = mapped_column(ForeignKey("addresses.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(330))
    weight: Mapped[float] = mapped_column(Float)
    spam_count: Mapped[int] = mapped_column(Integer, default=0)
    ham_count: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# -- Sieve (issue 22, helper SIEVE): each mailbox's scripts (mailward.sieve.scripts) and
# the vacation replies sent (mailward.sieve.vacation); the rows go with the address.


class SieveScript(Base):
    """One Sieve script of a mailbox (RFC 5228); at most one per mailbox is active."""

    __tablename__ = "sieve_scripts"
    __table_args__ = (UniqueConstraint("mailbox", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox: Mapped[str] = mapped_column(
        String(320), ForeignKey("addresses.email", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    content: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class SieveVacationSent(Base):
    """When a mailbox last answered ``sender`` with the vacation reply ``handle`` (RFC 5230:
    once per sender per period)."""

    __tablename__ = "sieve_vacation_sent"

    mailbox: Mapped[str] = mapped_column(
        String(320), ForeignKey("addresses.email", ondelete="CASCADE"), primary_key=True)
    sender: Mapped[str] = mapped_column(String(320), primary_key=True)
    handle: Mapped[str] = mapped_column(String(64), primary_key=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# -- catch-all and domain aliases (issue 22, helper CATCHALL): mailward.directory.aliases;
# read by the recipient lookup (both tables are in db.generation.WATCHED).


class DomainCatchAll(Base):
    """A domain's catch-all: the listed address (mailbox or forwarder) of that domain that
    receives mail for its unlisted local parts; no row: off. Goes with the address."""

    __tablename__ = "domain_catch_alls"

    domain_id: Mapped[int] = mapped_column(
        ForeignKey("domains.id", ondelete="CASCADE"), primary_key=True)
    address_id: Mapped[int] = mapped_column(
        ForeignKey("addresses.id", ondelete="CASCADE"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DomainAlias(Base):
    """``alias`` (a domain name used nowhere else) delivers to the same local parts of its
    domain; only once verified (proof of control, as a domain's: TXT token or MX)."""

    __tablename__ = "domain_aliases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alias: Mapped[str] = mapped_column(String(253), unique=True)
    domain_id: Mapped[int] = mapped_column(
        ForeignKey("domains.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    verified_by: Mapped[str | None] = mapped_column(String(16))  # txt, mx, operator
    verification_token: Mapped[str] = mapped_column(String(64), default=new_verification_token)


# -- mail migration (issue 22, helper MIGRATE): copying a mailbox from the customer's old
# IMAP server (mailward.migrate); the rows go with the address.


class MigrationJob(Base):
    """One mailbox copied from an old IMAP server: where from, its state and counts.

    ``secret`` is the old server's password encrypted with a key derived from the web
    secret (mailward.migrate.secrets), NULL once the job ended; ``lease_owner`` and
    ``lease_until`` say which delivery worker is running it."""

    __tablename__ = "migration_jobs"
    __table_args__ = (Index("ix_migration_jobs_status_next_run_at", "status", "next_run_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    mailbox: Mapped[str] = mapped_column(
        String(320), ForeignKey("addresses.email", ondelete="CASCADE"), index=True)
    host: Mapped[str] = mapped_column(String(253))
    port: Mapped[int] = mapped_column(Integer)
    tls: Mapped[str] = mapped_column(String(8))  # ssl, starttls, none
    login: Mapped[str] = mapped_column(String(320))
    secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(12), default="queued")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_run_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    current_folder: Mapped[str | None] = mapped_column(String(1000))
    folders_total: Mapped[int] = mapped_column(Integer, default=0)
    folders_done: Mapped[int] = mapped_column(Integer, default=0)
    messages_total: Mapped[int] = mapped_column(Integer, default=0)
    messages_copied: Mapped[int] = mapped_column(Integer, default=0)
    messages_skipped: Mapped[int] = mapped_column(Integer, default=0)
    bytes_copied: Mapped[int] = mapped_column(BigInteger, default=0)


class MigrationFolder(Base):
    """How far one folder of a migration job got: the old server's UIDVALIDITY and the last
    UID copied (or skipped) under it."""

    __tablename__ = "migration_folders"
    __table_args__ = (UniqueConstraint("job_id", "source"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("migration_jobs.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(1000))
    target: Mapped[str] = mapped_column(String(1000))
    uidvalidity: Mapped[int] = mapped_column(BigInteger, default=0)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    messages: Mapped[int] = mapped_column(Integer, default=0)
    copied: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[bool] = mapped_column(Boolean, default=False)
