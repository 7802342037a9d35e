"""Bulk mail: newsletters, notifications and mailing lists, told apart from person-to-person
mail by the headers their senders add.

``BulkCheck`` classifies; it does not score: a bulk message gets one ``bulk`` finding of 0
points whose reason names the signals found, e.g. ``bulk mail: List-Unsubscribe (one-click),
Feedback-ID, sent through Mailchimp``. What happens to it is each recipient's policy
(``bulk_action``: deliver, tag, or junk above a ``bulk_score``); the MX marks the copies
of a bulk message ``X-Mailward-Bulk: yes`` for mail clients to sort on.

Signals, each enough on its own: ``List-Unsubscribe`` (RFC 2369; RFC 8058 one-click with
``List-Unsubscribe-Post``), ``List-Id`` (RFC 2919), ``Precedence: bulk | list | junk``,
``Feedback-ID`` (the feedback-loop id of large senders), ``X-CSA-Complaints`` (certified
senders), campaign headers (``CAMPAIGN``) and those of marketing platforms
(``ESP_MARKETING``). The headers of sending services used for one-to-one transactional mail
too (Amazon SES, Mailgun, SendGrid, Postmark, SparkPost: ``ESP_TRANSACTIONAL``) are named in
the reason but make a message bulk only together with another signal: a password reset is
not a newsletter.

The check reads the pipeline's one parse (its header block) and never the body.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from mailward.filter.pipeline import FilterInput, Finding, headers_of, parsed_of

__all__ = ["BULK", "ESP_MARKETING", "ESP_TRANSACTIONAL", "BulkCheck", "BulkSignals",
           "bulk_signals", "is_bulk"]

BULK = "bulk"  # the finding's name (0 points: a classification, not spam evidence)
PRECEDENCE = frozenset(("bulk", "list", "junk"))
# header name (lower-case) or prefix ending in "-" -> the platform it shows
ESP_MARKETING: dict[str, str] = {
    "x-mc-user": "Mailchimp",
    "x-mailchimp-": "Mailchimp",
    "x-mailjet-campaign": "Mailjet",
    "x-mj-": "Mailjet",
    "x-mailin-campaign": "Brevo",
    "x-sib-id": "Brevo",
    "x-hubspot-": "HubSpot",
    "x-marketo-": "Marketo",
    "x-emarsys-": "Emarsys",
    "x-ems-": "Emarsys",
    "x-cmae-": "Campaign Monitor",
    "x-klaviyo-": "Klaviyo",
}
ESP_TRANSACTIONAL: dict[str, str] = {
    "x-ses-outgoing": "Amazon SES",
    "x-ses-": "Amazon SES",
    "x-mailgun-": "Mailgun",
    "x-sg-eid": "SendGrid",
    "x-sg-id": "SendGrid",
    "x-pm-message-id": "Postmark",
    "x-msys-api": "SparkPost",
    "x-mandrill-user": "Mandrill",
}
# campaign headers of no one platform: the reason names the header itself
CAMPAIGN = frozenset(("x-campaign", "x-campaignid", "x-campaign-id", "x-rpcampaign",
                      "x-newsletter", "x-listmember"))
MAX_FIELDS = 200  # header fields looked at (a header block is rarely longer)


@dataclass(frozen=True, slots=True)
class BulkSignals:
    """What marks a message as bulk: ``strong`` signals (each enough) and ``weak`` ones
    (sending services also used for one-to-one mail), both as phrases for the reason."""

    strong: tuple[str, ...] = ()
    weak: tuple[str, ...] = ()

    @property
    def bulk(self) -> bool:
        return bool(self.strong)

    def reason(self) -> str:
        return "bulk mail: " + ", ".join((*self.strong, *self.weak))


_NAMED = {"list-id": "List-Id", "feedback-id": "Feedback-ID",
          "x-csa-complaints": "X-CSA-Complaints"}
_EXACT = frozenset(("list-unsubscribe", "list-unsubscribe-post", "precedence", "x-mailer",
                    *_NAMED, *CAMPAIGN, *ESP_MARKETING, *ESP_TRANSACTIONAL))
_PREFIXES = tuple(key for key in (*ESP_MARKETING, *ESP_TRANSACTIONAL) if key.endswith("-"))


def _platform(name: str, table: dict[str, str]) -> str | None:
    found = table.get(name)
    if found is not None:
        return found
    return next((who for key, who in table.items() if key.endswith("-")
                 and name.startswith(key)), None)


def bulk_signals(fields: Iterable[tuple[str, str]]) -> BulkSignals:
    """The bulk signals in a header block given as ``(name, value)`` pairs (any case)."""
    strong: list[str] = []
    weak: list[str] = []
    unsubscribe = one_click = False
    for count, (raw_name, raw_value) in enumerate(fields):
        if count >= MAX_FIELDS:
            break
        name = raw_name.lower()
        if name not in _EXACT and not name.startswith(_PREFIXES):
            continue  # most fields: one set lookup and one prefix test
        name = name.strip()
        if name == "list-unsubscribe":
            unsubscribe = True
        elif name == "list-unsubscribe-post":
            one_click = one_click or "one-click" in raw_value.lower()
        elif name == "precedence":
            value = raw_value.strip().lower()
            if value in PRECEDENCE:
                strong.append(f"Precedence: {value}")
        elif name in _NAMED:
            strong.append(_NAMED[name])
        elif name == "x-mailer":
            if "mailchimp" in raw_value.lower():
                strong.append("sent through Mailchimp")
        elif name in CAMPAIGN:
            strong.append(raw_name.strip())
        elif (who := _platform(name, ESP_MARKETING)) is not None:
            strong.append(f"sent through {who}")
        elif (who := _platform(name, ESP_TRANSACTIONAL)) is not None:
            weak.append(f"sent through {who}")
    if unsubscribe:
        strong.insert(0, "List-Unsubscribe (one-click)" if one_click else "List-Unsubscribe")
    unique = tuple(dict.fromkeys(strong))
    return BulkSignals(unique, tuple(dict.fromkeys(w for w in weak if w not in unique)))


def _fields(message: FilterInput) -> Iterator[tuple[str, str]]:
    """The header fields of the message: from its parse, else the intake's header index."""
    root = parsed_of(message).root
    if root is not None:
        for name, value in root.raw_items():
            yield name, value if isinstance(value, str) else str(value)
        return
    for field_name, field_value in headers_of(message).fields:
        yield field_name.decode("ascii", "replace"), field_value.decode("ascii", "replace")


def is_bulk(message: FilterInput) -> BulkSignals:
    """The bulk signals of a filter input (its one parse)."""
    return bulk_signals(_fields(message))


class BulkCheck:
    """Pipeline check classifying bulk mail (a 0-point ``bulk`` finding naming why)."""

    name = "bulk"

    def blocking(self, message: FilterInput) -> Sequence[Finding]:
        found = is_bulk(message)
        return [Finding(BULK, 0.0, found.reason())] if found.bulk else []

    async def __call__(self, message: FilterInput) -> Sequence[Finding]:
        return await asyncio.to_thread(self.blocking, message)
