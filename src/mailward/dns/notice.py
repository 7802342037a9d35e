"""The email an account's admins get when a domain's scheduled DNS check changes status.

A pure builder (no I/O): an RFC 5322 message as CRLF bytes, marked ``Auto-Submitted:
auto-generated`` (RFC 3834) so that vacation responders stay quiet. It names the domain,
the old and new status, every warn/fail item with its one-line fix, and where to see more.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from mailward.dns.items import CheckItem, Status

__all__ = ["build_notice"]

_VERDICT = {"pass": "all checks pass", "warn": "needs attention", "fail": "has a problem"}


def build_notice(
    *, sender: str, recipients: Sequence[str], domain: str, old: Status, new: Status,
    items: Sequence[CheckItem], checked_at: datetime, node: str, panel_url: str,
) -> bytes:
    """The status-change notice for ``domain`` (``old`` → ``new``) to ``recipients``."""
    message = EmailMessage(policy=SMTP)
    message["From"] = f"mailward DNS check <{sender}>"
    message["To"] = ", ".join(recipients)
    message["Subject"] = f"DNS of {domain}: {_VERDICT[new]} (was {old}, now {new})"
    message["Date"] = format_datetime(checked_at)
    message["Message-ID"] = make_msgid("dns-check", domain=node)
    message["Auto-Submitted"] = "auto-generated"
    message["X-Mailward-Domain"] = domain
    message.set_content(_body(domain, old, new, items, checked_at, panel_url))
    return message.as_bytes()


def _body(domain: str, old: Status, new: Status, items: Sequence[CheckItem],
          checked_at: datetime, panel_url: str) -> str:
    when = checked_at.strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"The scheduled DNS check of {domain} at {when} changed from {old} to {new}.", ""]
    problems = [item for item in items if item.status != "pass"]
    if not problems:
        lines.append("Every check passes now; nothing to do.")
    for item in problems:
        lines.append(f"{item.status.upper()}  {item.name}: {item.message}")
        if item.fix:
            lines.append(f"      fix: {item.fix}")
    lines += [
        "",
        f"The whole checklist: {panel_url} (domain {domain}), "
        f"or `mailward dns check {domain}`.",
        "DNS changes take up to the old records' TTL to reach every cache; "
        "the next scheduled check will tell.",
    ]
    return "\n".join(lines) + "\n"
