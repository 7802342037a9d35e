"""``POST /mail/actions``: what the message list and the read view do to messages (read,
unread, flag, unflag, move, delete, spam, not spam, allow or block the sender), and
``POST /mail/folders/empty`` (Trash or Junk, after a confirmation step that needs no
script). Every uid is checked to be a message of the logged-in mailbox's folder first
(404 otherwise); a sender rule takes the sender from the stored message, never from the
form."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from litestar import Request, post
from litestar.exceptions import NotFoundException, ValidationException
from litestar.response import Redirect, Template

from mailward.core.errors import ServiceError
from mailward.web.webmail.common import MAIL_GUARD, back, flash, mail_page, mailbox_of, webmail_of
from mailward.webmail.mailbox import MessageRow

__all__ = ["HANDLERS"]

MAX_FORM = 256 * 1024  # a page of selected uids fits easily
MAX_UIDS = 5000
FLAGS = {"read": ("\\Seen", True), "unread": ("\\Seen", False),
         "flag": ("\\Flagged", True), "unflag": ("\\Flagged", False)}
ACTIONS = {*FLAGS, "move", "delete", "spam", "notspam", "allow-sender", "block-sender"}
EMPTYABLE = ("trash", "junk")


def folder_url(folder: str) -> str:
    return f"/mail/box?f={quote(folder, safe='')}"


def _count(n: int) -> str:
    return f"{n} message" + ("" if n == 1 else "s")


def _uids(values: list[str]) -> list[int]:
    try:
        uids = sorted({int(v) for v in values})
    except ValueError:
        raise ValidationException("uid must be a number") from None
    if not uids or len(uids) > MAX_UIDS or uids[0] < 1:
        raise ValidationException("select at least one message")
    return uids


async def _rows(request: Request[Any, Any, Any], mailbox: str, folder: str,
                uids: list[int]) -> list[MessageRow]:
    """The messages ``uids`` of ``folder`` in ``mailbox``; 404 if any is not there."""
    rows = await webmail_of(request).mailboxes.rows(mailbox, [(folder, u) for u in uids])
    if len(rows) != len(uids):
        raise NotFoundException("no such message")
    return rows


async def _act(request: Request[Any, Any, Any], mailbox: str, action: str, folder: str,
               uids: list[int], target: str) -> str:
    """Do ``action``; the message to flash."""
    webmail = webmail_of(request)
    views = webmail.mailboxes
    rows = await _rows(request, mailbox, folder, uids)
    if action in FLAGS:
        flag, on = FLAGS[action]
        await views.set_flag(mailbox, folder, uids, flag, on)
        return f"Marked {_count(len(uids))} as {action}" + ("ged." if "flag" in action else ".")
    if action == "move":
        if not target:
            raise ValidationException("choose a folder to move to")
        await views.move(mailbox, folder, uids, target)
        return f"Moved {_count(len(uids))} to {target}."
    if action == "delete":
        trash = await views.special(mailbox, "trash")
        await views.delete(mailbox, folder, uids)
        if folder == trash:
            return f"Deleted {_count(len(uids))} for good."
        return f"Moved {_count(len(uids))} to {trash}."
    if action in ("spam", "notspam"):
        moved_to = await webmail.filtering.report(mailbox, folder, uids, spam=action == "spam")
        what = "spam" if action == "spam" else "not spam"
        return f"Reported {_count(len(uids))} as {what}: moved to {moved_to}."
    senders = sorted({r.sender_address.lower() for r in rows if r.sender_address})
    if not senders:
        raise ValidationException("the message has no sender address")
    rule = "allow" if action == "allow-sender" else "block"
    for sender in senders:
        await webmail.filtering.sender_rule(mailbox, sender, rule)
    who = ", ".join(senders)
    if rule == "allow":
        return f"Mail from {who} is always accepted from now on."
    return f"Mail from {who} is blocked from now on."


@post("/mail/actions", include_in_schema=False, guards=[MAIL_GUARD],
      request_max_body_size=MAX_FORM)
async def actions(request: Request[Any, Any, Any]) -> Redirect:
    """The form's ``action`` on the messages ``uid`` (repeated) of folder ``f``; back to
    the form's ``back`` (a path of this site) or the folder, with a message."""
    mailbox = mailbox_of(request)
    form = await request.form()
    folder, action = str(form.get("f") or ""), str(form.get("action") or "")
    target, to = str(form.get("target") or ""), form.get("back")
    if not folder:
        raise ValidationException("no folder")
    if action not in ACTIONS:
        raise ValidationException("unknown action")
    uids = _uids([str(v) for v in form.getall("uid", [])])
    default = folder_url(folder)
    try:
        text = await _act(request, mailbox, action, folder, uids, target)
    except ServiceError as exc:
        flash(request, str(exc), "error")
        return back(request, default, target=str(to) if to else None)
    flash(request, text)
    if action in ("move", "delete", "spam", "notspam") and to and "uid=" in str(to):
        to = None  # the message left this folder: its read view is gone, show the folder
    return back(request, default, target=str(to) if to else None)


@post("/mail/folders/empty", include_in_schema=False, guards=[MAIL_GUARD],
      request_max_body_size=16 * 1024)
async def empty(request: Request[Any, Any, Any]) -> Template | Redirect:
    """Empty Trash or Junk: the first post (no ``confirm=yes``) asks, the second empties."""
    mailbox = mailbox_of(request)
    form = await request.form()
    folder = str(form.get("f") or "")
    views = webmail_of(request).mailboxes
    specials = {await views.special(mailbox, kind): kind for kind in EMPTYABLE}
    if folder not in specials:
        raise ValidationException("only Trash and Junk can be emptied")
    if form.get("confirm") != "yes":
        info = next((f for f in await views.folders(mailbox) if f.name == folder), None)
        return await mail_page(request, "mail/confirm_empty.html", folder=folder,
                               total=info.total if info else 0, current_folder=folder)
    gone = await views.empty(mailbox, folder)
    flash(request, f"Emptied {folder}: {_count(gone)} deleted for good.")
    return back(request, folder_url(folder))


HANDLERS = [actions, empty]
