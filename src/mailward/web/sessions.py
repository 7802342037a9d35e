"""Panel and webmail sessions and CSRF: server-side session data in the database (so every
web node sees every login, and logging out ends the session everywhere), the cookie flags,
and the secret the CSRF tokens are signed with. The webmail (``/mail``) has its own
session, cookie and idle lifetime (:func:`mail_session_config`); the panel's session
middleware leaves ``/mail`` alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from litestar.config.csrf import CSRFConfig
from litestar.connection import ASGIConnection
from litestar.middleware.session.server_side import (
    ServerSideSessionBackend,
    ServerSideSessionConfig,
)
from litestar.stores.base import Store
from litestar.types import Empty
from sqlalchemy import CursorResult, delete, select

from mailward.config import Settings
from mailward.config.secret import web_secret
from mailward.db import Database
from mailward.db.models import WebSession, utcnow

__all__ = [
    "MAIL_SESSION_NAMESPACE",
    "MAIL_SESSION_STORE",
    "PURGE_EVERY_SECONDS",
    "READ_ONLY",
    "SESSION_STORE",
    "DatabaseStore",
    "csrf_config",
    "mail_cookie_name",
    "mail_session_config",
    "new_session_id",
    "purge_expired_sessions",
    "session_config",
]

SESSION_STORE = "sessions"
SESSION_SECONDS = 8 * 3600  # idle lifetime of a panel login; every request renews it
PURGE_EVERY_SECONDS = 3600  # the web role deletes expired sessions this often
# not panel pages: the API authenticates with bearer tokens (no ambient credential to
# forge), the public tools and client set-up documents need no session
NO_SESSION = ["^/api/", "^/static/", "^/tools/", "^/mail/config", "^/.well-known/",
              "^/autodiscover/", "^/Autodiscover/", "^/quarantine/",
              "^/mail/", "^/mail$"]  # the webmail: its own session (mail_session_config)
MAIL_SESSION_STORE = "mail_sessions"
MAIL_SESSION_NAMESPACE = "mail:"  # its keys in the web_sessions table
MAIL_SESSION_SECONDS = 4 * 3600  # idle lifetime of a webmail login; every request renews it


def _expiry(expires_in: int | timedelta | None) -> datetime | None:
    if expires_in is None:
        return None
    seconds = expires_in.total_seconds() if isinstance(expires_in, timedelta) else expires_in
    return utcnow() + timedelta(seconds=seconds)


class DatabaseStore(Store):
    """Litestar's key-value store on the ``web_sessions`` table, so that every web node
    shares it (sessions, and the public pages' rate-limit counters); ``namespace`` keeps
    the stores sharing the table apart."""

    def __init__(self, db: Database, namespace: str = "") -> None:
        self.db = db
        self.namespace = namespace

    async def set(self, key: str, value: str | bytes,
                  expires_in: int | timedelta | None = None) -> None:
        data = value.encode() if isinstance(value, str) else value
        key = self.namespace + key
        async with self.db.session() as session, session.begin():
            row = await session.get(WebSession, key)
            if row is None:
                session.add(WebSession(key=key, value=data, expires_at=_expiry(expires_in)))
            else:
                row.value, row.expires_at = data, _expiry(expires_in)

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        key = self.namespace + key
        async with self.db.session() as session, session.begin():
            row = await session.get(WebSession, key)
            if row is None:
                return None
            if row.expires_at is not None and row.expires_at <= utcnow():
                await session.delete(row)
                return None
            if renew_for is not None and row.expires_at is not None:
                row.expires_at = _expiry(renew_for)
            return row.value

    async def delete(self, key: str) -> None:
        async with self.db.session() as session, session.begin():
            await session.execute(
                delete(WebSession).where(WebSession.key == self.namespace + key))

    async def delete_all(self) -> None:
        """Every key of this store's namespace (all keys for the unnamed one)."""
        async with self.db.session() as session, session.begin():
            await session.execute(delete(WebSession).where(
                WebSession.key.startswith(self.namespace, autoescape=True)))

    async def delete_expired(self) -> None:
        async with self.db.session() as session, session.begin():
            await session.execute(delete(WebSession).where(WebSession.expires_at <= utcnow()))

    async def exists(self, key: str) -> bool:
        return await self.get(key) is not None

    async def expires_in(self, key: str) -> int | None:
        async with self.db.session() as session:
            expires_at = await session.scalar(
                select(WebSession.expires_at).where(WebSession.key == self.namespace + key))
        if expires_at is None:
            return None
        return max(int((expires_at - utcnow()).total_seconds()), 0)


async def purge_expired_sessions(db: Database) -> int:
    """Delete every expired row of the ``web_sessions`` table (sessions, and the public
    pages' rate-limit counters); how many went. The web role runs it every
    ``PURGE_EVERY_SECONDS``."""
    async with db.session() as session, session.begin():
        result = cast(CursorResult[Any], await session.execute(  # DML: has rowcount
            delete(WebSession).where(WebSession.expires_at <= utcnow())))
    return int(result.rowcount or 0)


def _behind_tls(settings: Settings) -> bool:
    return (settings.public_url or "").lower().startswith("https://")


_NEW_ID = "mailward.new_session_id"
READ_ONLY = "session_read_only"  # a route handler's ``opt``: no session write, no cookie


def new_session_id(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """Save this request's session under a fresh ID (on login: no session fixation)."""
    connection.scope[_NEW_ID] = None  # type: ignore[literal-required]


class _Backend(ServerSideSessionBackend):
    """Litestar's backend, but a session ID is only ever one we issued: a cookie naming no
    stored session, or a request that asked for :func:`new_session_id`, gets a new ID; and
    a request whose session is empty (anonymous: the login page, public pages) stores
    nothing, so that no client can fill the table without logging in. (The login form's
    CSRF token is Litestar's signed double-submit cookie, no session needed.)"""

    async def store_in_message(self, scope_session: Any, message: Any,
                               connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        handler = connection.scope.get("route_handler")
        if handler is not None and handler.opt.get(READ_ONLY):
            return  # reads the session, never sets a cookie (e.g. the image proxy)
        if not scope_session:  # empty, or cleared (logout)
            if self.config.key in connection.cookies:  # forget it: row and cookie
                await super().store_in_message(Empty, message, connection)
            return
        await super().store_in_message(scope_session, message, connection)

    async def load_from_connection(self, connection: ASGIConnection[Any, Any, Any, Any]
                                   ) -> dict[str, Any]:
        data = await super().load_from_connection(connection)
        if not data:
            new_session_id(connection)
        return data

    def get_session_id(self, connection: ASGIConnection[Any, Any, Any, Any]) -> str:
        scope: dict[str, Any] = connection.scope  # type: ignore[assignment]
        if _NEW_ID not in scope:
            return super().get_session_id(connection)
        if scope[_NEW_ID] is None:
            scope[_NEW_ID] = self.generate_session_id()
        return str(scope[_NEW_ID])


@dataclass
class _Config(ServerSideSessionConfig):
    _backend_class = _Backend


def session_config(settings: Settings) -> ServerSideSessionConfig:
    """HttpOnly, SameSite=Lax, Secure when the panel is served over TLS."""
    return _Config(
        store=SESSION_STORE, key="mailward_session", max_age=SESSION_SECONDS,
        renew_on_access=True, httponly=True, samesite="lax", secure=_behind_tls(settings),
        exclude=NO_SESSION)


def mail_cookie_name(settings: Settings) -> str:
    """``__Host-`` when served over TLS: the browser then insists on Secure, Path=/ and no
    Domain, so no sibling host can plant or shadow the cookie."""
    return "__Host-mailward_mail" if _behind_tls(settings) else "mailward_mail"


def mail_session_config(settings: Settings) -> ServerSideSessionConfig:
    """The webmail's session (middleware of the ``/mail`` routes only): HttpOnly, Secure
    over TLS, Path=/, no Domain. SameSite=Lax, not Strict: with Strict, following a link
    to ``/mail/msg?...`` from a mail notification or another site would arrive without
    the cookie and show the login page; Lax still withholds it from cross-site POSTs
    (and the CSRF token guards those anyway)."""
    return _Config(
        store=MAIL_SESSION_STORE, key=mail_cookie_name(settings),
        max_age=MAIL_SESSION_SECONDS, renew_on_access=True, httponly=True, samesite="lax",
        secure=_behind_tls(settings), path="/")


def csrf_config(settings: Settings) -> CSRFConfig:
    """Double-submit CSRF tokens on every state-changing panel request."""
    return CSRFConfig(
        secret=web_secret(settings), cookie_name="mailward_csrf", cookie_samesite="lax",
        cookie_secure=_behind_tls(settings), cookie_httponly=True,
        # and the webmail's GET-only routes loaded by the sandboxed message iframe: no
        # CSRF cookie set from there
        exclude=["^/api/", "^/autodiscover/", "^/Autodiscover/", "^/mail/img$",
                 "^/mail/msg/inline$"])
