"""``/tokens``: list and revoke API tokens (your own; an operator sees everyone's)."""

from __future__ import annotations

from litestar import Controller, delete, get
from litestar.params import FromPath, FromQuery

from mailward.directory.views import TokenInfo
from mailward.web.api.schemas import errors
from mailward.web.context import ActorDep, ServicesDep


class TokenController(Controller):
    path = "/tokens"
    tags = ["auth"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get(summary="List API tokens (never their secrets)", responses=errors())
    async def list_tokens(
        self, actor: ActorDep, services: ServicesDep, login: FromQuery[str | None] = None
    ) -> list[TokenInfo]:
        return await services.tokens.list(actor, login)

    @delete("/{token_id:int}", summary="Revoke an API token", responses=errors(404))
    async def revoke_token(
        self, token_id: FromPath[int], actor: ActorDep, services: ServicesDep
    ) -> None:
        await services.tokens.revoke(actor, token_id)
