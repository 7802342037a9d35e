"""Email Accounts (docs/procedures.md, "Addresses"): search and list the addresses, set up
pending ones, edit passwords, destinations and auto-cc, move between the lists, delete one
or many (each after a confirmation), and Add Addresses in bulk with its results page."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, get, post
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Redirect, Template

from mailward.db.models import AddressKind, AddressList
from mailward.directory import AddressFilter, InvalidInput, ServiceError
from mailward.directory.bulk_add import LineStatus
from mailward.web.errors import http_status
from mailward.web.panel.common import (
    Form,
    account_url,
    page,
    redirect,
    scoped,
    user_of,
    web_of,
)

MAX_FORM = 16 * 1024
MAX_BULK_FORM = 8 * 1024 * 1024  # a pasted list of many thousand addresses
PER_PAGE = 50
LISTS = {"filter": AddressList.FILTER, "no-filter": AddressList.NO_FILTER}
FormData = Annotated[dict[str, Any], Form]


def values(data: dict[str, Any], key: str) -> list[str]:
    """Every value of a form field (a checkbox list comes as a list)."""
    found = data.get(key, [])
    return [found] if isinstance(found, str) else [str(v) for v in found]


def one(data: dict[str, Any], key: str) -> str:
    found = values(data, key)
    return found[0] if found else ""


# -- the list --------------------------------------------------------------------------------


@get("/accounts/{account:str}/addresses", include_in_schema=False)
async def addresses(
    request: Request[Any, Any, Any],
    account: FromPath[str],
    q: FromQuery[str] = "",
    kind: FromQuery[str] = "",
    page_number: Annotated[int, QueryParameter(name="page")] = 1,
) -> Template:
    view, actor = await scoped(request, account)
    criteria = AddressFilter(
        search=q, kind=AddressKind(kind) if kind in AddressKind._value2member_map_ else None
    )
    try:
        found = await web_of(request).services.addresses.search(
            actor, criteria, page=max(page_number, 1), per_page=PER_PAGE
        )
    except InvalidInput:
        found = await web_of(request).services.addresses.search(actor, criteria)
    query = {k: v for k, v in (("q", q), ("kind", kind)) if v}
    return page(
        request,
        "addresses.html",
        account=view,
        account_base=account_url(view.name),
        found=found,
        q=q,
        kind=kind,
        query=urlencode(query),
    )


@post(
    "/accounts/{account:str}/addresses/delete",
    include_in_schema=False,
    request_max_body_size=MAX_BULK_FORM,
)
async def delete(
    request: Request[Any, Any, Any], account: FromPath[str], data: FormData
) -> Template | Redirect:
    """Without ``confirm``: the confirmation page listing what would go; with: delete."""
    view, actor = await scoped(request, account)
    base = account_url(view.name)
    # a row's own Delete button names only its address; "Delete checked" sends the boxes
    emails = sorted(set(values(data, "only") or values(data, "email")))
    if not emails:
        return redirect(request, f"{base}addresses", "no address was checked", "error")
    if one(data, "confirm") != "yes":
        return page(request, "confirm_delete.html", account=view, account_base=base, emails=emails)
    deleted = await web_of(request).services.addresses.delete(actor, emails)
    noun = "address" if len(deleted) == 1 else "addresses"
    return redirect(
        request, f"{base}addresses", f"deleted {len(deleted)} {noun}: {', '.join(deleted)}"
    )


# -- Add Addresses ----------------------------------------------------------------------------


@get("/accounts/{account:str}/addresses/add", include_in_schema=False)
async def add_form(request: Request[Any, Any, Any], account: FromPath[str]) -> Template:
    view, _actor = await scoped(request, account)
    return page(
        request,
        "add_addresses.html",
        account=view,
        account_base=account_url(view.name),
        lines="",
        chosen="filter",
        error=None,
    )


@post(
    "/accounts/{account:str}/addresses/add",
    include_in_schema=False,
    request_max_body_size=MAX_BULK_FORM,
)
async def add(request: Request[Any, Any, Any], account: FromPath[str], data: FormData) -> Template:
    view, actor = await scoped(request, account)
    base = account_url(view.name)
    lines, chosen = one(data, "lines"), one(data, "list") or "filter"
    if chosen not in LISTS or not lines.strip():
        error = (
            "choose the Filter or the Do Not Filter list"
            if chosen not in LISTS
            else "enter at least one address, one per line"
        )
        return page(
            request,
            "add_addresses.html",
            status=400,
            account=view,
            account_base=base,
            lines=lines,
            chosen=chosen,
            error=error,
        )
    try:
        result = await web_of(request).services.bulk.add_lines(
            actor, lines.splitlines(), LISTS[chosen]
        )
    except InvalidInput as exc:  # the whole input refused (e.g. forwarding over the caps)
        return page(request, "add_addresses.html", status=400, account=view,
                    account_base=base, lines=lines, chosen=chosen, error=str(exc))
    groups = {status.value: result.of(status) for status in LineStatus}
    return page(
        request,
        "add_results.html",
        account=view,
        account_base=base,
        result=result,
        groups=groups,
        chosen=chosen,
    )


# -- one address -------------------------------------------------------------------------------


async def _edit_page(
    request: Request[Any, Any, Any],
    account: FromPath[str],
    email: FromPath[str],
    *,
    status: int = 200,
    error: str | None = None,
    form: str = "",
) -> Template:
    view, actor = await scoped(request, account)
    services = web_of(request).services
    address = await services.addresses.get(actor, email)
    locked = 0  # seconds the mailbox's logins stay locked after failed attempts
    if address.kind in (AddressKind.MAILBOX, AddressKind.AUTOCC):
        locked = await services.mail_login.locked(address.email)
    return page(
        request,
        "address.html",
        status=status,
        account=view,
        account_base=account_url(view.name),
        address=address,
        locked_minutes=-(-locked // 60),
        error=error,
        form=form,
    )


@get("/accounts/{account:str}/addresses/{email:str}", include_in_schema=False)
async def address(
    request: Request[Any, Any, Any], account: FromPath[str], email: FromPath[str]
) -> Template:
    return await _edit_page(request, account, email)


@post(
    "/accounts/{account:str}/addresses/{email:str}/{action:str}",
    include_in_schema=False,
    request_max_body_size=MAX_FORM,
)
async def change(
    request: Request[Any, Any, Any],
    account: FromPath[str],
    email: FromPath[str],
    action: FromPath[str],
    data: FormData,
) -> Template | Redirect:
    """One form of the edit page: ``action`` names it; errors show next to that form."""
    view, actor = await scoped(request, account)
    service = web_of(request).services.addresses
    here = f"{account_url(view.name)}addresses/{email}"
    try:
        current = await service.get(actor, email)
        if action == "setup" and one(data, "mode") == "mailbox":
            await service.setup_mailbox(actor, email, one(data, "password"), one(data, "repeat"))
            done = f"{current.email} is set up as a mailbox"
        elif action == "setup":
            await service.setup_forwarder(actor, email, one(data, "destinations"))
            done = f"{current.email} is set up as an alias/forwarder"
        elif action == "password":
            await service.set_password(actor, email, one(data, "password"), one(data, "repeat"))
            done = f"password of {current.email} changed"
        elif action == "destinations":
            await service.set_destinations(actor, email, one(data, "destinations"))
            done = f"destinations of {current.email} changed"
        elif action == "autocc":
            wanted = (
                [*current.destinations, one(data, "destinations")]
                if current.kind is AddressKind.AUTOCC
                else [one(data, "destinations")]
            )
            await service.set_autocc(actor, email, ",".join(wanted))
            done = f"auto-cc of {current.email} set"
        elif action == "remove-destination":
            await _remove_destination(service, actor, current, one(data, "destination"))
            done = f"{one(data, 'destination')} removed from {current.email}"
        elif action == "remove-autocc":
            await service.remove_autocc(actor, email)
            done = f"{current.email} no longer sends auto-cc copies"
        elif action == "quota":  # operators only: with their own (operator) actor
            megabytes = one(data, "megabytes").strip()
            if megabytes and not megabytes.isdigit():
                raise InvalidInput("the quota is a whole number of MB (empty: no limit)")
            quota = int(megabytes) * 1024 * 1024 if megabytes else None
            await service.set_quota(user_of(request).actor, email, quota)
            done = f"quota of {current.email}: " + (f"{megabytes} MB" if quota else "no limit")
        elif action == "unlock":
            await web_of(request).services.mail_login.unlock(actor, service, email)
            done = f"logins of {current.email} unlocked"
        elif action == "list":
            target = LISTS.get(one(data, "list"))
            if target is None:
                raise InvalidInput("choose the Filter or the Do Not Filter list")
            await service.set_list(actor, email, target)
            done = f"{current.email} moved to the {_list_name(target)} list"
        else:
            return await _edit_page(
                request, account, email, status=404, error=f"unknown action {action!r}"
            )
    except ServiceError as exc:
        if http_status(exc) == 404:
            raise
        return await _edit_page(
            request, account, email, status=http_status(exc), error=str(exc), form=action
        )
    return redirect(request, here, done)


async def _remove_destination(service: Any, actor: Any, current: Any, destination: str) -> None:
    """Drop one destination; an auto-cc left with none becomes a plain mailbox."""
    rest = [d for d in current.destinations if d != destination]
    if len(rest) == len(current.destinations):
        raise InvalidInput(f"{destination} is not a destination of {current.email}")
    if not rest and current.kind is AddressKind.AUTOCC:
        await service.remove_autocc(actor, current.email)
    elif not rest:
        raise InvalidInput(
            "an alias/forwarder needs at least one destination: "
            "add another first, or delete the address"
        )
    else:
        await service.set_destinations(actor, current.email, ",".join(rest))


def _list_name(value: AddressList) -> str:
    return "Filter" if value is AddressList.FILTER else "Do Not Filter"


HANDLERS = [addresses, delete, add_form, add, address, change]
