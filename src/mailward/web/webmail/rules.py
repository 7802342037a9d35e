"""``/mail/settings/rules``: the logged-in mailbox's own rules and out-of-office reply
(the simple form, written as the Sieve script ``mailward`` and made active) and the
advanced editor of its active script, as in the panel (``web.panel.sieve``, whose form
parsing and storage accessor this page shares)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from mailward.core.errors import InvalidInput, ServiceError
from mailward.sieve.simple import SimpleForm, load, save_form, save_raw
from mailward.web.context import context_of
from mailward.web.errors import http_status
from mailward.web.panel.sieve import BLANK_ROWS, MAX_FORM, parse_fields, scripts_of
from mailward.web.webmail.common import MAIL_GUARD, flash, mail_page, mailbox_of

__all__ = ["HANDLERS"]

HOME = "/mail/settings/rules"


async def _page(request: Request[Any, Any, Any], *, status: int = 200,
                error: str | None = None, section: str = "",
                draft: SimpleForm | None = None, raw: str | None = None) -> Template:
    mailbox = mailbox_of(request)
    state = await load(scripts_of(context_of(request)), mailbox)
    return await mail_page(
        request, "mail/rules.html", status=status, state=state, form=draft or state.form,
        raw=state.raw if raw is None else raw, blank_rows=BLANK_ROWS, error=error,
        section=section, action_base=HOME, error_class="flash")


@get(HOME, include_in_schema=False, guards=[MAIL_GUARD])
async def rules_page(request: Request[Any, Any, Any]) -> Template:
    return await _page(request)


@post(f"{HOME}/save", include_in_schema=False, guards=[MAIL_GUARD],
      request_max_body_size=MAX_FORM)
async def save(request: Request[Any, Any, Any]) -> Template | Redirect:
    form = await request.form()
    draft, problem = parse_fields(form)
    try:
        if problem:
            raise InvalidInput(problem)
        await save_form(scripts_of(context_of(request)), mailbox_of(request), draft)
    except ServiceError as exc:
        return await _page(request, status=http_status(exc), error=str(exc), section="form",
                           draft=draft)
    flash(request, "Rules and vacation saved.")
    return Redirect(HOME, status_code=HTTP_303_SEE_OTHER)


@post(f"{HOME}/raw", include_in_schema=False, guards=[MAIL_GUARD],
      request_max_body_size=MAX_FORM)
async def save_script(request: Request[Any, Any, Any]) -> Template | Redirect:
    form = await request.form()
    text = form.get("script")
    text = text if isinstance(text, str) else ""
    try:
        name = await save_raw(scripts_of(context_of(request)), mailbox_of(request), text)
    except ServiceError as exc:
        return await _page(request, status=http_status(exc), error=str(exc), section="raw",
                           raw=text)
    flash(request, f"Script {name!r} saved.")
    return Redirect(f"{HOME}#script", status_code=HTTP_303_SEE_OTHER)


HANDLERS = [rules_page, save, save_script]
