"""The control panel: server-rendered pages (Jinja2) over the same services as the API and
CLI. ``/login`` and ``/logout`` are public; everything under ``/panel`` needs a login and
answers errors as pages (an unknown or foreign object is 404)."""

from __future__ import annotations

from typing import Any

from litestar import Router
from litestar.exceptions import HTTPException

from mailward.directory import ServiceError
from mailward.web.panel import (
    accounts,
    addresses,
    audit,
    auth,
    dashboard,
    hosting,
    me,
    migrate,
    quarantine,
    security,
    sieve,
    trace,
    users,
)
from mailward.web.panel.common import LoginRequired, error_page, require_login

__all__ = ["panel_handlers"]


def panel_handlers() -> list[Any]:
    handlers = {ServiceError: error_page, HTTPException: error_page, LoginRequired: error_page}
    panel = Router(
        path="/panel",
        guards=[require_login],
        exception_handlers=handlers,  # type: ignore[arg-type]
        route_handlers=[
            auth.home,
            *accounts.HANDLERS,
            *dashboard.HANDLERS,
            *addresses.HANDLERS,
            *sieve.HANDLERS,
            *hosting.HANDLERS,
            *users.HANDLERS,
            *security.HANDLERS,
            *audit.HANDLERS,
            *quarantine.HANDLERS,
            *trace.HANDLERS,
            *me.HANDLERS,
            *migrate.HANDLERS,
        ],
    )
    return [auth.login_form, auth.login, auth.code_form, auth.code, auth.logout, panel]
