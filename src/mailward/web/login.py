"""Password login for the API and the panel: one brute-force limit for both (per client
address and per login, the directory's limiter), the same answer for every failure."""

from __future__ import annotations

from mailward.directory import Actor
from mailward.directory.users import login_key
from mailward.web.context import WebContext

__all__ = [
    "IP_PREFIX",
    "LoginFailed",
    "LoginThrottled",
    "code_login",
    "needs_code",
    "panel_login",
    "password_login",
]


class LoginFailed(Exception):
    """Wrong login or password."""


class LoginThrottled(Exception):
    """Too many failures lately; ``retry_after`` seconds to wait."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins; try again in {retry_after} s")
        self.retry_after = retry_after


IP_PREFIX = "ip:"
"""Limiter keys of client addresses (their own, higher limit: see ``create_app``)."""


def _keys(login: str, client: str) -> tuple[str, str]:
    return f"{IP_PREFIX}{client}", login_key(login)


async def password_login(web: WebContext, login: str, password: str, client: str) -> Actor:
    """The actor for ``login``/``password`` from ``client`` (raises on failure).

    The second factor, if the user has one, is :func:`code_login`'s job.
    """
    found = await _login(web, login, password, client, mailboxes=False)
    assert isinstance(found, Actor)
    return found


async def panel_login(web: WebContext, login: str, password: str,
                      client: str) -> Actor | str:
    """A panel login: a user (the actor), else a mailbox user (the address). A mailbox
    login failure also counts against the mail protocols' limits (one limiter for POP3,
    IMAP, submission and this)."""
    return await _login(web, login, password, client, mailboxes=True)


async def _login(web: WebContext, login: str, password: str, client: str, *,
                 mailboxes: bool) -> Actor | str:
    # counts until proven right: no racing past the limit, on any node
    attempt = await web.limiter.attempt(*_keys(login, client))
    if attempt.retry_after:
        raise LoginThrottled(attempt.retry_after)
    found: Actor | str | None = await web.services.accounts.authenticate(login, password)
    if found is None and mailboxes:
        mailbox = await web.services.mail_login.authenticate(login, password, client, "web")
        if mailbox.retry_after:
            raise LoginThrottled(mailbox.retry_after)
        found = mailbox.mailbox
    if found is None:
        raise LoginFailed("wrong login or password")
    await web.limiter.forgive(attempt)
    return found


async def needs_code(web: WebContext, actor: Actor) -> bool:
    return actor.user_id is not None and await web.services.two_factor.enabled(actor.user_id)


async def code_login(web: WebContext, actor: Actor, code: str, client: str) -> None:
    """Check the two-factor code of ``actor`` (who gave the right password); wrong codes
    count against the same limit as wrong passwords."""
    attempt = await web.limiter.attempt(*_keys(actor.name, client))
    if attempt.retry_after:
        raise LoginThrottled(attempt.retry_after)
    assert actor.user_id is not None
    if not await web.services.two_factor.verify(actor.user_id, code):
        raise LoginFailed("wrong or used two-factor code")
    await web.limiter.forgive(attempt)
