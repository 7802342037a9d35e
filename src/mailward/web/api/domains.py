"""``/domains``: customer domains (creating, switching hosting, deleting: operator only;
verifying: the domain's owner by DNS proof, an operator also without)."""

from __future__ import annotations

from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK

from mailward.core.normalize import normalize_domain
from mailward.directory.views import DomainView
from mailward.dkim import DkimRecordView, DkimService
from mailward.dns.verify import Verification, verify_domain
from mailward.web.api.schemas import (
    DomainCreate,
    DomainDeleted,
    DomainPatch,
    DomainVerify,
    errors,
)
from mailward.web.context import ActorDep, ServicesDep, WebDep


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
