"""The spam filter inside webmail, for one logged-in mailbox: "spam" / "not spam" buttons
(moved, and the domain's model taught at once), the mailbox's own allow and block list,
and the mail the filter held for it.

Held mail is reached through :class:`~mailward.quarantine.service.QuarantineService`
with the mailbox's own actor (:meth:`MailboxSelfService.actor`), which sees its whole
account: every entry is therefore checked to be addressed to this mailbox, as the
panel's own page does (``web.panel.me``), and another's is ``NotFound``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailward.app import Services
from mailward.core.actor import Actor
from mailward.core.errors import InvalidInput, NotFound
from mailward.core.paging import Page
from mailward.filter.settings import normalize_sender
from mailward.imap.reports import Lesson, report
from mailward.quarantine.service import QuarantineDetail, QuarantineView
from mailward.store import INBOX, MailStore
from mailward.webmail.mailbox import MailboxView

__all__ = ["AuthResults", "HeldDetail", "MailFiltering", "auth_results"]

SOURCE = "webmail"
_FIELD = re.compile(r"(?im)^authentication-results[ \t]*:(.*(?:\r?\n[ \t].*)*)")
_RESULT = re.compile(r"(?i)(?:^|;)\s*(spf|dkim|dmarc|arc)\s*=\s*([a-z]+)([^;]*)")
_PROPERTY = re.compile(r"(?i)\b(smtp\.mailfrom|header\.d|header\.from|header\.i)\s*=\s*([^\s;]+)")


@dataclass(frozen=True, slots=True)
class AuthResults:
    """What our MX found when the message arrived, read from the Authentication-Results
    field it put on top of the held message (RFC 8601); ``""`` when not said."""

    spf: str
    spf_domain: str  # smtp.mailfrom
    dkim: str
    dkim_domain: str  # header.d of the first signature
    dmarc: str
    dmarc_domain: str  # header.from
    arc: str


@dataclass(frozen=True, slots=True)
class HeldDetail(QuarantineDetail):
    """The quarantine's detail (score and reason in ``entry``, ``findings``) and the
    authentication results (``None`` when the message carries none of ours)."""

    auth: AuthResults | None = None


def auth_results(headers: str, authserv_id: str) -> AuthResults | None:
    """The first Authentication-Results field of ``headers`` by ``authserv_id`` (ours:
    the MX puts it on top and drops forged ones), parsed; ``None`` if there is none."""
    for match in _FIELD.finditer(headers):
        value = re.sub(r"\r?\n[ \t]+", " ", match.group(1)).strip()
        server, _sep, rest = value.partition(";")
        if server.strip().split()[0:1] != [authserv_id]:
            continue
        found: dict[str, tuple[str, str]] = {}
        for method, result, props in _RESULT.findall(rest):
            names = dict((k.lower(), v) for k, v in _PROPERTY.findall(props))
            domain = (names.get("smtp.mailfrom") or names.get("header.d")
                      or names.get("header.from") or "")
            found.setdefault(method.lower(), (result.lower(), domain.rsplit("@", 1)[-1]))
        spf, dkim, dmarc, arc = (found.get(m, ("", "")) for m in ("spf", "dkim", "dmarc", "arc"))
        return AuthResults(spf[0], spf[1], dkim[0], dkim[1], dmarc[0], dmarc[1], arc[0])
    return None


class MailFiltering:
    """Spam buttons, sender lists and held mail of one mailbox at a time."""

    def __init__(self, services: Services, store: MailStore) -> None:
        self.services = services
        self.store = store
        self.mailboxes = MailboxView(services, store)

    async def _actor(self, mailbox: str) -> Actor:
        return await self.services.mailbox_self.actor(mailbox, SOURCE)

    async def report(self, mailbox: str, folder: str, uids: list[int], *, spam: bool) -> str:
        """Move to Junk (spam) or INBOX (not spam) and teach the mailbox's domain's model
        before returning; the folder they are in now."""
        target = await self.mailboxes.special(mailbox, "junk") if spam else INBOX
        await self.store.folder_status(mailbox, folder)  # NoSuchFolder before anything
        if folder == target:
            lesson = Lesson(mailbox, folder, spam, uids=tuple(uids))
        else:
            moved = await self.mailboxes.move(mailbox, folder, uids, target, teach=False)
            lesson = Lesson(mailbox, target, spam, uids=tuple(moved.values()))
        await report(self.services.filter, self.store, [lesson])
        return target

    async def sender_rule(self, mailbox: str, sender: str, action: str) -> None:
        """Put ``sender`` (an address, or ``@domain``) on the mailbox's own allow or block
        list, off the other one."""
        if action not in ("allow", "block"):
            raise InvalidInput("action must be allow or block")
        entry = normalize_sender(sender)
        actor = await self._actor(mailbox)
        filters = self.services.filter
        for rule in await filters.list_senders(actor, address=mailbox):
            if rule.sender == entry and rule.address == mailbox:
                if rule.action == action:
                    return
                await filters.remove_sender(actor, entry, address=mailbox)
        await filters.add_sender(actor, entry, action, address=mailbox, exist_ok=True)

    async def held(self, mailbox: str, *, page: int = 1, per_page: int = 50,
                   ) -> Page[QuarantineView]:
        """The mail held for this mailbox, newest first."""
        actor = await self._actor(mailbox)
        return await self.services.quarantine.list(actor, address=mailbox, page=page,
                                                   per_page=per_page)

    async def _own(self, mailbox: str, entry_id: int) -> tuple[Actor, QuarantineDetail]:
        actor = await self._actor(mailbox)
        detail = await self.services.quarantine.show(actor, entry_id)
        if detail.entry.recipient != mailbox:  # a colleague's mail is not theirs to see
            raise NotFound(f"no quarantined message {entry_id}")
        return actor, detail

    async def held_detail(self, mailbox: str, entry_id: int) -> HeldDetail:
        """Why it was held: score and reason, the findings, and the SPF/DKIM/DMARC results
        our MX wrote into the message's Authentication-Results."""
        _actor, detail = await self._own(mailbox, entry_id)
        auth = auth_results(detail.headers, self.services.settings.node_name)
        return HeldDetail(detail.entry, detail.findings, detail.peer, detail.headers, auth)

    async def release(self, mailbox: str, entry_id: int, *, always_allow: bool = False) -> None:
        """Deliver it to the mailbox (the model learns "ham"); with ``always_allow`` the
        sender goes on the mailbox's allow list."""
        actor, _detail = await self._own(mailbox, entry_id)
        await self.services.quarantine.release(actor, entry_id, allow_sender=always_allow,
                                               by_recipient=True)

    async def delete_held(self, mailbox: str, entry_id: int) -> None:
        actor, _detail = await self._own(mailbox, entry_id)
        await self.services.quarantine.delete(actor, entry_id)

    async def held_content(self, mailbox: str, entry_id: int) -> bytes:
        actor, _detail = await self._own(mailbox, entry_id)
        return await self.services.quarantine.content(actor, entry_id)
