"""``/accounts``: customer accounts and their admin users."""

from __future__ import annotations

from litestar import Controller, delete, get, post
from litestar.params import FromPath, JSONBody

from mailward.directory.views import AccountView, UserView
from mailward.web.api.schemas import AccountCreate, UserCreate, errors
from mailward.web.context import ActorDep, ServicesDep


class AccountController(Controller):
    path = "/accounts"
    tags = ["accounts"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get(summary="List accounts (an account admin sees only its own)", responses=errors())
    async def list_accounts(self, actor: ActorDep, services: ServicesDep) -> list[AccountView]:
        return await services.accounts.list(actor)

    @post(summary="Create an account (operator)", responses=errors(403, 409))
    async def create_account(
        self, data: JSONBody[AccountCreate], actor: ActorDep, services: ServicesDep
    ) -> AccountView:
        return await services.accounts.create(actor, data.name)

    @get("/{name:str}", summary="One account", responses=errors(404))
    async def get_account(
        self, name: FromPath[str], actor: ActorDep, services: ServicesDep
    ) -> AccountView:
        return await services.accounts.get(actor, name)

    @delete(
        "/{name:str}",
        summary="Delete an account that owns no domains (operator)",
        responses=errors(403, 404, 409),
    )
    async def delete_account(
        self, name: FromPath[str], actor: ActorDep, services: ServicesDep
    ) -> None:
        await services.accounts.delete(actor, name)

    @post(
        "/{name:str}/users",
        summary="Create an admin user of the account",
        description="An account admin may add admins to its own account only.",
        responses=errors(404, 409),
    )
    async def create_user(
        self,
        name: FromPath[str],
        data: JSONBody[UserCreate],
        actor: ActorDep,
        services: ServicesDep,
    ) -> UserView:
        return await services.accounts.create_user(actor, data.login, data.password, account=name)
