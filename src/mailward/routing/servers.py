"""Mail server settings: per domain, FQDN or IP + port + preference (docs/procedures.md).

The MX tier delivers a domain's filtered mail to these servers, lowest preference first.
"Auto-configure" points a hosted domain at the operator's hosting host at preference 0.
Every way in (CLI, API, panel) comes through :class:`ServerService`, which refuses: the
operator's own MX hosts (a loop); the hosting host, by name or by one of its addresses,
for a domain without hosting (hosting cannot be reached without hosting); and
loopback, private, link-local and other non-public addresses unless the operator allows
them (``allow_private_mail_servers``; host names are checked when mail is relayed).
"""

from __future__ import annotations

import asyncio
import builtins
import ipaddress
import re
from dataclasses import dataclass

import dns.exception
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mailward.config import Settings
from mailward.core.actor import Actor
from mailward.core.audit import record
from mailward.core.errors import Conflict, InvalidInput, NotFound
from mailward.db import Database
from mailward.db.models import Domain, MailServer
from mailward.directory.facts import RouteChanged, scoped_domain
from mailward.net.resolver import make_resolver, private_address

DEFAULT_PORT = 25
HOSTING_SETUP_DONE = "Hosting setup done"
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


@dataclass(frozen=True, slots=True)
class MailServerView:
    """A mail server; ``address`` is ``host:port`` (IPv6 bracketed), the form commands take."""

    id: int
    domain: str
    host: str
    port: int
    preference: int
    address: str

    @classmethod
    def of(cls, row: MailServer, domain: str) -> MailServerView:
        return cls(row.id, domain, row.host, row.port, row.preference,
                   server_address(row.host, row.port))


def server_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def normalize_host(text: str) -> str:
    """An IP address (canonical form) or a fully qualified host name (lower-case, ASCII)."""
    raw = text.strip().rstrip(".")
    if not raw:
        raise InvalidInput("mail server is empty: give a host name or an IP address")
    try:
        return str(ipaddress.ip_address(raw.strip("[]")))
    except ValueError:
        pass
    try:
        host = raw.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise InvalidInput(f"{text.strip()!r} is not a valid host name or IP address") from None
    labels = host.split(".")
    if len(labels) < 2 or len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise InvalidInput(
            f"{text.strip()!r} is not a fully qualified host name or an IP address"
        )
    if labels[-1].isdigit():
        raise InvalidInput(f"{text.strip()!r} is not a valid IP address")
    return host


def parse_server(text: str) -> tuple[str, int | None]:
    """Split ``HOST``, ``HOST:PORT``, ``IPv6`` or ``[IPv6]:PORT``; the port may be absent."""
    raw = text.strip()
    port_text = None
    if raw.startswith("["):
        host, sep, rest = raw[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise InvalidInput(f"{raw!r}: write an IPv6 server as [address] or [address]:port")
        port_text = rest[1:] if rest else None
    elif raw.count(":") == 1:
        host, _, port_text = raw.partition(":")
    else:
        host = raw
    return normalize_host(host), None if port_text is None else check_port(port_text)


def check_port(value: str | int) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"port {value!r} is not a number") from None
    if not 1 <= port <= 65535:
        raise InvalidInput(f"port {port} is out of range 1-65535")
    return port


def check_preference(value: str | int) -> int:
    try:
        preference = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"preference {value!r} is not a whole number") from None
    if not 0 <= preference <= 65535:
        raise InvalidInput(f"preference {preference} is out of range 0-65535")
    return preference


