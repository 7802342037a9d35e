"""``/addresses``: search, add one, bulk add, read, delete (one, several, all matching)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, delete, get, post
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_422_UNPROCESSABLE_ENTITY

from mailward.db.models import AddressKind, AddressList
from mailward.directory import AddressFilter, InvalidInput, LineStatus
from mailward.directory.addresses import MAX_PER_PAGE
from mailward.directory.bulk_add import LineResult
from mailward.directory.mail_login import LoginLockView
from mailward.directory.views import AddressView
from mailward.web.api.schemas import (
    AddInvalid,
    AddressCreate,
    AddressDelete,
    AddressPage,
    BulkAdd,
    BulkOut,
    DeletedOut,
    errors,
    joined,
    out,
)
from mailward.web.context import ActorDep, ServicesDep


class AddressController(Controller):
    path = "/addresses"
    tags = ["addresses"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get(summary="Search addresses, a page at a time", responses=errors())
    async def search_addresses(
        self,
        actor: ActorDep,
        services: ServicesDep,
        search: Annotated[str, QueryParameter(description="part of the address")] = "",
        domain: FromQuery[str | None] = None,
        list_: Annotated[AddressList | None, QueryParameter(name="list")] = None,
        kind: FromQuery[AddressKind | None] = None,
        page: Annotated[int, QueryParameter(ge=1)] = 1,
        per_page: Annotated[int, QueryParameter(ge=1, le=MAX_PER_PAGE)] = 50,
    ) -> AddressPage:
        criteria = AddressFilter(search=search, domain=domain, list=list_, kind=kind)
        found = await services.addresses.search(actor, criteria, page=page, per_page=per_page)
        return out(found, AddressPage)

    @post(
        summary="Add (or move) one address",
        description="Same rules as one line of a bulk add: a password makes a mailbox, "
        "destinations a forwarder, neither an address that still needs setting up. "
        "An address already on the other list is moved (status 'updated').",
        responses={
            **errors(),
            HTTP_422_UNPROCESSABLE_ENTITY: ResponseSpec(
                data_container=AddInvalid, description="the address was refused (reason given)"
            ),
        },
    )
    async def add_address(
        self, data: JSONBody[AddressCreate], actor: ActorDep, services: ServicesDep
    ) -> Response[LineResult | AddInvalid]:
        result = await services.bulk.add_one(
            actor,
            data.address,
            data.list_,
            password=data.password,
            destinations=None if data.destinations is None else joined(data.destinations),
        )
        if result.status is LineStatus.INVALID:
            body = AddInvalid(error=result.reason or "invalid", result=result)
            return Response(body, status_code=HTTP_422_UNPROCESSABLE_ENTITY)
        return Response(result, status_code=HTTP_201_CREATED)

    @post(
        "/bulk",
        status_code=HTTP_200_OK,
        summary="Bulk add: one address per line, all to one list",
        description="Line formats: `address`, `address|password`, "
        "`address|destination[,destination...]|relay`. Every non-blank line gets a result: "
        "invalid (with reason), added, updated (moved from the other list) or unchanged.",
        responses=errors(),
    )
    async def bulk_add(
        self, data: JSONBody[BulkAdd], actor: ActorDep, services: ServicesDep
    ) -> BulkOut:
        result = await services.bulk.add_lines(actor, data.text, data.list_)
        return BulkOut(
            list_=result.list,
            counts=result.counts,
            results=result.results,
        )

    @post(
        "/delete",
        status_code=HTTP_200_OK,
        summary="Delete several addresses, or every address a search matches",
        description='Send {"addresses": [...]} (all or none are deleted), or search '
        'criteria with "all": true to delete every match.',
        responses=errors(404),
    )
    async def delete_addresses(
        self, data: JSONBody[AddressDelete], actor: ActorDep, services: ServicesDep
    ) -> DeletedOut:
        criteria = AddressFilter(
            search=data.search, domain=data.domain, list=data.list_, kind=data.kind
        )
        if data.addresses is not None:
            if data.all or criteria != AddressFilter():
                raise InvalidInput('give either "addresses" or search criteria, not both')
            deleted = await services.addresses.delete(actor, data.addresses)
            return DeletedOut(deleted=len(deleted), addresses=deleted)
        if not data.all:
            raise InvalidInput(
                'to delete every address matching the search, send "all": true '
                '(or list them in "addresses")'
            )
        return DeletedOut(deleted=await services.addresses.delete_matching(actor, criteria))

    @get("/{email:str}", summary="One address", responses=errors(404))
    async def get_address(
        self, email: FromPath[str], actor: ActorDep, services: ServicesDep
    ) -> AddressView:
        return await services.addresses.get(actor, email)

    @get("/{email:str}/login-lock", summary="Is the mailbox login locked after failed "
         "attempts (POP3, IMAP, submission)?", responses=errors(404))
    async def get_login_lock(
        self, email: FromPath[str], actor: ActorDep, services: ServicesDep
    ) -> LoginLockView:
        return await services.mail_login.lock_state(actor, services.addresses, email)

    @delete("/{email:str}/login-lock", status_code=HTTP_200_OK,
            summary="Clear the mailbox login lock", responses=errors(404))
    async def clear_login_lock(
        self, email: FromPath[str], actor: ActorDep, services: ServicesDep
    ) -> LoginLockView:
        return await services.mail_login.unlock(actor, services.addresses, email)

    @delete(
        "/{email:str}",
        status_code=HTTP_200_OK,
        summary="Delete one address",
        responses=errors(404),
    )
    async def delete_address(
        self, email: FromPath[str], actor: ActorDep, services: ServicesDep
    ) -> DeletedOut:
        deleted = await services.addresses.delete(actor, [email])
        return DeletedOut(deleted=len(deleted), addresses=deleted)
