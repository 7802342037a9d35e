"""The webmail pages at ``/mail``: one Litestar router with the webmail's own session
middleware and HTML error pages; everything but the login pages (and the signed inline
parts) behind ``MAIL_GUARD``."""

from __future__ import annotations

from typing import Any

from litestar import Router

from mailward.config import Settings
from mailward.web.sessions import mail_session_config
from mailward.web.webmail import (
    actions,
    auth,
    compose,
    contacts,
    live,
    pages,
    quarantine,
    reading,
    rules,
    settings,
    trace,
)
from mailward.web.webmail.common import MAIL_GUARD, mail_error_handlers

__all__ = ["PUBLIC_HANDLERS", "ROUTE_HANDLERS", "mail_routers"]

PUBLIC_HANDLERS: list[Any] = [*auth.HANDLERS, *reading.PUBLIC_HANDLERS]
"""No login needed: the login steps, logout, the signed inline parts."""
ROUTE_HANDLERS: list[Any] = [
    *pages.HANDLERS,
    *reading.HANDLERS,
    *live.HANDLERS,
    *actions.HANDLERS,
    *compose.HANDLERS,
    *contacts.HANDLERS,
    *settings.HANDLERS,
    *rules.HANDLERS,
    *quarantine.HANDLERS,
    *trace.HANDLERS,
]
"""Every logged-in ``/mail`` route (full paths)."""


def mail_routers(config: Settings) -> list[Router]:
    """The ``/mail`` routes for the app: the public ones and the guarded ones, both with
    the webmail session (its cookie name depends on ``config``)."""
    common: dict[str, Any] = {
        "middleware": [mail_session_config(config).middleware],
        "exception_handlers": mail_error_handlers(),
        "include_in_schema": False,
    }
    return [Router(path="/", route_handlers=PUBLIC_HANDLERS, **common),
            Router(path="/", route_handlers=ROUTE_HANDLERS, guards=[MAIL_GUARD], **common)]