class ServerService:
    """Mail server settings of the caller's domains."""

    def __init__(self, db: Database, settings: Settings,
                 on_route_change: RouteChanged | None = None) -> None:
        self.db = db
        self.on_route_change = on_route_change  # e.g. retry the domain's held mail now
        self.settings = settings

    async def list(self, actor: Actor, domain: str) -> list[MailServerView]:
        """A domain's servers in delivery order (preference, then host)."""
        async with self.db.session() as session:
            found = await self._domain(session, actor, domain)
            return await self._views(session, found)

    async def add(
        self, actor: Actor, domain: str, server: str, *, preference: int | str,
        port: int | str | None = None,
    ) -> MailServerView:
        host, parsed_port = parse_server(server)
        port = check_port(port) if port is not None else parsed_port or DEFAULT_PORT
        preference = check_preference(preference)
        async with self.db.session() as session:
            found = await self._domain(session, actor, domain)
            await self._refuse(found, host, port)
            row = MailServer(account_id=found.account_id, domain_id=found.id, host=host,
                             port=port, preference=preference)
            session.add(row)
            record(session, actor, "server.add", found.name, account_id=found.account_id,
                   detail=_described(host, port, preference))
            await self._commit_unique(session, host, port, found.name)
            return MailServerView.of(row, found.name)

    async def edit(
        self, actor: Actor, domain: str, server: str, *, host: str | None = None,
        port: int | str | None = None, preference: int | str | None = None,
    ) -> MailServerView:
        """Change one server (named ``HOST[:PORT]``): its host, port and/or preference."""
        async with self.db.session() as session:
            found = await self._domain(session, actor, domain)
            row = await self._server(session, found, server)
            before = _described(row.host, row.port, row.preference)
            if host is not None:
                new_host, new_port = parse_server(host)
                row.host = new_host
                if new_port is not None:
                    row.port = new_port
            if port is not None:
                row.port = check_port(port)
            if host is not None or port is not None:
                await self._refuse(found, row.host, row.port)
            if preference is not None:
                row.preference = check_preference(preference)
            record(session, actor, "server.edit", found.name, account_id=found.account_id,
                   detail=f"{before} -> {_described(row.host, row.port, row.preference)}")
            await self._commit_unique(session, row.host, row.port, found.name)
            return MailServerView.of(row, found.name)

    async def delete(self, actor: Actor, domain: str, server: str) -> MailServerView:
        async with self.db.session() as session:
            found = await self._domain(session, actor, domain)
            row = await self._server(session, found, server)
            view = MailServerView.of(row, found.name)
            record(session, actor, "server.delete", found.name, account_id=found.account_id,
                   detail=_described(row.host, row.port, row.preference))
            await session.delete(row)
            await session.commit()
            return view

    async def auto_configure_hosting(self, actor: Actor, domain: str
                                     ) -> builtins.list[MailServerView]:
        """Replace the domain's servers with exactly the hosting host at preference 0."""
        async with self.db.session() as session:
            found = await self._domain(session, actor, domain)
            if not found.hosting:
                raise Conflict(f"{found.name} has no hosting: an operator must switch hosting "
                               "on before its mail can be delivered to the hosting servers")
            replaced = [_described(r.host, r.port, r.preference)
                        for r in await self._views(session, found)]
            await session.execute(delete(MailServer).where(MailServer.domain_id == found.id))
            record(session, actor, "hosting.auto-configure", found.name,
                   account_id=found.account_id,
                   detail=f"{_described(self.settings.hosting_host, DEFAULT_PORT, 0)}; replaced: "
                          + (", ".join(replaced) or "none"))
            session.add(MailServer(account_id=found.account_id, domain_id=found.id,
                                   host=self.settings.hosting_host, port=DEFAULT_PORT,
                                   preference=0))
            await self._route_changed(session, found.name)
            await session.commit()
            return await self._views(session, found)

    # -- helpers -------------------------------------------------------------------------

    async def _refuse(self, domain: Domain, host: str, port: int | None) -> None:
        """Raise InvalidInput when ``host`` may not be one of ``domain``'s mail servers."""
        if host in {mx.host for mx in self.settings.mx_hosts}:
            raise InvalidInput(f"{host} is one of this service's MX hosts: delivering the "
                               "filtered mail there would loop; give the customer's own server")
        literal = _ip(host)
        if literal and not self.settings.allow_private_mail_servers:
            why = private_address(literal)
            if why:
                raise InvalidInput(f"mail server {host} refused: {why}; give the customer's "
                                   "server's public address or host name")
        if domain.hosting:
            return
        if host == self.settings.hosting_host.lower() or (literal and (
                literal in await self._hosting_addresses() or self._ours(literal, port))):
            raise InvalidInput(
                f"{host} is this service's hosting host (or one of its own mail listeners), "
                f"and {domain.name} has no hosting: "
                "an operator must switch hosting on (then use auto-configure) before its "
                "mail can be delivered to the hosting servers")

    def _ours(self, address: str, port: int | None) -> bool:
        """Whether ``address:port`` is one of this node's own SMTP listeners."""
        config = self.settings
        ports = {config.port_mx, config.port_submission, config.port_submissions,
                 config.port_submission_alt} - {None, 0}
        bind = _ip(config.bind)
        return (bind is not None and port in ports
                and (address == bind or ipaddress.ip_address(bind).is_unspecified))

    async def _hosting_addresses(self) -> set[str]:
        """The addresses of the hosting host, through the configured resolvers."""
        found: set[str] = set()
        resolver = make_resolver(self.settings.dns_nameservers,
                                 lifetime=self.settings.dns_timeout_seconds)

        async def addresses(rdtype: str) -> list[str]:
            try:
                answer = await resolver.resolve(self.settings.hosting_host, rdtype)
            except (dns.exception.DNSException, OSError):
                return []
            return [str(ipaddress.ip_address(r.address)) for r in answer]

        for each in await asyncio.gather(addresses("A"), addresses("AAAA")):
            found.update(each)
        return found

    async def _domain(self, session: AsyncSession, actor: Actor, name: str) -> Domain:
        return await scoped_domain(session, actor, name)  # the directory decides whose

    async def _route_changed(self, session: AsyncSession, domain: str) -> None:
        """New settings: the hook (the queue's "retry now") runs in this transaction."""
        if self.on_route_change is not None:
            await self.on_route_change(session, domain)

    async def _server(self, session: AsyncSession, domain: Domain, server: str) -> MailServer:
        host, port = parse_server(server)
        query = select(MailServer).where(MailServer.domain_id == domain.id,
                                         MailServer.host == host)
        rows = list(await session.scalars(query))
        if port is not None:
            rows = [row for row in rows if row.port == port]
        if not rows:
            raise NotFound(f"{domain.name} has no mail server {server.strip()!r}")
        if len(rows) > 1:
            raise InvalidInput(f"{host} is listed on several ports: say which, as HOST:PORT")
        return rows[0]

    async def _views(self, session: AsyncSession, domain: Domain
                     ) -> builtins.list[MailServerView]:
        rows = await session.scalars(
            select(MailServer).where(MailServer.domain_id == domain.id)
            .order_by(MailServer.preference, MailServer.host, MailServer.port)
        )
        return [MailServerView.of(row, domain.name) for row in rows]

    async def _commit_unique(
        self, session: AsyncSession, host: str, port: int, domain: str
    ) -> None:
        try:
            await session.flush()
            await self._route_changed(session, domain)
            await session.commit()
        except IntegrityError:
            await session.rollback()
            raise Conflict(f"{domain} already lists mail server {host}:{port}") from None


def _ip(host: str) -> str | None:
    """``host`` in canonical form when it is an IP address literal, else None."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def _described(host: str, port: int, preference: int) -> str:
    """A server as the audit log shows it: ``mx.example.net:25 preference 10``."""
    return f"{server_address(host, port)} preference {preference}"
