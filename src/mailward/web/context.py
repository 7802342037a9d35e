"""What the web app's handlers share: services, settings, the login limiter, the webmail
(over the mail store, when the app has one), the caller."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotAuthorizedException
from litestar.handlers import BaseRouteHandler

from mailward.app import Services
from mailward.config import Settings
from mailward.directory import Actor
from mailward.directory.auth_limit import AuthLimiter
from mailward.webmail import Webmail

STATE_KEY = "mailward"
BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="mailward"'}


@dataclass(frozen=True, slots=True)
class WebContext:
    services: Services
    settings: Settings
    limiter: AuthLimiter
    webmail: Webmail | None = None  # None: an app without a mail store (no /mail pages)
    # set when the server begins to stop: long-lived answers (the webmail's update
    # streams) end then instead of holding up the graceful shutdown
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


def context_of(connection: ASGIConnection[Any, Any, Any, Any]) -> WebContext:
    return connection.app.state[STATE_KEY]


async def require_token(
    connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler
) -> None:
    """Guard: resolve ``Authorization: Bearer <token>`` to an actor, or answer 401."""
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise NotAuthorizedException("missing bearer token", headers=BEARER_CHALLENGE)
    actor = await context_of(connection).services.tokens.actor_for(token)
    if actor is None:
        raise NotAuthorizedException("unknown or revoked token", headers=BEARER_CHALLENGE)
    client = connection.client.host if connection.client and connection.client.host else None
    connection.state.actor = actor.via(f"api {client or 'unknown'}")


def _actor(request: Request[Any, Any, Any]) -> Actor:
    return request.state.actor


def _services(request: Request[Any, Any, Any]) -> Services:
    return context_of(request).services


def _context(request: Request[Any, Any, Any]) -> WebContext:
    return context_of(request)


DEPENDENCIES = {
    "actor": Provide(_actor, sync_to_thread=False),
    "services": Provide(_services, sync_to_thread=False),
    "web": Provide(_context, sync_to_thread=False),
}

ActorDep = NamedDependency[Actor]
"""Handler parameter type: the caller resolved from its bearer token."""
ServicesDep = NamedDependency[Services]
WebDep = NamedDependency[WebContext]
