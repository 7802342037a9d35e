"""``/addresses/{email}/…``: set up, password, destinations, auto-cc, list."""

from __future__ import annotations

from litestar import Controller, delete, post, put
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK

from mailward.directory import InvalidInput
from mailward.directory.views import AddressView
from mailward.web.api.schemas import (
    AddressSetup,
    DestinationsChange,
    ListChange,
    PasswordChange,
    errors,
    joined,
)
from mailward.web.context import ActorDep, ServicesDep


class AddressEditController(Controller):
    path = "/addresses/{email:str}"
    tags = ["addresses"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @post(
        "/setup",
        status_code=HTTP_200_OK,
        summary="Set up a pending address as a mailbox or a forwarder",
        description='{"kind": "mailbox", "password", "password_repeat"} or '
        '{"kind": "forwarder", "destinations"}.',
        responses=errors(404, 409),
    )
    async def setup(
        self,
        email: FromPath[str],
        data: JSONBody[AddressSetup],
        actor: ActorDep,
        services: ServicesDep,
    ) -> AddressView:
        if data.kind == "mailbox":
            if data.destinations is not None:
                raise InvalidInput("a mailbox takes a password, not destinations")
            if data.password is None or data.password_repeat is None:
                raise InvalidInput('a mailbox needs "password" and "password_repeat"')
            return await services.addresses.setup_mailbox(
                actor, email, data.password, data.password_repeat
            )
        if data.password is not None or data.password_repeat is not None:
            raise InvalidInput("a forwarder takes destinations, not a password")
        if data.destinations is None:
            raise InvalidInput('a forwarder needs "destinations"')
        return await services.addresses.setup_forwarder(actor, email, joined(data.destinations))

    @put("/password", summary="Change a mailbox's password", responses=errors(404, 409))
    async def set_password(
        self,
        email: FromPath[str],
        data: JSONBody[PasswordChange],
        actor: ActorDep,
        services: ServicesDep,
    ) -> AddressView:
        return await services.addresses.set_password(
            actor, email, data.password, data.password_repeat
        )

    @put(
        "/destinations",
        summary="Change a forwarder's (or auto-cc's) destinations",
        responses=errors(404, 409),
    )
    async def set_destinations(
        self,
        email: FromPath[str],
        data: JSONBody[DestinationsChange],
        actor: ActorDep,
        services: ServicesDep,
    ) -> AddressView:
        return await services.addresses.set_destinations(actor, email, joined(data.destinations))

    @put(
        "/autocc",
        summary="Make a mailbox also forward copies (auto-cc)",
        description="A forwarder has no mailbox, so it cannot auto-cc (409).",
        responses=errors(404, 409),
    )
    async def set_autocc(
        self,
        email: FromPath[str],
        data: JSONBody[DestinationsChange],
        actor: ActorDep,
        services: ServicesDep,
    ) -> AddressView:
        return await services.addresses.set_autocc(actor, email, joined(data.destinations))

    @delete(
        "/autocc",
        status_code=HTTP_200_OK,
        summary="Stop auto-cc: the address becomes a plain mailbox",
        responses=errors(404, 409),
    )
    async def remove_autocc(
        self, email: FromPath[str], actor: ActorDep, services: ServicesDep
    ) -> AddressView:
        return await services.addresses.remove_autocc(actor, email)

    @put("/list", summary="Move the address to the other list", responses=errors(404))
    async def set_list(
        self,
        email: FromPath[str],
        data: JSONBody[ListChange],
        actor: ActorDep,
        services: ServicesDep,
    ) -> AddressView:
        return await services.addresses.set_list(actor, email, data.list_)
