"""From the pipeline's findings to one decision per Filter recipient.

The checks run once per message; what differs between recipients is their policy
(thresholds, lists, DMARC handling) and their domain's learnt corrections. This is what the
MX tier asks, and what it applies: accept, tag, quarantine or reject.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mailward.config import Settings
from mailward.db import Database
from mailward.filter.learning import DomainLearning
from mailward.filter.personal import sender_kinds
from mailward.filter.pipeline import Action, FilterVerdict
from mailward.filter.policy import Decision, PolicyStore, decide, message_senders

__all__ = ["Judge", "spam_headers", "with_subject_tag"]


class Judge:
    def __init__(self, db: Database, settings: Settings,
                 learning: DomainLearning | None = None) -> None:
        self.policies = PolicyStore(db, settings)
        self.learning = learning or DomainLearning(db)

    async def decide(self, recipients: Sequence[str], verdict: FilterVerdict, *, data: bytes,
                     sender: str, auth: object = None) -> dict[str, Decision]:
        policies = await self.policies.policies(recipients)
        domains = {p.domain_id: p.domain for p in policies.values() if p.domain_id is not None}
        # the pipeline's one parse of the message (features, From:) when it ran
        learnt = await self.learning.findings(domains, data, parsed=verdict.parsed)
        # the From: addresses matter only to allow/block lists
        senders = message_senders(data, verdict.parsed) if any(
            p.rules for p in policies.values()) else ()
        # each recipient's own corrections count by the message's kinds of sender
        kinds = sender_kinds(data, verdict.parsed, sender, auth) if any(
            p.personal for p in policies.values()) else None
        decisions = {}
        for recipient in recipients:
            policy = policies[recipient]
            extra = (learnt[policy.domain_id],) if policy.domain_id in learnt else ()
            decisions[recipient] = decide(
                policy, verdict.score, verdict.findings, envelope_sender=sender,
                from_addresses=senders, auth=auth, extra=extra, kinds=kinds)
        return decisions


def spam_headers(decision: Decision, required: float | None = None) -> bytes:
    """``X-Spam-*`` fields for a filtered copy (SpamAssassin's names, which mail clients'
    rules already know), and ``X-Mailward-Bulk: yes`` on bulk mail."""
    spam = decision.action is not Action.ACCEPT
    tests = ",".join(f"{f.check}={f.score:g}" for f in decision.findings) or "none"
    status = f"{'Yes' if spam else 'No'}, score={decision.score:g}"
    if required is not None:
        status += f" required={required:g}"
    lines = [f"X-Spam-Flag: {'YES' if spam else 'NO'}",
             f"X-Spam-Score: {decision.score:g}",
             f"X-Spam-Status: {status} tests={tests}"]
    if decision.bulk:  # newsletters and lists, for mail clients to sort on
        lines.append("X-Mailward-Bulk: yes")
    return ("\r\n".join(lines) + "\r\n").encode()


_SUBJECT = re.compile(rb"(?im)^subject[ \t]*:[ \t]*")


def with_subject_tag(data: bytes, tag: str) -> bytes:
    """``data`` with ``tag`` put in front of its Subject (a Subject added if it has none)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, body = data, b""
    prefix = tag.encode("utf-8") + b" "
    match = _SUBJECT.search(head)
    if match is None:
        head = head + b"\r\nSubject: " + prefix.rstrip()
    elif not head[match.end():].startswith(prefix):
        head = head[:match.end()] + prefix + head[match.end():]
    return head + b"\r\n\r\n" + body
