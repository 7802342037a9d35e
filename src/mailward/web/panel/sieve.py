"""A mailbox's rules and out-of-office reply in the panel
(``/panel/accounts/A/addresses/E/rules``): the simple form (``sieve.simple``) written as
the Sieve script ``mailward`` and made active, and an advanced editor for the active
script's text (validated by ``SieveScripts.put``: a parse error is refused with its line).
Account admins reach their own domains' mailboxes only (``scoped`` + ``addresses.get``:
another account's address is 404). The form's field parsing is shared with webmail's
``/mail/settings/rules``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from mailward.core.errors import InvalidInput, NotFound, ServiceError
from mailward.db.models import AddressKind
from mailward.sieve.scripts import SieveScripts
from mailward.sieve.simple import MAX_RULES, Rule, SimpleForm, Vacation, load, save_form, save_raw
from mailward.web.context import WebContext
from mailward.web.errors import http_status
from mailward.web.panel.common import Form, account_url, page, redirect, scoped, web_of

__all__ = ["BLANK_ROWS", "HANDLERS", "parse_fields", "scripts_of"]

MAX_FORM = 160 * 1024  # a raw script (64 KiB) or a long vacation text, form-encoded
BLANK_ROWS = 3  # empty rule rows offered below the saved ones
FormData = Annotated[dict[str, Any], Form]


def scripts_of(web: WebContext) -> SieveScripts:
    """The scripts' storage: ``services.sieve`` once the app builds one, else one here."""
    found = getattr(web.services, "sieve", None)
    return found if isinstance(found, SieveScripts) else SieveScripts(web.services.db)


def _one(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if isinstance(value, list):
        value = value[0] if value else ""
    return value if isinstance(value, str) else ""


def _day(text: str, what: str, problems: list[str]) -> date | None:
    if not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        problems.append(f"vacation: the {what} day is a date like 2026-12-24")
        return None


def parse_fields(data: Mapping[str, Any]) -> tuple[SimpleForm, str | None]:
    """The form as entered (not yet checked: ``to_script`` checks it) and the first
    problem found reading it. Rules are ``rule-N-*`` fields (N from 0); a row with
    neither text nor target, or with ``rule-N-delete``, is left out."""
    rules: list[Rule] = []
    for n in range(MAX_RULES + BLANK_ROWS + 1):
        prefix = f"rule-{n}-"
        if f"{prefix}field" not in data:
            break
        value, target = _one(data, f"{prefix}value"), _one(data, f"{prefix}target")
        if _one(data, f"{prefix}delete") or not (value.strip() or target.strip()):
            continue
        rules.append(Rule(field=_one(data, f"{prefix}field"), value=value,
                          action=_one(data, f"{prefix}action"), target=target,
                          match=_one(data, f"{prefix}match") or "contains",
                          header=_one(data, f"{prefix}header"),
                          copy=bool(_one(data, f"{prefix}copy")),
                          stop=bool(_one(data, f"{prefix}stop"))))
    problems: list[str] = []
    days_text = _one(data, "days").strip() or "7"
    if not days_text.isdigit():
        problems.append("vacation: the days are a whole number")
    addresses = tuple(a.strip() for a in _one(data, "addresses").replace(",", "\n").split("\n")
                      if a.strip())
    vacation = Vacation(enabled=bool(_one(data, "vacation")), subject=_one(data, "subject"),
                        text=_one(data, "text"),
                        days=int(days_text) if days_text.isdigit() else 7,
                        start=_day(_one(data, "start"), "first", problems),
                        end=_day(_one(data, "end"), "last", problems), addresses=addresses)
    return SimpleForm(rules=tuple(rules), vacation=vacation), problems[0] if problems else None


async def _mailbox(request: Request[Any, Any, Any], account: str, email: str) -> tuple[Any, str]:
    """The account view and the mailbox's address; 404 unless the user's and a mailbox."""
    view, actor = await scoped(request, account)
    address = await web_of(request).services.addresses.get(actor, email)
    if address.kind not in (AddressKind.MAILBOX, AddressKind.AUTOCC) or address.needs_setup:
        raise NotFound(f"{address.email} is not a mailbox")
    return view, address.email


async def _page(request: Request[Any, Any, Any], account: str, email: str, *,
                status: int = 200, error: str | None = None, section: str = "",
                draft: SimpleForm | None = None, raw: str | None = None) -> Template:
    view, mailbox = await _mailbox(request, account, email)
    state = await load(scripts_of(web_of(request)), mailbox)
    base = account_url(view.name, "addresses", mailbox)
    return page(request, "sieve.html", status=status, account=view,
                account_base=account_url(view.name), mailbox=mailbox, state=state,
                form=draft or state.form, raw=state.raw if raw is None else raw,
                blank_rows=BLANK_ROWS, error=error, section=section,
                action_base=f"{base}/rules", back=base)


@get("/accounts/{account:str}/addresses/{email:str}/rules", include_in_schema=False)
async def rules_page(request: Request[Any, Any, Any], account: FromPath[str],
                     email: FromPath[str]) -> Template:
    return await _page(request, account, email)


@post("/accounts/{account:str}/addresses/{email:str}/rules/save", include_in_schema=False,
      request_max_body_size=MAX_FORM)
async def save(request: Request[Any, Any, Any], account: FromPath[str], email: FromPath[str],
               data: FormData) -> Template | Redirect:
    view, mailbox = await _mailbox(request, account, email)
    draft, problem = parse_fields(data)
    try:
        if problem:
            raise InvalidInput(problem)
        await save_form(scripts_of(web_of(request)), mailbox, draft)
    except ServiceError as exc:
        return await _page(request, account, email, status=http_status(exc), error=str(exc),
                           section="form", draft=draft)
    return redirect(request, account_url(view.name, "addresses", mailbox, "rules"),
                    f"rules and vacation of {mailbox} saved")


@post("/accounts/{account:str}/addresses/{email:str}/rules/raw", include_in_schema=False,
      request_max_body_size=MAX_FORM)
async def save_script(request: Request[Any, Any, Any], account: FromPath[str],
                      email: FromPath[str], data: FormData) -> Template | Redirect:
    view, mailbox = await _mailbox(request, account, email)
    text = _one(data, "script")
    try:
        name = await save_raw(scripts_of(web_of(request)), mailbox, text)
    except ServiceError as exc:
        return await _page(request, account, email, status=http_status(exc), error=str(exc),
                           section="raw", raw=text)
    return redirect(request, account_url(view.name, "addresses", mailbox, "rules"),
                    f"script {name!r} of {mailbox} saved")


HANDLERS = [rules_page, save, save_script]
