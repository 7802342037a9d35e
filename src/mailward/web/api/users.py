"""``/users``: the panel/API users one manages (and one's own password)."""

from __future__ import annotations

from litestar import Controller, delete, get, put
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK

from mailward.directory.users import PasswordChanged, UserLockView
from mailward.directory.views import UserView
from mailward.web.api.schemas import Request, errors
from mailward.web.context import ActorDep, ServicesDep


class UserPasswordChange(Request):
    """A user's new password; ``current`` is required for one's own. ``revoke_tokens``:
    delete the user's API tokens (default: yes for a reset, no for one's own change)."""

    password: str
    password_repeat: str
    current: str | None = None
    revoke_tokens: bool | None = None


class UserController(Controller):
    path = "/users"
    tags = ["users"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get(summary="List the users one manages (operators: everyone; account admins: their "
         "account's admins)", responses=errors())
    async def list_users(self, actor: ActorDep, services: ServicesDep,
                         account: FromQuery[str | None] = None) -> list[UserView]:
        return await services.users.list(actor, account)

    @put("/{login:str}/password", summary="Set a user's password",
         description="One's own needs `current`; a managed user's does not. Resetting a "
         "managed user's password revokes their API tokens unless `revoke_tokens` is "
         "false; `tokens_revoked` says how many went.",
         responses=errors(400, 404))
    async def set_password(self, login: FromPath[str], data: JSONBody[UserPasswordChange],
                           actor: ActorDep, services: ServicesDep) -> PasswordChanged:
        return await services.users.set_password(
            actor, login, data.password, repeat=data.password_repeat, current=data.current,
            revoke_tokens=data.revoke_tokens)

    @get("/{login:str}/login-lock", summary="Is the user's login locked after failed "
         "attempts?", responses=errors(404))
    async def get_login_lock(self, login: FromPath[str], actor: ActorDep,
                             services: ServicesDep) -> UserLockView:
        return await services.users.lock_state(actor, login)

    @delete("/{login:str}/login-lock", status_code=HTTP_200_OK,
            summary="Clear the user's login lock", responses=errors(404))
    async def clear_login_lock(self, login: FromPath[str], actor: ActorDep,
                               services: ServicesDep) -> UserLockView:
        return await services.users.unlock(actor, login)

    @delete("/{login:str}", status_code=HTTP_200_OK,
            summary="Delete a user (their API tokens too)", responses=errors(404, 409))
    async def delete_user(self, login: FromPath[str], actor: ActorDep,
                          services: ServicesDep) -> UserView:
        return await services.users.delete(actor, login)
