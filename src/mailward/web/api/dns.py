"""``/dns``: DNS lookups (docs/procedures.md); ``/domains/{name}/dns-records``: records
to publish; ``/domains/{name}/dns-check``: the check of what was published;
``/domains/{name}/cutover``: whether the domain can be switched to hosting;
``/dns-status`` and ``/domains/{name}/dns-status``: the scheduled re-checks' results."""

from __future__ import annotations

from litestar import Controller, get
from litestar.params import FromPath, FromQuery

from mailward.directory import InvalidInput
from mailward.dns.check import DomainCheck
from mailward.dns.cutover import Readiness, cutover_readiness
from mailward.dns.lookup import DnsTools
from mailward.dns.model import Lookup
from mailward.dns.recheck import StoredStatus, stored_statuses
from mailward.dns.service import DomainRecords, domain_check, domain_records
from mailward.web.api.schemas import errors
from mailward.web.context import ActorDep, ServicesDep, WebDep

LOOKUP_TYPES = ("MX", "A", "AAAA", "CNAME", "TXT", "NS", "SOA")


class DnsLookupController(Controller):
    path = "/dns"
    tags = ["dns"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get(
        "/{rdtype:str}/{name:str}",
        summary="Look up the records of a name (MX, A, AAAA, CNAME, TXT, NS, SOA)",
        description="Any authenticated user. A lookup that finds nothing is still a 200: "
        "`outcome` says why (`nxdomain`, `no-answer`, `timeout`, `servfail`). `server` "
        "(`IP` or `IP:PORT`) asks that server directly instead of the configured resolvers.",
        responses=errors(),
    )
    async def lookup(
        self,
        rdtype: FromPath[str],
        name: FromPath[str],
        web: WebDep,
        server: FromQuery[str | None] = None,
    ) -> Lookup:
        kind = rdtype.strip().upper()
        if kind not in LOOKUP_TYPES:
            raise InvalidInput(
                f"unsupported record type {rdtype!r}: use one of {', '.join(LOOKUP_TYPES)}"
            )
        try:
            return await DnsTools(web.settings).lookup(name, kind, server=server or None)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None


class DnsStatusController(Controller):
    path = "/dns-status"
    tags = ["dns"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get(
        "/",
        summary="The latest scheduled DNS check of each of your domains",
        description="Every domain is checked again every `dns_recheck_interval_seconds` "
        "in the background; the account's admins are emailed when its status changes. "
        "`status` is `null` until the first check; `problems` are its warn/fail items.",
        responses=errors(),
    )
    async def statuses(self, actor: ActorDep, services: ServicesDep) -> list[StoredStatus]:
        return await stored_statuses(services.directory, actor)


class DnsRecordsController(Controller):
    """Per-domain DNS routes: ``dns-records``, ``dns-check`` and ``cutover`` (account-scoped,
    404 else)."""

    path = "/domains/{name:str}"
    tags = ["dns"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get(
        "/dns-records",
        summary="The DNS records to publish for a domain (zone lines and registrar rows)",
        responses=errors(404),
    )
    async def dns_records(
        self, name: FromPath[str], actor: ActorDep, services: ServicesDep, web: WebDep
    ) -> DomainRecords:
        return await domain_records(services.directory, web.settings, actor, name)

    @get(
        "/dns-check",
        summary="Check the domain's DNS: MX set, propagation, client names, SPF/DKIM/DMARC",
        description="A checklist of `pass` / `warn` / `fail` items, each with a one-line "
        "`fix`; `status` is the worst of them. The lookups go out to DNS, so this can take "
        "up to the configured DNS timeout.",
        responses=errors(404),
    )
    async def dns_check(
        self, name: FromPath[str], actor: ActorDep, services: ServicesDep, web: WebDep
    ) -> DomainCheck:
        return await domain_check(services.directory, web.settings, actor, name)

    @get(
        "/cutover",
        summary="Whether the domain can be switched to hosting now, and what blocks it",
        description="Throwing the switch to hosting: `ready` when hosting is "
        "on, the MX set is exactly our filtering hosts and has propagated to every "
        "nameserver and resolver, and every address has a password or destinations. "
        "`blockers` and `warnings` are `{kind, message, fix}`; `switched` when the mail "
        "server settings already point at the hosting host. Asks DNS, so this can take up "
        "to the configured DNS timeout.",
        responses=errors(404),
    )
    async def cutover(
        self, name: FromPath[str], actor: ActorDep, services: ServicesDep, web: WebDep
    ) -> Readiness:
        return await cutover_readiness(services.directory, services.servers, web.settings,
                                       actor, name)

    @get(
        "/dns-status",
        summary="The latest scheduled DNS check of a domain (stored; asks no DNS)",
        responses=errors(404),
    )
    async def dns_status(
        self, name: FromPath[str], actor: ActorDep, services: ServicesDep
    ) -> StoredStatus:
        return (await stored_statuses(services.directory, actor, name))[0]
