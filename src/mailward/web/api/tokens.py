"""``/tokens``: list and revoke API tokens (your own; an operator sees everyone's)."""

from __future__ import annotations

from litestar import Controller, delete, get
from litestar.params import FromPath, FromQuery

from mailward.directory.views import TokenInfo
from mailward.web.api.schemas import errors
from mailward.web.context import ActorDep, DirectoryDep


class TokenController(Controller):
    path = "/tokens"
    tags = ["auth"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get(summary="List API tokens (never their secrets)", responses=errors())
    async def list_tokens(
        self, actor: ActorDep, directory: DirectoryDep, login: FromQuery[str | None] = None
    ) -> list[TokenInfo]:
        return await directory.tokens.list(actor, login)

    @delete("/{token_id:int}", summary="Revoke an API token", responses=errors(404))
    async def revoke_token(
        self, token_id: FromPath[int], actor: ActorDep, directory: DirectoryDep
    ) -> None:
        await directory.tokens.revoke(actor, token_id)
