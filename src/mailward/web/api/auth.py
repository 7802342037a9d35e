"""``POST /auth/token`` (password login, rate limited) and ``GET /me``."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.exceptions import NotAuthorizedException, TooManyRequestsException
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody

from mailward.directory.views import TokenView
from mailward.web.api.schemas import ErrorOut, MeOut, TokenRequest, errors
from mailward.web.context import ActorDep, DirectoryDep, WebDep

MAX_LOGIN_BODY = 16 * 1024
MAX_LOGIN_KEY = 254  # the longest login there can be; keeps limiter keys small


@post(
    "/auth/token",
    tags=["auth"],
    summary="Exchange a login and password for an API token",
    description="The token is shown once. After repeated failures from one client or for "
    "one login, attempts are refused with 429 and Retry-After, even with the right password.",
    responses={
        **errors(429),
        401: ResponseSpec(data_container=ErrorOut, description="wrong login or password"),
    },
    request_max_body_size=MAX_LOGIN_BODY,
)
async def issue_token(
    data: JSONBody[TokenRequest], request: Request[Any, Any, Any], web: WebDep
) -> TokenView:
    client = request.client.host if request.client else "unknown"
    keys = (f"ip:{client}", f"login:{data.login.strip().lower()[:MAX_LOGIN_KEY]}")
    wait = web.limiter.retry_after(*keys)
    if wait:
        raise TooManyRequestsException(
            f"too many failed logins; try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    attempt = web.limiter.fail(*keys)  # counts until proven right: no racing past the limit
    actor = await web.directory.accounts.authenticate(data.login, data.password)
    if actor is None:
        raise NotAuthorizedException("wrong login or password")
    web.limiter.forgive(attempt, *keys)
    token = await web.directory.tokens.create(actor, data.login, data.name)
    return token


@get("/me", tags=["auth"], summary="Who the token belongs to", responses=errors())
async def me(actor: ActorDep, directory: DirectoryDep) -> MeOut:
    account = None
    if not actor.is_operator:
        accounts = await directory.accounts.list(actor)
        account = accounts[0].name if accounts else None
    return MeOut(role=actor.role, login=actor.name, account_id=actor.account_id, account=account)
