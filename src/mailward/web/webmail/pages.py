"""The message list of a folder (paging, sorting, filters, conversations), the search
page, and the forms that create, rename and delete folders."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, get, post
from litestar.params import FromQuery
from litestar.response import Redirect, Template

from mailward.core.errors import ServiceError
from mailward.store import INBOX, StoreError
from mailward.web.webmail.common import (
    Form,
    back,
    flash,
    mail_page,
    mailbox_of,
    webmail_of,
)

__all__ = ["HANDLERS", "box_url"]

SORTS = ("date", "from", "subject", "size")
FILTERS = ("unread", "flagged")
MAX_FORM = 16 * 1024
MAX_QUERY = 500


def box_url(folder: str, **params: Any) -> str:
    """``/mail/box`` of ``folder`` with the given (non-empty) query parameters."""
    query = {"f": folder, **{k: v for k, v in params.items() if v not in (None, "")}}
    return "/mail/box?" + urlencode(query)


def _flag(value: str | None) -> bool | None:
    """A per-request ``0``/``1`` switch (None: not given, the preference applies)."""
    return None if value not in ("0", "1") else value == "1"


@get("/mail/box", include_in_schema=False)
async def box(
    request: Request[Any, Any, Any],
    f: FromQuery[str] = INBOX,
    page: FromQuery[int] = 1,
    sort: FromQuery[str] = "date",
    order: FromQuery[str] = "desc",
    only: FromQuery[str | None] = None,
    threads: FromQuery[str | None] = None,
) -> Template:
    """A folder's messages: a page of the list, newest first unless asked otherwise."""
    webmail, mailbox = webmail_of(request), mailbox_of(request)
    prefs = await webmail.prefs.get(mailbox)
    sort = sort if sort in SORTS else "date"
    order = "asc" if order == "asc" else "desc"
    only = only if only in FILTERS else None
    override = _flag(threads)
    conversations = prefs.threads if override is None else override
    version = await webmail.mailboxes.version(mailbox)  # before the list: no change missed
    listing = await webmail.mailboxes.list(
        mailbox, f, page=max(page, 1), per_page=prefs.per_page, sort=sort,
        reverse=order == "desc", only=only, threads=conversations)
    folders = await webmail.mailboxes.folders(mailbox)
    current = next((info for info in folders if info.name == f), None)
    keep = {"sort": sort if sort != "date" else None, "order": order if order != "desc" else None,
            "only": only, "threads": threads if override is not None else None}

    def url(**changes: Any) -> str:
        return box_url(f, **{**keep, **changes})

    def sort_url(column: str) -> str:
        flip = "asc" if sort == column and order == "desc" else None
        return url(sort=column if column != "date" else None, order=flip, page=None)

    return await mail_page(
        request, "mail/box.html", prefs=prefs, folders=folders, current_folder=f,
        folder=current, listing=listing, rows=listing.rows, sort=sort, order=order, only=only,
        threads=conversations, url=url, sort_url=sort_url, here=url(page=listing.page),
        live_url="/mail/events?" + urlencode({"v": version}))


@get("/mail/search", include_in_schema=False)
async def search(request: Request[Any, Any, Any], q: FromQuery[str] = "",
                 f: FromQuery[str | None] = None) -> Template:
    """Messages matching ``q`` (From, To, Subject, body), in ``f`` or every folder."""
    webmail, mailbox = webmail_of(request), mailbox_of(request)
    query = q.strip()[:MAX_QUERY]
    rows = []
    if query:
        hits = await webmail.search.search(mailbox, query, folder=f or None)
        rows = await webmail.mailboxes.rows(mailbox, hits)
    here = "/mail/search?" + urlencode({"q": query, **({"f": f} if f else {})})
    return await mail_page(request, "mail/search.html", query=query, rows=rows,
                           current_folder=f, search_folder=f or "", here=here)


async def _folder_change(request: Request[Any, Any, Any], done: str, fail_to: str,
                         action: Any, success: str) -> Redirect:
    try:
        await action
    except (ServiceError, StoreError) as exc:
        flash(request, str(exc) or "The folder could not be changed.", "error")
        return back(request, fail_to)
    flash(request, success)
    return back(request, done)


@post("/mail/folders/create", include_in_schema=False, request_max_body_size=MAX_FORM)
async def create_folder(request: Request[Any, Any, Any],
                        data: Annotated[dict[str, str], Form]) -> Redirect:
    name = data.get("name", "").strip()
    parent = data.get("parent", "").strip()
    full = f"{parent}/{name}" if parent and name else name
    return await _folder_change(
        request, box_url(full), data.get("back") or box_url(INBOX),
        webmail_of(request).mailboxes.create_folder(mailbox_of(request), full),
        f"Folder {full} created.")


@post("/mail/folders/rename", include_in_schema=False, request_max_body_size=MAX_FORM)
async def rename_folder(request: Request[Any, Any, Any],
                        data: Annotated[dict[str, str], Form]) -> Redirect:
    name, new = data.get("name", "").strip(), data.get("new", "").strip()
    return await _folder_change(
        request, box_url(new), box_url(name),
        webmail_of(request).mailboxes.rename_folder(mailbox_of(request), name, new),
        f"Folder {name} renamed to {new}.")


@post("/mail/folders/delete", include_in_schema=False, request_max_body_size=MAX_FORM)
async def delete_folder(request: Request[Any, Any, Any],
                        data: Annotated[dict[str, str], Form]) -> Redirect:
    name = data.get("name", "").strip()
    return await _folder_change(
        request, box_url(INBOX), box_url(name),
        webmail_of(request).mailboxes.delete_folder(mailbox_of(request), name),
        f"Folder {name} deleted.")


HANDLERS = [box, search, create_folder, rename_folder, delete_folder]
