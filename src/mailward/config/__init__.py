"""Settings: a TOML file plus ``MAILWARD_*`` environment overrides.

Precedence, highest first: explicit keyword arguments, environment variables, the TOML
file named by ``MAILWARD_CONFIG`` (default ``./mailward.toml`` when it exists), defaults.
Every operator hostname lives here; no other module spells one out.
"""

from __future__ import annotations

import ipaddress
import os
import re
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = ["ConfigError", "MxHost", "Settings", "load_settings"]

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$"
)


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which setting and why."""


def _hostname(value: str, setting: str) -> str:
    host = value.strip().rstrip(".").lower()
    if not _HOSTNAME.match(host):
        raise ValueError(f"{setting}: {value!r} is not a valid host name")
    return host


class MxHost(BaseModel):
    """One public MX host of the filtering tier and the priority customers publish."""

    host: str
    priority: int = Field(ge=0, le=65535)

    @field_validator("host")
    @classmethod
    def _valid_host(cls, value: str) -> str:
        return _hostname(value, "mx_hosts")


def parse_mx_hosts(value: Any) -> Any:
    """Accept ``"mx1.example.net:10,mx2.example.net:20"`` as well as a TOML list."""
    if not isinstance(value, str):
        return value
    hosts = []
    for index, item in enumerate(part.strip() for part in value.split(",")):
        if not item:
            continue
        host, sep, priority = item.rpartition(":")
        if not sep:
            host, priority = item, str(10 * (index + 1))
        if not priority.isdigit():
            raise ValueError(f"mx_hosts: priority of {item!r} must be a number 0-65535")
        hosts.append({"host": host, "priority": int(priority)})
    return hosts


class Settings(BaseSettings):
    """Everything an operator configures. Defaults give a working single-node install."""

    model_config = SettingsConfigDict(env_prefix="MAILWARD_", extra="forbid")

    data_dir: Path = Path("var")
    database_url: str | None = None

    bind: str = "127.0.0.1"
    port_web: int = Field(8080, ge=0, le=65535)
    port_mx: int = Field(2525, ge=0, le=65535)
    port_submission: int = Field(2587, ge=0, le=65535)
    port_submissions: int = Field(2465, ge=0, le=65535)
    port_submission_alt: int | None = Field(None, ge=0, le=65535)
    """One more STARTTLS submission port (AUTH required), e.g. 25 on hosting hosts."""
    port_imap: int = Field(2143, ge=0, le=65535)
    port_imaps: int = Field(2993, ge=0, le=65535)
    port_pop3: int = Field(2110, ge=0, le=65535)
    port_pop3s: int = Field(2995, ge=0, le=65535)

    mx_hosts: Annotated[list[MxHost], NoDecode] = Field(
        default_factory=lambda: [
            MxHost(host="mailfilter1.example.net", priority=10),
            MxHost(host="mailfilter2.example.net", priority=20),
        ]
    )
    hosting_host: str = "mail.example.net"
    webmail_host: str = "webmail.example.net"
    public_url: str | None = None
    web_secret: SecretStr | None = None
    """Signs the panel's CSRF tokens and the quarantine digests' release links; unset →
    generated once into the data dir. Several web and delivery nodes must share one."""

    recipient_delimiter: str = Field("+", max_length=1, pattern=r"^[+\-_.=]?$")
    """Sub-addressing: mail to ``bob+news@`` goes to ``bob@`` unless ``bob+news@`` is an
    address of its own (empty: off)."""
    default_quota_mb: int = Field(2048, ge=0)
    password_min_length: int = Field(8, ge=6, le=128)
    argon2_time_cost: int = Field(2, ge=1)
    argon2_memory_kib: int = Field(19456, ge=8)
    argon2_parallelism: int = Field(1, ge=1)
    auth_failures_per_window: int = Field(10, ge=1)
    auth_window_seconds: int = Field(900, ge=1)
    auth_ip_failures_per_window: int = Field(100, ge=1)
    """Failed mailbox logins per client IP (higher: offices share one address)."""

    allow_plaintext_auth: bool = False
    """Let POP3/IMAP/submission logins happen without TLS: loopback binds only (tests, dev)."""
    imap_idle_timeout_seconds: int = Field(1800, ge=60)
    """IMAP autologout after this much client silence (RFC 3501: at least 30 minutes)."""
    imap_max_literal: int | None = Field(None, ge=1024)
    """Largest IMAP literal (APPEND) accepted; unset → ``max_message_size``."""
    preauth_max_literal: int = Field(8192, ge=1024)
    """Largest IMAP literal a client may send before it has logged in."""
    preauth_timeout_seconds: int = Field(60, ge=5)
    """IMAP, POP3 and submission sessions that have not logged in are closed after this
    much client silence."""

    # Connection caps per role: ``[max_connections] mx = 1000`` in TOML,
    # ``MAILWARD_MAX_CONNECTIONS_MX`` in the environment. Beyond them: 421 / BYE / -ERR.
    # ``max_connections_<role>`` is the node's total, shared out evenly among its
    # ``workers`` processes; ``max_connections_per_ip_<role>`` holds in each process.
    max_connections_mx: int = Field(1000, ge=1)
    max_connections_submission: int = Field(500, ge=1)
    max_connections_imap: int = Field(2000, ge=1)
    max_connections_pop3: int = Field(1000, ge=1)
    max_connections_per_ip_mx: int = Field(20, ge=1)
    max_connections_per_ip_submission: int = Field(20, ge=1)
    max_connections_per_ip_imap: int = Field(50, ge=1)
    """IMAP clients keep several connections each, and offices share one address."""
    max_connections_per_ip_pop3: int = Field(20, ge=1)

    # Mail flow
    store_backend: Literal["maildir", "postgresql"] = "maildir"
    """Where mailboxes live: Maildir in the data dir, or the (shared) PostgreSQL database."""
    smtp_hostname: str | None = None
    """This node's name in SMTP greetings, Received: headers and DSNs (default: first MX)."""
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    """PEM files for STARTTLS; unset → a self-signed pair generated under ``data_dir/tls``."""
    max_message_size: int = Field(50 * 1024 * 1024, ge=1024)
    max_recipients: int = Field(100, ge=1, le=10000)
    smtp_data_memory_bytes: int = Field(1024 * 1024, ge=0)
    """A message being received over SMTP is kept in memory up to this size, then
    spooled to a temporary file in the data dir (memory per session stays bounded)."""
    postmaster_address: str | None = None
    """Where mail to ``postmaster@`` a served domain (and to ``<postmaster>``) goes when
    the domain does not list a postmaster address itself (RFC 5321 §4.5.1); unset →
    ``postmaster@`` the node name."""
    forward_max_copies: int = Field(50, ge=1, le=10000)
    """Most copies forwarders and auto-cc may make of one message, all levels together."""
    forward_max_depth: int = Field(5, ge=1, le=50)
    """Most forwarders one message may pass through in a chain."""
    allow_private_mail_servers: bool = False
    """Let mail server settings and the DNS tools' ``--server`` name loopback, private or
    link-local addresses (a private network install, tests)."""
    filter_max_parts: int = Field(1000, ge=10)
    filter_max_depth: int = Field(20, ge=2)
    """The spam filter reads at most this many MIME parts, this deep; beyond that the
    message gets a scored finding instead of a full reading."""
    filter_time_budget_seconds: float = Field(10.0, gt=0)
    """CPU-heavy filter checks run off the event loop; one that takes longer gives a
    neutral finding (logged)."""
    smtp_timeout_seconds: int = Field(300, ge=5)
    relay_host: str | None = None
    """Smarthost (HOST[:PORT]) for mail to domains we do not serve; unset → their MX."""
    dns_nameservers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Resolvers for MX lookups (IP or IP:PORT); empty → the system's."""
    dns_authoritative_port: int = Field(53, ge=1, le=65535)
    """Port used to ask a domain's authoritative nameservers directly; tests set a loopback port."""
    dns_timeout_seconds: float = Field(5.0, gt=0)
    """How long the DNS tools wait for an answer before reporting a timeout."""
    dnsbl_zones: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """DNS blocklists to check the operator's MX host addresses against, e.g.
    zen.spamhaus.org; empty → no DNSBL check."""
    spam_filter: bool = True
    """Run the spam filter's checks on the mx tier (authentication, blocklists, rules,
    content model) and add Authentication-Results; off: recipient checks only."""
    filter_dnsbl: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Blocklists of connecting IPs for the spam filter, ``ZONE:POINTS`` (e.g.
    zen.spamhaus.org:6); empty → none asked."""
    filter_rhsbl: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Domain blocklists (HELO, envelope and From domains), ``ZONE:POINTS``."""
    filter_uribl: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Blocklists of link domains in the body, ``ZONE:POINTS``."""
    filter_trusted_arc_sealers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Domains whose ARC seals are trusted (e.g. a mailing list host or forwarder): a
    message they sealed with a valid chain is not penalised for failing DMARC here."""
    filter_tag_score: float = 5.0
    filter_quarantine_score: float = 10.0
    filter_reject_score: float = 15.0
    """Default spam thresholds (domains and addresses may set their own): tag, quarantine,
    reject at DATA."""
    filter_dmarc_reject: Literal["reject", "quarantine", "score"] = "quarantine"
    """Default handling of mail failing DMARC where the sender's domain publishes
    p=reject (domains may set their own): refuse at DATA, quarantine, or only score it."""
    quarantine_retention_days: int = Field(30, ge=1)
    """How long quarantined mail is kept before it is deleted."""
    quarantine_digest_interval_seconds: int = Field(24 * 3600, ge=0)
    """How often each address with new quarantined mail gets a digest with release links
    (delivery role); 0 = never."""
    dns_recheck_interval_seconds: int = Field(6 * 3600, ge=0)
    """How often every domain's DNS check runs again in the background (delivery role);
    the account's admins are emailed when a domain's status changes. 0 = never."""
    notice_from: str | None = None
    """Sender address of the notices mailward emails (default: postmaster@ the node name)."""
    retry_first_seconds: int = Field(60, ge=1)
    retry_factor: float = Field(2.0, ge=1.0)
    retry_max_interval_seconds: int = Field(4 * 3600, ge=1)
    queue_lifetime_seconds: int = Field(5 * 24 * 3600, ge=60)
    delay_warning_seconds: int = Field(4 * 3600, ge=0)
    """Send a delay DSN once mail has waited this long (0 = never)."""
    delivery_concurrency: int = Field(20, ge=1, le=1000)
    queue_poll_seconds: float = Field(5.0, gt=0)

    # Processes (issue 18): ``mailward serve`` runs ``workers`` processes per node.
    workers: int | None = Field(None, ge=1, le=256)
    """Worker processes per node for ``mailward serve`` (default: the number of CPUs)."""
    worker_index: int = Field(0, ge=0)
    """Which worker of this node the process is (set by the supervisor, not by operators);
    queue leases are owned by ``lease_owner``, so a restarted worker frees only its own."""

    # authcache (issue 18): verified mailbox logins skip Argon2 for a while.
    mail_auth_cache_seconds: int = Field(300, ge=0)
    """How long a mailbox password that verified is remembered per process (0: off)."""
    mail_auth_cache_entries: int = Field(10000, ge=0)
    """Most mailbox logins remembered per process (least recently used go first; 0: off)."""

    # relay (issue 18): outgoing SMTP connections kept per destination and reused.
    relay_connection_cache_seconds: float = Field(5.0, ge=0)
    """How long an idle outgoing SMTP connection is kept for the next message (0: off)."""
    relay_connection_cache_per_destination: int = Field(20, ge=0)
    """Most idle outgoing connections kept per destination server (host, port)."""
    relay_connection_cache_total: int = Field(200, ge=0)
    """Most idle outgoing connections kept per process (the longest idle close first)."""
    relay_connection_max_uses: int = Field(100, ge=1)
    """Most messages sent over one outgoing connection before it is closed."""
    relay_connection_max_age_seconds: float = Field(300.0, gt=0)
    """Longest an outgoing connection is reused, counted from its connect."""

    # caches (issue 18): lookups (recipients, routes, domain facts, filter policies) cached
    # per process; a change is seen at once by the process that made it, within a second
    # by every other (mailward.db.generation).
    lookup_cache_entries: int = Field(10000, ge=0)
    """Most answers each lookup cache keeps per process (least recently used go first; 0: off)."""
    lookup_cache_seconds: float = Field(60.0, ge=0)
    """Longest a cached lookup answer is used (a safety net for changes made behind our back)."""
    # webmail sending (issue 19, H3): undo send and send later hold mail in our queue.
    webmail_undo_seconds: int = Field(10, ge=0, le=30)
    """Default undo-send window: sent mail waits this long in the queue (0: off)."""
    webmail_max_upload_bytes: int = Field(25 * 1024 * 1024, ge=1024)
    """Largest total of attachments one webmail message may carry."""
    webmail_send_later_max_days: int = Field(60, ge=1, le=3650)
    """Furthest ahead "send later" may schedule a message."""
    # webmail images (issue 19, H2): the proxy that fetches remote images for a mail body.
    webmail_image_proxy_allow: list[str] = Field(default_factory=list)
    """Private networks the image proxy may still fetch from (JSON list: ["10.1.0.0/16"])."""
    webmail_image_proxy_timeout_seconds: float = Field(5.0, gt=0)
    """Longest one proxied image fetch may take, DNS and redirects included."""
    webmail_image_proxy_max_bytes: int = Field(5 * 1024 * 1024, ge=1024)
    """Largest remote image the proxy passes on."""

    # observability (issue 20): logs, Prometheus metrics, health endpoints.
    log_format: Literal["logfmt", "json", "text"] = "logfmt"
    """Log line format of ``mailward serve``: logfmt (key=value), JSON (one object a line), text."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Least severe log level written by ``mailward serve``."""
    port_metrics: int = Field(2981, ge=0, le=65535)
    """Port of the /metrics, /healthz and /readyz listener (0: any free port)."""
    metrics_bind: str | None = None
    """Address the metrics listener binds (default: ``bind``)."""
    metrics_allow: list[str] = Field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])
    """Networks (CIDR, JSON list) whose clients may read /metrics; others get 403."""
    metrics_token: SecretStr | None = None
    """If set, /metrics also needs ``Authorization: Bearer <token>`` (401 otherwise)."""
    # message trace (issue 20): how long the events of a message's life are kept.
    trace_retention_days: int = Field(30, ge=1)
    """How long trace events (and webmail's sent-mail delivery reports) are kept; the
    dashboard's counters at least 31 days."""
    # virus scanning (issue 21): ClamAV's clamd, asked over INSTREAM for Filter recipients.
    clamd_socket: str | None = None
    """clamd's unix socket path or ``host:port`` (unset: no virus scanning)."""
    clamd_timeout_seconds: float = Field(30.0, gt=0)
    """Longest one scan may take (connect, send, answer); past it the scan failed."""
    clamd_fail_open: bool = True
    """A failed scan (clamd down or slow) delivers with a neutral finding; off: 451, try later."""
    clamd_max_bytes: int = Field(25 * 1024 * 1024, ge=1024)
    """Largest message scanned (clamd's StreamMaxLength ≥ this); larger: unscanned, noted."""
    # per-user learning (issue 21, LEARN): each address remembers its corrections per
    # kind of sender (mailward.filter.personal).
    filter_personal_entries: int = Field(200, ge=1, le=10000)
    """Most sender kinds one address remembers corrections for (the least recent go first)."""
    filter_personal_days: int = Field(180, ge=1)
    """How long a remembered correction counts, from the last one for that sender kind."""
    # bulk mail (issue 21, SIGNALS): newsletters and lists (mailward.filter.bulk); each
    # domain and address may set its own bulk_action / bulk_score in its filter policy.
    filter_bulk_action: Literal["deliver", "tag", "junk"] = "deliver"
    """What bulk mail gets: delivered (``X-Mailward-Bulk: yes``), tagged, or junk (spam tag)."""
    filter_bulk_score: float = -100.0
    """Bulk mail scoring at least this (points) gets the bulk action; the default: all of it."""
    filter_bulk_subject_tag: str = Field("[Bulk]", max_length=40)
    """Put in front of the Subject of bulk mail whose bulk action is ``tag``."""
    # mail migration (issue 22, MIGRATE): copying mailboxes from old IMAP servers
    # (mailward.migrate), run by the delivery role.
    migrate_slice_seconds: float = Field(60.0, gt=0)
    """Longest a worker copies for one migration job before giving other jobs a turn."""
    migrate_slice_messages: int = Field(500, ge=1)
    """Most messages a worker copies for one migration job in one turn."""
    migrate_timeout_seconds: float = Field(60.0, gt=0)
    """Socket timeout towards the old IMAP server (connect, each command)."""
    migrate_poll_seconds: float = Field(5.0, gt=0)
    """How often an idle delivery worker looks for migration jobs to run."""

    # ManageSieve (issue 22, MANAGESIEVE): the "managesieve" role (mailward.managesieve).
    port_managesieve: int = Field(4190, ge=0, le=65535)
    """ManageSieve (RFC 5804, STARTTLS) for mail clients' Sieve editors."""
    max_connections_managesieve: int = Field(500, ge=1)
    """The node's ManageSieve connections at most (shared out among its workers)."""
    max_connections_per_ip_managesieve: int = Field(20, ge=1)
    """ManageSieve connections from one client address at most, in each worker."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = config_path()
        if path is not None:
            sources.append(_SectionedToml(settings_cls, toml_file=path))
        return tuple(sources)

    @field_validator("mx_hosts", mode="before")
    @classmethod
    def _parse_mx_hosts(cls, value: Any) -> Any:
        return parse_mx_hosts(value)

    @field_validator("hosting_host", "webmail_host")
    @classmethod
    def _valid_hostnames(cls, value: str, info: Any) -> str:
        return _hostname(value, info.field_name)

    @field_validator("smtp_hostname")
    @classmethod
    def _valid_smtp_hostname(cls, value: str | None) -> str | None:
        return None if value is None else _hostname(value, "smtp_hostname")

    @field_validator("dns_nameservers", "dnsbl_zones", "filter_dnsbl", "filter_rhsbl",
                     "filter_uribl", "filter_trusted_arc_sealers", mode="before")
    @classmethod
    def _parse_nameservers(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("filter_dnsbl", "filter_rhsbl", "filter_uribl")
    @classmethod
    def _zone_points(cls, value: list[str], info: Any) -> list[str]:
        for entry in value:
            zone, _, points = entry.rpartition(":")
            try:
                float(points)
            except ValueError:
                zone = ""
            if not zone:
                raise ValueError(f"{info.field_name}: {entry!r} is not ZONE:POINTS")
        return value

    @model_validator(mode="after")
    def _checks(self) -> Settings:
        if not self.mx_hosts:
            raise ValueError("mx_hosts: at least one MX host is needed")
        names = [mx.host for mx in self.mx_hosts]
        if len(set(names)) != len(names):
            raise ValueError("mx_hosts: a host is listed twice")
        self.mx_hosts.sort(key=lambda mx: (mx.priority, mx.host))
        if self.store_backend == "postgresql" and not self.db_url.startswith("postgresql"):
            raise ValueError("store_backend: 'postgresql' needs a PostgreSQL database_url")
        if self.allow_plaintext_auth and not _is_loopback(self.bind):
            raise ValueError("allow_plaintext_auth: only when bind is a loopback address")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("tls_cert_file and tls_key_file: set both or neither")
        return self

    @property
    def db_url(self) -> str:
        """The SQLAlchemy URL; SQLite in the data dir unless one is configured."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'mailward.db'}"

    @property
    def node_name(self) -> str:
        """The name this node uses in SMTP (greeting, Received:, Reporting-MTA)."""
        return self.smtp_hostname or self.mx_hosts[0].host

    @property
    def lease_owner(self) -> str:
        """Who owns this process's queue leases: the node name and the worker index."""
        return f"{self.node_name}/{self.worker_index}"

    @property
    def postmaster(self) -> str:
        """Where ``postmaster@`` mail of domains without their own postmaster goes."""
        return self.postmaster_address or f"postmaster@{self.node_name}"

    def connection_caps(self, role: str) -> tuple[int, int]:
        """``(total, per client address)`` connection caps of a listening role."""
        return (getattr(self, f"max_connections_{role}"),
                getattr(self, f"max_connections_per_ip_{role}"))

    @property
    def notice_sender(self) -> str:
        """The From: address of mailward's own notices (DNS status changes)."""
        return self.notice_from or f"postmaster@{self.node_name}"

    @property
    def tls_files(self) -> tuple[Path, Path]:
        """Certificate and key for STARTTLS (configured, or the generated pair)."""
        if self.tls_cert_file and self.tls_key_file:
            return self.tls_cert_file, self.tls_key_file
        return self.data_dir / "tls" / "cert.pem", self.data_dir / "tls" / "key.pem"

    def retry_delay(self, attempts: int) -> float:
        """Seconds before the next try after ``attempts`` failed ones (exponential)."""
        delay = self.retry_first_seconds * self.retry_factor ** max(attempts - 1, 0)
        return float(min(delay, self.retry_max_interval_seconds))

    @property
    def operator_credentials_file(self) -> Path:
        """Where ``mailward init`` leaves the first operator's login (mode 0600)."""
        return self.data_dir / "initial-operator.txt"

    @property
    def web_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.bind in ("0.0.0.0", "::", "") else self.bind
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port_web}"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class _SectionedToml(TomlConfigSettingsSource):
    """The TOML file, where a table names the prefix of its keys: ``[dns] nameservers``
    is ``dns_nameservers``, ``[port] web`` is ``port_web`` (flat keys work as well)."""

    def _read_file(self, file_path: Path | Traversable) -> dict[str, Any]:
        flat: dict[str, Any] = {}
        for key, value in super()._read_file(file_path).items():
            if isinstance(value, dict):
                flat.update({f"{key}_{inner}": item for inner, item in value.items()})
            else:
                flat[key] = value
        return flat


def config_path() -> Path | None:
    """The TOML file to read: ``MAILWARD_CONFIG`` (must exist) or ``./mailward.toml``."""
    explicit = os.environ.get("MAILWARD_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"MAILWARD_CONFIG: no such file: {path}")
        return path
    default = Path("mailward.toml")
    return default if default.is_file() else None


def load_settings(**overrides: Any) -> Settings:
    """Load settings, turning validation failures into one readable ``ConfigError``."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
    except ValueError as exc:  # TOML syntax errors and the like
        raise ConfigError(f"invalid configuration: {exc}") from None
