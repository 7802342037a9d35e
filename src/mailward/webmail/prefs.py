"""A mailbox's webmail settings, kept server side as a JSON object of the keys it changed
(the rest follow the defaults, so a new default reaches everyone who never chose).

Saving validates every key: unknown keys are refused, numbers kept in range, words to
their choices. Form values are accepted as sent ("on", "1", "50"), typed values too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from sqlalchemy.exc import IntegrityError

from mailward.core.errors import InvalidInput, NotFound
from mailward.core.normalize import normalize_address, normalize_domain
from mailward.db import Database
from mailward.db.models import WebmailPrefs

__all__ = ["MailPrefs", "Prefs"]

UNDO_MAX = 30
PER_PAGE = (10, 200)
MAX_IMAGE_SENDERS = 1000
CHOICES = {"show_images": ("ask", "always", "never"), "theme": ("auto", "light", "dark")}


@dataclass(frozen=True, slots=True)
class MailPrefs:
    per_page: int = 50
    threads: bool = True
    compose_html: bool = False
    show_images: str = "ask"  # ask | always | never
    allowed_image_senders: list[str] = field(default_factory=list)  # addresses or domains
    undo_seconds: int = 10  # 0..30; the default is the operator's
    theme: str = "auto"  # auto | light | dark
    reply_above: bool = True
    mark_read_on_open: bool = True

    def images_allowed(self, sender: str) -> bool:
        """Whether a message from ``sender`` shows remote images without asking."""
        if self.show_images != "ask":
            return self.show_images == "always"
        sender = sender.strip().lower()
        domain = sender.rpartition("@")[2]
        return any(entry in (sender, domain) or domain.endswith("." + entry)
                   for entry in self.allowed_image_senders)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "on", "yes"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "off", "no", ""):
        return False
    raise ValueError("give yes or no")


def _int(low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError("give a whole number")
        number = int(value.strip()) if isinstance(value, str) else value
        if not low <= number <= high:
            raise ValueError(f"give a number from {low} to {high}")
        return number
    return check


def _choice(key: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or value.strip().lower() not in CHOICES[key]:
            raise ValueError("choose " + " or ".join(CHOICES[key]))
        return value.strip().lower()
    return check


def _sender(text: str) -> str:
    """An address, or a domain (its subdomains too)."""
    text = text.strip()
    try:
        return normalize_address(text) if "@" in text else normalize_domain(text)
    except InvalidInput as exc:
        raise ValueError(str(exc)) from None


def _senders(value: Any) -> list[str]:
    items = value.replace(",", "\n").splitlines() if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ValueError("give a list of addresses or domains")
    out: list[str] = []
    for item in items:
        if item.strip() and (entry := _sender(item)) not in out:
            out.append(entry)
    if len(out) > MAX_IMAGE_SENDERS:
        raise ValueError(f"at most {MAX_IMAGE_SENDERS} senders")
    return out


CHECKS: dict[str, Callable[[Any], Any]] = {
    "per_page": _int(*PER_PAGE), "threads": _bool, "compose_html": _bool,
    "show_images": _choice("show_images"), "allowed_image_senders": _senders,
    "undo_seconds": _int(0, UNDO_MAX), "theme": _choice("theme"), "reply_above": _bool,
    "mark_read_on_open": _bool,
}
assert set(CHECKS) == {f.name for f in fields(MailPrefs)}


class Prefs:
    def __init__(self, db: Database, undo_default: int = 10) -> None:
        self.db = db
        self.defaults = MailPrefs(undo_seconds=max(0, min(UNDO_MAX, undo_default)))

    async def get(self, mailbox: str) -> MailPrefs:
        async with self.db.session() as session:
            row = await session.get(WebmailPrefs, mailbox)
            return self._merged(_stored(row))

    async def save(self, mailbox: str, **changes: Any) -> MailPrefs:
        """Change some settings (``InvalidInput`` names the first bad one; nothing saved)."""
        checked: dict[str, Any] = {}
        for key, value in changes.items():
            if key not in CHECKS:
                raise InvalidInput(f"there is no setting {key!r}")
            try:
                checked[key] = CHECKS[key](value)
            except (ValueError, TypeError) as exc:
                raise InvalidInput(f"{key.replace('_', ' ')}: {exc}") from None
        return await self._change(mailbox, lambda stored: stored | checked)

    async def allow_images_from(self, mailbox: str, sender: str) -> None:
        """Show remote images of ``sender`` (an address or a domain) from now on."""
        try:
            entry = _sender(sender)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None

        def add(stored: dict[str, Any]) -> dict[str, Any]:
            senders = [s for s in self._merged(stored).allowed_image_senders if s != entry]
            return stored | {"allowed_image_senders": [*senders, entry][-MAX_IMAGE_SENDERS:]}

        await self._change(mailbox, add)

    async def _change(self, mailbox: str,
                      change: Callable[[dict[str, Any]], dict[str, Any]]) -> MailPrefs:
        for attempt in range(2):  # a concurrent first save may insert the row first
            async with self.db.session() as session:
                row = await session.get(WebmailPrefs, mailbox, with_for_update=True)
                stored = change(_stored(row))
                if row is None:
                    session.add(WebmailPrefs(mailbox=mailbox, prefs=json.dumps(stored)))
                else:
                    row.prefs = json.dumps(stored)
                try:
                    await session.commit()
                except IntegrityError:
                    await session.rollback()
                    if attempt or row is not None or not await self._exists(mailbox):
                        raise NotFound("no such mailbox") from None
                    continue
                return self._merged(stored)
        raise NotFound("no such mailbox")  # pragma: no cover - the loop returns or raises

    async def _exists(self, mailbox: str) -> bool:
        async with self.db.session() as session:
            return await session.get(WebmailPrefs, mailbox) is not None

    def _merged(self, stored: dict[str, Any]) -> MailPrefs:
        """The defaults with the stored keys that are still valid."""
        good: dict[str, Any] = {}
        for key, value in stored.items():
            try:
                if key == "allowed_image_senders":  # normalised when saved
                    if isinstance(value, list) and all(isinstance(v, str) for v in value):
                        good[key] = value
                    continue
                good[key] = CHECKS[key](value)
            except (KeyError, ValueError, TypeError, InvalidInput):
                continue
        return replace(self.defaults, **good)


def _stored(row: WebmailPrefs | None) -> dict[str, Any]:
    if row is None:
        return {}
    try:
        value = json.loads(row.prefs)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
