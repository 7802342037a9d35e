"""``/domains``: customer domains (creating, switching hosting, deleting: operator only)."""

from __future__ import annotations

from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK

from mailward.directory.normalize import normalize_domain
from mailward.directory.views import DomainView
from mailward.dkim import DkimRecordView, DkimService
from mailward.web.api.schemas import DomainCreate, DomainDeleted, DomainPatch, errors
from mailward.web.context import ActorDep, DirectoryDep


class DomainController(Controller):
    path = "/domains"
    tags = ["domains"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get(summary="List domains, optionally of one account", responses=errors())
    async def list_domains(
        self, actor: ActorDep, directory: DirectoryDep, account: FromQuery[str | None] = None
    ) -> list[DomainView]:
        return await directory.domains.list(actor, account)

    @post(summary="Add a domain to an account (operator)", responses=errors(403, 404, 409))
    async def create_domain(
        self, data: JSONBody[DomainCreate], actor: ActorDep, directory: DirectoryDep
    ) -> DomainView:
        return await directory.domains.create(
            actor, data.name, account=data.account, hosting=data.hosting
        )

    @get("/{name:str}", summary="One domain", responses=errors(404))
    async def get_domain(
        self, name: FromPath[str], actor: ActorDep, directory: DirectoryDep
    ) -> DomainView:
        return await directory.domains.get(actor, name)

    @patch("/{name:str}", summary="Switch hosting on or off (operator)", responses=errors(403, 404))
    async def update_domain(
        self,
        name: FromPath[str],
        data: JSONBody[DomainPatch],
        actor: ActorDep,
        directory: DirectoryDep,
    ) -> DomainView:
        return await directory.domains.set_hosting(actor, name, data.hosting)

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
        directory: DirectoryDep,
        force: FromQuery[bool] = False,
    ) -> DomainDeleted:
        count = await directory.domains.delete(actor, name, force=force)
        return DomainDeleted(deleted=normalize_domain(name), addresses_deleted=count)

    @get("/{name:str}/dkim", summary="The DKIM TXT record to publish", responses=errors(404))
    async def get_dkim(
        self, name: FromPath[str], actor: ActorDep, directory: DirectoryDep
    ) -> DkimRecordView:
        return await DkimService(directory.db).record(actor, name)

    @post(
        "/{name:str}/dkim/rotate",
        status_code=HTTP_200_OK,
        summary="New DKIM key under a new selector (signs at once; publish its record)",
        responses=errors(404, 409),
    )
    async def rotate_dkim(
        self, name: FromPath[str], actor: ActorDep, directory: DirectoryDep
    ) -> DkimRecordView:
        return await DkimService(directory.db).rotate(actor, name)
