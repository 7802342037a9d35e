"""Relay to another SMTP server (a customer's, or the MX of a foreign domain).

Hops are tried in order. A connection failure or a 4xx moves the recipients still open
to the next hop; a 5xx is final for the recipients it concerns. STARTTLS is used whenever
offered (opportunistic: customers' servers often have self-signed certificates).

Unless ``allow_private`` (``allow_private_mail_servers``), a hop is never connected to at
a loopback, private, link-local or other non-public address: a host name is resolved here
(through the configured resolvers) and only its public addresses are tried; a hop with
none is a deferral saying why (a customer must not make us connect into the operator's
own network). The operator's own smarthost (``relay_host``) is exempt.

Connections are reused (:mod:`mailward.queue.connections`): after a transaction the
session goes back to the relay's cache, RSET first unless the message was taken, and the
next message to the same server takes it. A reused connection that turns out dead before
any message data went over it (the server closed it, a 421, a timeout, a 4xx to MAIL) is
dropped and the delivery made again, once, on a fresh connection: a stale cached
connection never defers mail. ``aclose`` QUITs the idle connections at shutdown.

Each outcome names the address connected to and how long its attempt took (``ip``,
``duration_ms``: what the message trace shows of it).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiosmtplib
import dns.exception
import dns.resolver

from mailward.net.resolver import make_resolver, private_address
from mailward.queue.connections import (
    Connection,
    ConnectionCache,
    Destination,
    quit_politely,
)
from mailward.queue.outcome import Outcome
from mailward.routing.routes import Hop

RESOLVER_CACHE_ENTRIES = 10_000  # host names whose addresses are kept for their TTL
_STATUS = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(frozen=True, slots=True)
class Envelope:
    """What to send to each hop."""

    sender: str
    recipients: Sequence[tuple[str, str | None, str | None]]  # (address, orcpt, notify)
    data: bytes
    smtputf8: bool = False
    envid: str | None = None
    ret: str | None = None


def reply_outcome(code: int, message: str, hop: Hop) -> Outcome:
    """Turn a remote reply into an outcome, keeping its enhanced status if it gave one."""
    text = " ".join(message.split())
    found = _STATUS.match(text)
    status = found.group(0) if found else f"{str(code)[0]}.0.0"
    detail = f"{code} {text}"
    if code >= 500:
        return Outcome.failed(status, detail, remote_mta=hop.name or hop.host)
    return Outcome.deferred(status, detail, remote_mta=hop.name or hop.host)


def _xtext(value: str) -> str:
    """RFC 3461 xtext encoding for ENVID/ORCPT."""
    return "".join(
        c if 33 <= ord(c) <= 126 and c not in "+=" else f"+{ord(c):02X}" for c in value
    )


@dataclass(slots=True)
class _Progress:
    """How far a transaction got: whether message data may have been sent, whether it
    ended with the message taken (the session is clean then), whether MAIL got a 4xx."""

    data_sent: bool = False
    clean: bool = False
    mail_deferred: bool = False


class Relay:
    def __init__(self, *, helo: str, timeout: float, allow_private: bool = True,
                 nameservers: Sequence[str] = (), cache: ConnectionCache | None = None
                 ) -> None:
        self.helo = helo
        self.timeout = timeout
        self.allow_private = allow_private
        self.cache = cache if cache is not None else ConnectionCache()
        self.resolver = None if allow_private else make_resolver(nameservers)
        if self.resolver is not None:  # one lookup per host per TTL, not per message
            self.resolver.cache = dns.resolver.LRUCache(RESOLVER_CACHE_ENTRIES)

    async def send(self, hops: Sequence[Hop], envelope: Envelope) -> dict[str, Outcome]:
        """Deliver to the first hop that takes each recipient; one outcome per address."""
        outcomes: dict[str, Outcome] = {}
        open_ = list(envelope.recipients)
        for hop in hops:
            for target in await self._targets(hop):
                if not open_:
                    break
                if isinstance(target, Outcome):  # refused: not connected to
                    outcomes.update({r[0]: target for r in open_})
                    continue
                results = await self._attempt(target, envelope, open_)
                outcomes.update(results)
                open_ = [r for r in open_ if outcomes[r[0]].result == "deferred"]
        return outcomes

    async def _targets(self, hop: Hop) -> list[Hop | Outcome]:
        """Where to connect for ``hop``: itself, or (private addresses refused) its public
        addresses, or the refusal as a deferral."""
        if self.allow_private or self.resolver is None or hop.trusted:
            return [hop]
        name = hop.name
        try:
            addresses = [str(ipaddress.ip_address(hop.host))]
        except ValueError:
            addresses, name = [], hop.name or hop.host
            for rdtype in ("A", "AAAA"):
                try:
                    answer = await self.resolver.resolve(hop.host, rdtype)
                except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
                    continue
                except (dns.exception.DNSException, OSError) as exc:
                    return [Outcome.deferred("4.4.3", f"address lookup for {hop} failed: "
                                                      f"{_reason(exc)}")]
                addresses += [str(r.address) for r in answer]
        public = [Hop(a, hop.port, name=name) for a in addresses if not private_address(a)]
        if public:
            return list(public)
        if not addresses:
            return [Outcome.deferred("4.4.4", f"{hop}: the host name has no address")]
        why = "; ".join(filter(None, (private_address(a) for a in addresses)))
        return [Outcome.deferred(
            "4.7.0", f"not connecting to {hop}: {why} (allow_private_mail_servers is off)",
            remote_mta=hop.name or hop.host)]

    async def aclose(self) -> None:
        """QUIT and close the idle connections; none are kept afterwards (shutdown)."""
        await self.cache.aclose()

    async def _attempt(
        self, hop: Hop, envelope: Envelope, recipients: list[tuple[str, str | None, str | None]]
    ) -> dict[str, Outcome]:
        started = time.monotonic()
        destination = Destination(hop.host, hop.port, hop.name, self.helo)
        cached = self.cache.take(destination)
        if cached is not None:
            ip = _peer_ip(cached.smtp, hop)
            outcomes = await self._deliver(cached, hop, envelope, recipients, reused=True)
            if outcomes is not None:
                return _stamped(outcomes, ip, hop.port, started)
        connection = await self._connect(hop, destination)
        if isinstance(connection, Outcome):
            return _stamped({r[0]: connection for r in recipients}, _ip(hop.host), hop.port,
                            started)
        ip = _peer_ip(connection.smtp, hop)
        outcomes = await self._deliver(connection, hop, envelope, recipients, reused=False)
        assert outcomes is not None  # only a reused connection is given up on
        return _stamped(outcomes, ip, hop.port, started)

    async def _connect(self, hop: Hop, destination: Destination) -> Connection | Outcome:
        """A fresh connection to ``hop`` (greeting, EHLO, STARTTLS when offered)."""
        smtp = aiosmtplib.SMTP(
            hostname=hop.host,
            port=hop.port,
            local_hostname=self.helo,
            timeout=self.timeout,
            start_tls=None,
            validate_certs=False,
        )
        try:
            await smtp.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            smtp.close()
            return Outcome.deferred("4.4.1", f"cannot connect to {hop}: {_reason(exc)}",
                                    remote_mta=hop.name or hop.host)
        except BaseException:
            smtp.close()
            raise
        return Connection(smtp, destination)

    async def _deliver(
        self, connection: Connection, hop: Hop, envelope: Envelope,
        recipients: list[tuple[str, str | None, str | None]], *, reused: bool,
    ) -> dict[str, Outcome] | None:
        """One transaction on ``connection``, which is then kept or closed; None when a
        reused connection proved dead before any message data was sent (retry afresh)."""
        smtp = connection.smtp
        connection.uses += 1
        progress = _Progress()
        outcomes: dict[str, Outcome] = {}
        try:
            await self._transaction(smtp, hop, envelope, recipients, outcomes, progress)
        except aiosmtplib.SMTPResponseException as exc:  # MAIL refused, or 4xx/5xx at DATA
            outcome = reply_outcome(exc.code, exc.message, hop)
            outcomes.update({r[0]: outcome for r in recipients if r[0] not in outcomes})
        except (aiosmtplib.SMTPException, OSError) as exc:
            smtp.close()  # a timeout or a broken session: never reused
            failure = Outcome.deferred("4.4.2", f"connection to {hop} failed: {_reason(exc)}",
                                       remote_mta=hop.name or hop.host)
            outcomes.update({r[0]: failure for r in recipients if r[0] not in outcomes})
        except BaseException:  # cancelled mid-transaction: the session state is unknown
            smtp.close()
            raise
        if reused and not progress.data_sent and (
                not smtp.is_connected or progress.mail_deferred):
            smtp.close()
            return None
        await self._release(connection, clean=progress.clean)
        return outcomes

    async def _release(self, connection: Connection, *, clean: bool) -> None:
        """Back to the cache (after RSET unless the transaction ended with the message
        taken), or QUIT."""
        smtp = connection.smtp
        try:
            if not self.cache.reusable(connection) or not self.cache.enabled:
                await quit_politely(smtp)
                return
            if not clean:
                try:
                    await smtp.rset()
                except (aiosmtplib.SMTPException, OSError):
                    smtp.close()
                    return
            if not self.cache.put(connection):
                await quit_politely(smtp)
        except BaseException:  # cancelled while closing or resetting
            smtp.close()
            raise

    async def _transaction(
        self,
        smtp: aiosmtplib.SMTP,
        hop: Hop,
        envelope: Envelope,
        recipients: list[tuple[str, str | None, str | None]],
        outcomes: dict[str, Outcome],
        progress: _Progress,
    ) -> None:
        """Run MAIL/RCPT/DATA, recording final per-recipient outcomes in ``outcomes`` and
        how far it got in ``progress``."""
        dsn = smtp.supports_extension("dsn")
        options = [f"SIZE={len(envelope.data)}"] if smtp.supports_extension("size") else []
        if envelope.smtputf8 and smtp.supports_extension("smtputf8"):
            options.append("SMTPUTF8")
        if smtp.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")
        if dsn and envelope.ret:
            options.append(f"RET={envelope.ret}")
        if dsn and envelope.envid:
            options.append(f"ENVID={_xtext(envelope.envid)}")
        encoding = "utf-8" if envelope.smtputf8 else "ascii"
        try:
            await smtp.mail(envelope.sender, options=options, encoding=encoding)
        except aiosmtplib.SMTPResponseException as exc:
            progress.mail_deferred = 400 <= exc.code < 500
            raise
        accepted: list[str] = []
        for address, orcpt, notify in recipients:
            rcpt_options = []
            if dsn and notify:
                rcpt_options.append(f"NOTIFY={notify}")
            if dsn and orcpt:
                rcpt_options.append(f"ORCPT={_xtext(orcpt)}")
            try:
                await smtp.rcpt(address, options=rcpt_options, encoding=encoding)
            except aiosmtplib.SMTPRecipientRefused as exc:
                outcomes[address] = reply_outcome(exc.code, exc.message, hop)
            else:
                accepted.append(address)
        if accepted:
            progress.data_sent = True  # from here a retry could deliver twice
            response = await smtp.data(envelope.data)
            progress.clean = True
            done = Outcome.delivered(f"{response.code} {' '.join(response.message.split())}",
                                     remote_mta=hop.name or hop.host, relayed=True)
            outcomes.update({address: done for address in accepted})


def _ip(host: str) -> str | None:
    """``host`` if it is an IP address."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def _peer_ip(smtp: aiosmtplib.SMTP, hop: Hop) -> str | None:
    """The address a connected session talks to (for the trace)."""
    transport = smtp.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return _ip(hop.host)


def _stamped(outcomes: dict[str, Outcome], ip: str | None, port: int, started: float
             ) -> dict[str, Outcome]:
    """``outcomes`` with the address and port tried and the attempt's duration (for the
    trace)."""
    duration_ms = int((time.monotonic() - started) * 1000)
    return {address: dataclasses.replace(outcome, ip=ip, port=port, duration_ms=duration_ms)
            for address, outcome in outcomes.items()}


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())[:300]
