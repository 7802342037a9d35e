"""``POST /auth/token`` (password login, rate limited) and ``GET /me``."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.exceptions import NotAuthorizedException, TooManyRequestsException
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody

from mailward.directory.views import TokenView
from mailward.web.api.schemas import ErrorOut, MeOut, TokenRequest, errors
from mailward.web.context import ActorDep, ServicesDep, WebDep
from mailward.web.login import (
    LoginFailed,
    LoginThrottled,
    code_login,
    needs_code,
    password_login,
)

MAX_LOGIN_BODY = 16 * 1024


@post(
    "/auth/token",
    tags=["auth"],
    summary="Exchange a login and password for an API token",
    description="The token is shown once. A user with two-factor login on also sends "
    "`code` (the authenticator's current code). After repeated failures from one client or "
    "for one login, attempts are refused with 429 and Retry-After, even with the right "
    "password.",
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
    try:
        actor = await password_login(web, data.login, data.password, client)
        if await needs_code(web, actor):
            await code_login(web, actor, data.code or "", client)
    except LoginThrottled as exc:
        raise TooManyRequestsException(
            str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
    except LoginFailed as exc:
        raise NotAuthorizedException(str(exc)) from None
    token = await web.services.tokens.create(actor.via(f"api {client}"), data.login, data.name,
                                              data.expires_days)
    return token


@get("/me", tags=["auth"], summary="Who the token belongs to", responses=errors())
async def me(actor: ActorDep, services: ServicesDep) -> MeOut:
    account = None
    if actor.account_id is not None:  # an account admin (operators and resellers have none)
        accounts = await services.accounts.list(actor)
        account = accounts[0].name if accounts else None
    return MeOut(role=actor.role, login=actor.name, account_id=actor.account_id, account=account)
