"""``/domains``: customer domains (creating, switching hosting, deleting: operator only;
verifying: the domain's owner by DNS proof, an operator also without); each domain's
catch-all and alias domains (the domain's owner; an alias receives mail once verified)."""

from __future__ import annotations

from dataclasses import dataclass

from litestar import Controller, delete, get, patch, post, put
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK

from mailward.core.actor import Actor
from mailward.core.errors import NotFound
from mailward.core.normalize import normalize_domain
from mailward.directory.aliases import (
    AliasService,
    AliasVerification,
    CatchAllView,
    DomainAliasView,
)
from mailward.directory.views import DomainView
from mailward.dkim import DkimRecordView, DkimService
from mailward.dns.verify import Verification, find_proof, verify_domain
from mailward.web.api.schemas import (
    DomainCreate,
    DomainDeleted,
    DomainPatch,
    DomainVerify,
    errors,
)
from mailward.web.context import ActorDep, ServicesDep, WebDep


@dataclass
class CatchAllSet:
    """``address``: one of the domain's mailboxes or forwarders; ``null`` turns it off."""

    address: str | None = None


@dataclass
class AliasCreate:
    alias: str


@dataclass
class AliasVerify:
    operator: bool = False


class DomainController(Controller):
    path = "/domains"
    tags = ["domains"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get(summary="List domains, optionally of one account", responses=errors())
    async def list_domains(
        self, actor: ActorDep, services: ServicesDep, account: FromQuery[str | None] = None
    ) -> list[DomainView]:
        return await services.domains.list(actor, account)

    @post(summary="Add a domain to an account (operator)", responses=errors(403, 404, 409))
    async def create_domain(
        self, data: JSONBody[DomainCreate], actor: ActorDep, services: ServicesDep
    ) -> DomainView:
        return await services.domains.create(
            actor, data.name, account=data.account, hosting=data.hosting
        )

    @get("/{name:str}", summary="One domain", responses=errors(404))
    async def get_domain(
        self, name: FromPath[str], actor: ActorDep, services: ServicesDep
    ) -> DomainView:
        return await services.domains.get(actor, name)

    @patch("/{name:str}", summary="Switch hosting on or off (operator)", responses=errors(403, 404))
    async def update_domain(
        self,
        name: FromPath[str],
        data: JSONBody[DomainPatch],
        actor: ActorDep,
        services: ServicesDep,
    ) -> DomainView:
        return await services.domains.set_hosting(actor, name, data.hosting)

    @post(
        "/{name:str}/verify",
        status_code=HTTP_200_OK,
        summary="Check DNS now for the domain's proof of control (its TXT token, or MX "
                "records naming our filtering hosts); operator=true marks it verified "
                "(operator)",
        description="Until a domain is verified, mail from other customers to it goes to "
                    "its public MX, not to its mail server settings. `verified` says whether "
                    "it is now, `detail` what DNS showed, `record` the TXT record to publish.",
        responses=errors(403, 404),
    )
    async def verify(
        self,
        name: FromPath[str],
        actor: ActorDep,
        services: ServicesDep,
        web: WebDep,
        data: JSONBody[DomainVerify | None] = None,
    ) -> Verification:
        operator = data.operator if data is not None else False
        return await verify_domain(services.directory, web.settings, actor, name, operator=operator)

    @delete(
        "/{name:str}",
        status_code=HTTP_200_OK,
        summary="Delete a domain (operator); with addresses on it only when force=true",
        responses=errors(403, 404, 409),
    )
    async def delete_domain(
        self,
        name: FromPath[str],
        actor: ActorDep,
        services: ServicesDep,
        force: FromQuery[bool] = False,
    ) -> DomainDeleted:
        count = await services.domains.delete(actor, name, force=force)
        return DomainDeleted(deleted=normalize_domain(name), addresses_deleted=count)

    @get("/{name:str}/dkim", summary="The DKIM TXT record to publish", responses=errors(404))
    async def get_dkim(
        self, name: FromPath[str], actor: ActorDep, services: ServicesDep
    ) -> DkimRecordView:
        return await DkimService(services.db).record(actor, name)

    @post(
        "/{name:str}/dkim/rotate",
        status_code=HTTP_200_OK,
        summary="New DKIM key under a new selector (signs at once; publish its record)",
        responses=errors(404, 409),
    )
    async def rotate_dkim(
        self, name: FromPath[str], actor: ActorDep, services: ServicesDep
    ) -> DkimRecordView:
        return await DkimService(services.db).rotate(actor, name)

    @get("/{name:str}/catch-all", summary="The domain's catch-all address (null: off)",
         responses=errors(404))
    async def get_catch_all(
        self, name: FromPath[str], actor: ActorDep, services: ServicesDep
    ) -> CatchAllView:
        return await AliasService(services.db).catch_all(actor, name)

    @put(
        "/{name:str}/catch-all",
        summary="Set the domain's catch-all to one of its addresses, or off (address null)",
        description="A catch-all accepts every unlisted name at the domain, so it receives "
                    "the spam of dictionary attacks. Audit-logged.",
        responses=errors(400, 404, 409),
    )
    async def set_catch_all(
        self, name: FromPath[str], data: JSONBody[CatchAllSet], actor: ActorDep,
        services: ServicesDep,
    ) -> CatchAllView:
        return await AliasService(services.db).set_catch_all(actor, name, data.address)

    @get("/{name:str}/aliases", summary="The domain's alias domains", responses=errors(404))
    async def list_aliases(
        self, name: FromPath[str], actor: ActorDep, services: ServicesDep
    ) -> list[DomainAliasView]:
        return await AliasService(services.db).aliases(actor, name)

    @post(
        "/{name:str}/aliases",
        summary="Add an alias domain (it receives mail once verified; an operator's at once)",
        responses=errors(400, 404, 409),
    )
    async def add_alias(
        self, name: FromPath[str], data: JSONBody[AliasCreate], actor: ActorDep,
        services: ServicesDep,
    ) -> DomainAliasView:
        return await AliasService(services.db).add_alias(actor, name, data.alias)

    @post(
        "/{name:str}/aliases/{alias:str}/verify",
        status_code=HTTP_200_OK,
        summary="Check DNS now for the alias's proof of control (its TXT token, or MX "
                "records naming our filtering hosts); operator=true marks it verified",
        responses=errors(403, 404),
    )
    async def verify_alias(
        self, name: FromPath[str], alias: FromPath[str], actor: ActorDep,
        services: ServicesDep, web: WebDep, data: JSONBody[AliasVerify | None] = None,
    ) -> AliasVerification:
        aliases = AliasService(services.db)
        await self._alias_of(aliases, actor, name, alias)
        settings = web.settings
        return await aliases.verify_alias(
            actor, alias, lambda view: find_proof(settings, view),
            operator=data.operator if data is not None else False)

    @delete("/{name:str}/aliases/{alias:str}", status_code=HTTP_200_OK,
            summary="Remove an alias domain", responses=errors(404))
    async def delete_alias(
        self, name: FromPath[str], alias: FromPath[str], actor: ActorDep,
        services: ServicesDep,
    ) -> DomainAliasView:
        aliases = AliasService(services.db)
        await self._alias_of(aliases, actor, name, alias)
        return await aliases.remove_alias(actor, alias)

    @staticmethod
    async def _alias_of(aliases: AliasService, actor: Actor, name: str, alias: str
                        ) -> DomainAliasView:
        """The caller's alias ``alias`` of domain ``name`` (NotFound otherwise)."""
        view = await aliases.get_alias(actor, alias)
        if view.domain != normalize_domain(name):
            raise NotFound(f"no alias {view.alias} of {name}")
        return view
