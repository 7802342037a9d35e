"""``/domains/{name}/servers``: mail server settings of a domain (docs/procedures.md)."""

from __future__ import annotations

from dataclasses import dataclass

from litestar import Controller, Response, delete, get, patch, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from mailward.directory import InvalidInput
from mailward.routing import MailServerView
from mailward.routing.servers import HOSTING_SETUP_DONE
from mailward.web.api.schemas import ServerCreate, ServerPatch, errors
from mailward.web.context import ActorDep, ServicesDep

HELD_WARNING = (
    '199 mailward "no mail server settings: mail for this domain is held until one is added"'
)


@dataclass(frozen=True, slots=True)
class HostingSetup:
    message: str
    servers: list[MailServerView]


class ServerController(Controller):
    path = "/domains/{name:str}/servers"
    tags = ["mail servers"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get(
        summary="A domain's mail servers, lowest preference first",
        description="With none, the answer carries a `Warning` header: the domain's mail "
        "is held (deferred) until a server is added.",
        responses=errors(404),
    )
    async def list_servers(
        self, name: FromPath[str], actor: ActorDep, services: ServicesDep
    ) -> Response[list[MailServerView]]:
        views = await services.servers.list(actor, name)
        headers = {} if views else {"Warning": HELD_WARNING}
        return Response(views, headers=headers)

    @post(
        status_code=HTTP_201_CREATED,
        summary="Add a mail server (FQDN or IP, optional port, preference 0-65535)",
        responses=errors(404, 409),
    )
    async def add_server(
        self,
        name: FromPath[str],
        data: JSONBody[ServerCreate],
        actor: ActorDep,
        services: ServicesDep,
    ) -> MailServerView:
        view = await services.servers.add(
            actor, name, data.server, preference=data.preference, port=data.port
        )
        return view

    @post(
        "/auto-configure",
        status_code=HTTP_200_OK,
        summary="Deliver to the hosting servers: replaces every server of the domain",
        responses=errors(404, 409),
    )
    async def auto_configure(
        self, name: FromPath[str], actor: ActorDep, services: ServicesDep
    ) -> HostingSetup:
        views = await services.servers.auto_configure_hosting(actor, name)
        return HostingSetup(HOSTING_SETUP_DONE, views)

    @patch(
        "/{server:str}",
        summary="Change a server's host, port or preference",
        description="`server` is `HOST` or `HOST:PORT` (IPv6 as `[address]:port`).",
        responses=errors(404, 409),
    )
    async def edit_server(
        self,
        name: FromPath[str],
        server: FromPath[str],
        data: JSONBody[ServerPatch],
        actor: ActorDep,
        services: ServicesDep,
    ) -> MailServerView:
        if data.host is None and data.port is None and data.preference is None:
            raise InvalidInput('nothing to change: give "host", "port" or "preference"')
        view = await services.servers.edit(
            actor, name, server, host=data.host, port=data.port, preference=data.preference
        )
        return view

    @delete(
        "/{server:str}",
        status_code=HTTP_200_OK,
        summary="Remove a mail server",
        responses=errors(404),
    )
    async def delete_server(
        self,
        name: FromPath[str],
        server: FromPath[str],
        actor: ActorDep,
        services: ServicesDep,
    ) -> MailServerView:
        return await services.servers.delete(actor, name, server)
