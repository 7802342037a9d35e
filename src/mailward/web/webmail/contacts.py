"""``/mail/contacts``: the mailbox's address book — list and search, add, edit, delete,
groups (create, rename, delete, members), import (.vcf or .csv, with what happened to
each card), export (vCard 3, vCard 4, CSV as a download) and the compose form's
suggestions (JSON). Every id is looked up within the logged-in mailbox (``Contacts``
answers "not found" for another mailbox's)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from litestar import Request, Response, get, post
from litestar.datastructures import FormMultiDict, UploadFile
from litestar.exceptions import ValidationException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from mailward.core.errors import NotFound, ServiceError
from mailward.web.webmail.common import MAIL_GUARD, back, flash, mail_page, mailbox_of, webmail_of
from mailward.webmail.contacts import MAX_IMPORT_BYTES, Contact, ContactIn, mailbox_text

__all__ = ["HANDLERS"]

MAX_FORM = 64 * 1024
MAX_MEMBERS_FORM = 512 * 1024  # a page of ticked contacts
MAX_IMPORT_BODY = MAX_IMPORT_BYTES + 64 * 1024
EXPORTS = {"vcard3": "contacts.vcf", "vcard4": "contacts.vcf", "csv": "contacts.csv"}
SUGGESTIONS = 10


def _lines(form: FormMultiDict, name: str) -> list[str]:
    value = form.get(name)
    text = value if isinstance(value, str) else ""
    return [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()]


def _text(form: FormMultiDict, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _ids(form: FormMultiDict, name: str) -> list[int]:
    try:
        return sorted({int(v) for v in form.getall(name, []) if isinstance(v, str)})
    except ValueError:
        raise ValidationException(f"{name}: not a number") from None


def _contact_in(form: FormMultiDict) -> ContactIn:
    phones = [p.strip() for p in _text(form, "phones").splitlines() if p.strip()]
    return ContactIn(name=_text(form, "name"), emails=_lines(form, "emails"), phones=phones,
                     organisation=_text(form, "organisation"), note=_text(form, "note"))


async def _list_page(request: Request[Any, Any, Any], *, q: str = "", group: int | None = None,
                     imported: Any = None, import_error: str | None = None,
                     status: int = 200) -> Template:
    mailbox = mailbox_of(request)
    contacts = webmail_of(request).contacts
    groups = await contacts.groups(mailbox)
    shown = next((g for g in groups if g.id == group), None)
    found = await contacts.list(mailbox, q or None, shown.id if shown else None)
    return await mail_page(request, "mail/contacts.html", status=status, contacts=found,
                           groups=groups, group=shown, q=q, imported=imported,
                           import_error=import_error)


@get("/mail/contacts", include_in_schema=False, guards=[MAIL_GUARD])
async def contacts_list(request: Request[Any, Any, Any], q: FromQuery[str] = "",
                        group: FromQuery[int | None] = None) -> Template:
    return await _list_page(request, q=q[:200], group=group)


async def _edit_page(request: Request[Any, Any, Any], contact: Contact | None,
                     entered: ContactIn | None = None, error: str | None = None,
                     status: int = 200, in_groups: list[int] | None = None) -> Template:
    mailbox = mailbox_of(request)
    groups = await webmail_of(request).contacts.groups(mailbox)
    if in_groups is None:
        in_groups = [g.id for g in groups if contact and contact.id in g.members]
    shown = entered or (ContactIn(contact.name, contact.emails, contact.phones,
                                  contact.organisation, contact.note) if contact else ContactIn())
    return await mail_page(request, "mail/contact_edit.html", status=status, contact=contact,
                           entered=shown, groups=groups, in_groups=in_groups, error=error)


@get("/mail/contacts/new", include_in_schema=False, guards=[MAIL_GUARD])
async def contact_new(request: Request[Any, Any, Any], email: FromQuery[str] = "",
                      name: FromQuery[str] = "") -> Template:
    """An empty contact form (``email``/``name`` prefilled: "add to contacts" links)."""
    entered = ContactIn(name=name[:200], emails=[email[:320]] if email else [])
    return await _edit_page(request, None, entered)


@get("/mail/contacts/{contact_id:int}", include_in_schema=False, guards=[MAIL_GUARD])
async def contact_edit(request: Request[Any, Any, Any], contact_id: FromPath[int]) -> Template:
    contact = await webmail_of(request).contacts.get(mailbox_of(request), contact_id)
    return await _edit_page(request, contact)


async def _save(request: Request[Any, Any, Any], contact_id: int | None) -> Template | Redirect:
    mailbox = mailbox_of(request)
    contacts = webmail_of(request).contacts
    form = await request.form()
    entered = _contact_in(form)
    group_ids = _ids(form, "group")
    current = await contacts.get(mailbox, contact_id) if contact_id is not None else None
    try:
        if current is None:
            saved = await contacts.add(mailbox, entered)
        else:
            saved = await contacts.update(mailbox, current.id, entered)
        await contacts.set_contact_groups(mailbox, saved.id, group_ids)
    except ServiceError as exc:
        return await _edit_page(request, current, entered, str(exc), 400, group_ids)
    flash(request, f"Saved {saved.display or 'the contact'}.")
    return back(request, "/mail/contacts")


@post("/mail/contacts/new", include_in_schema=False, guards=[MAIL_GUARD],
      request_max_body_size=MAX_FORM)
async def contact_add(request: Request[Any, Any, Any]) -> Template | Redirect:
    return await _save(request, None)


@post("/mail/contacts/{contact_id:int}", include_in_schema=False, guards=[MAIL_GUARD],
      request_max_body_size=MAX_FORM)
async def contact_update(request: Request[Any, Any, Any],
                         contact_id: FromPath[int]) -> Template | Redirect:
    return await _save(request, contact_id)


@post("/mail/contacts/{contact_id:int}/delete", include_in_schema=False, guards=[MAIL_GUARD],
      request_max_body_size=MAX_FORM)
async def contact_delete(request: Request[Any, Any, Any], contact_id: FromPath[int]) -> Redirect:
    mailbox = mailbox_of(request)
    contacts = webmail_of(request).contacts
    contact = await contacts.get(mailbox, contact_id)
    await contacts.delete(mailbox, contact.id)
    flash(request, f"Deleted {contact.display or 'the contact'}.")
    return back(request, "/mail/contacts")


# -- groups ------------------------------------------------------------------------------


def _group_url(group_id: int) -> str:
    return f"/mail/contacts?group={group_id}"


@post("/mail/contacts/groups/new", include_in_schema=False, guards=[MAIL_GUARD],
      request_max_body_size=MAX_FORM)
async def group_add(request: Request[Any, Any, Any]) -> Redirect:
    form = await request.form()
    try:
        group = await webmail_of(request).contacts.add_group(mailbox_of(request),
                                                             _text(form, "name"))
    except ServiceError as exc:
        flash(request, str(exc), "error")
        return back(request, "/mail/contacts")
    flash(request, f"Group {group.name} created.")
    return back(request, _group_url(group.id))


@post("/mail/contacts/groups/{group_id:int}/rename", include_in_schema=False,
      guards=[MAIL_GUARD], request_max_body_size=MAX_FORM)
async def group_rename(request: Request[Any, Any, Any], group_id: FromPath[int]) -> Redirect:
    form = await request.form()
    try:
        group = await webmail_of(request).contacts.rename_group(
            mailbox_of(request), group_id, _text(form, "name"))
    except NotFound:
        raise
    except ServiceError as exc:
        flash(request, str(exc), "error")
        return back(request, _group_url(group_id))
    flash(request, f"Group renamed to {group.name}.")
    return back(request, _group_url(group.id))


@post("/mail/contacts/groups/{group_id:int}/delete", include_in_schema=False,
      guards=[MAIL_GUARD], request_max_body_size=MAX_FORM)
async def group_delete(request: Request[Any, Any, Any], group_id: FromPath[int]) -> Redirect:
    await webmail_of(request).contacts.delete_group(mailbox_of(request), group_id)
    flash(request, "Group deleted; its contacts stay.")
    return back(request, "/mail/contacts")


@post("/mail/contacts/groups/members", include_in_schema=False, guards=[MAIL_GUARD],
      request_max_body_size=MAX_MEMBERS_FORM)
async def group_members(request: Request[Any, Any, Any]) -> Redirect:
    """Add the ticked contacts to a group (``op=add``) or take them out (``op=remove``)."""
    mailbox = mailbox_of(request)
    contacts = webmail_of(request).contacts
    form = await request.form()
    [group_id] = _ids(form, "group") or [0]
    ticked = set(_ids(form, "contact"))
    group = next((g for g in await contacts.groups(mailbox) if g.id == group_id), None)
    if group is None:
        flash(request, "Choose a group first.", "error")
        return back(request, "/mail/contacts", target=_text(form, "back") or None)
    if not ticked:
        flash(request, "Tick the contacts first.", "error")
        return back(request, "/mail/contacts", target=_text(form, "back") or None)
    adding = _text(form, "op") != "remove"
    members = set(group.members) | ticked if adding else set(group.members) - ticked
    await contacts.set_members(mailbox, group.id, sorted(members))
    n = len(ticked)
    flash(request, f"{n} contact{'' if n == 1 else 's'} "
                   f"{'added to' if adding else 'taken out of'} {group.name}.")
    return back(request, _group_url(group.id), target=_text(form, "back") or None)


# -- import, export, suggestions ---------------------------------------------------------


@post("/mail/contacts/import", include_in_schema=False, guards=[MAIL_GUARD],
      request_max_body_size=MAX_IMPORT_BODY)
async def contacts_import(request: Request[Any, Any, Any]) -> Template:
    """Import a .vcf or .csv file; the page shows what was added, updated, skipped and
    which cards were refused (by number, with the reason)."""
    mailbox = mailbox_of(request)
    form = await request.form()
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return await _list_page(request, import_error="Choose a .vcf or .csv file.", status=400)
    data = await upload.read()
    try:
        result = await webmail_of(request).contacts.import_(mailbox, data, upload.filename)
    except ServiceError as exc:
        return await _list_page(request, import_error=str(exc), status=400)
    return await _list_page(request, imported=result)


@get("/mail/contacts/export", include_in_schema=False, guards=[MAIL_GUARD])
async def contacts_export(request: Request[Any, Any, Any],
                          format: FromQuery[str] = "vcard4") -> Response[bytes]:
    if format not in EXPORTS:
        raise ValidationException("export as vcard3, vcard4 or csv")
    content_type, data = await webmail_of(request).contacts.export(mailbox_of(request), format)
    name = EXPORTS[format]
    return Response(data, media_type=content_type, headers={
        "Content-Disposition": f"attachment; filename=\"{name}\"; "
                               f"filename*=UTF-8''{quote(name)}",
        "Cache-Control": "no-store"})


@get("/mail/contacts/suggest", include_in_schema=False, guards=[MAIL_GUARD])
async def contacts_suggest(request: Request[Any, Any, Any],
                           q: FromQuery[str] = "") -> Response[list[dict[str, str]]]:
    """``[{"name", "email", "label"}]``: ``label`` is what goes into the address field
    (``Name <a@x>``, or a group's members joined)."""
    found = await webmail_of(request).contacts.suggest(mailbox_of(request), q[:200],
                                                       SUGGESTIONS)
    answer = [{"name": name, "email": email,
               "label": email if "," in email or "<" in email else mailbox_text(name, email)}
              for name, email in found]
    return Response(answer, headers={"Cache-Control": "no-store"})


HANDLERS = [contacts_list, contact_new, contact_edit, contact_add, contact_update,
            contact_delete, group_add, group_rename, group_delete, group_members,
            contacts_import, contacts_export, contacts_suggest]
