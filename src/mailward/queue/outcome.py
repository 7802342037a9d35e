"""What one delivery attempt did for one recipient."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Result(enum.StrEnum):
    DELIVERED = "delivered"
    DEFERRED = "deferred"  # temporary: keep it and retry
    FAILED = "failed"  # permanent: bounce it


@dataclass(frozen=True, slots=True)
class Forwarded:
    """A copy local delivery queued for a forwarder or an auto-cc (for the trace)."""

    queue_id: str
    to: tuple[str, ...]
    copy: str  # "forward" or "autocc"


@dataclass(frozen=True, slots=True)
class Outcome:
    result: Result
    status: str  # RFC 3463 enhanced status, e.g. "5.1.1"
    detail: str  # human-readable reason or the remote server's reply
    remote_mta: str | None = None
    relayed: bool = False  # handed to another server (DSN action "relayed")
    local: bool = False  # delivered (or tried) here: the hosting route
    # what the trace tells of the attempt: the address connected to and how long the
    # transaction took (relay); the mailbox, its folder and the copies queued (local)
    ip: str | None = None
    port: int | None = None
    duration_ms: int | None = None
    mailbox: str | None = None
    folder: str | None = None
    forwarded: tuple[Forwarded, ...] = ()

    @classmethod
    def delivered(cls, detail: str = "delivered", *, remote_mta: str | None = None,
                  relayed: bool = False) -> Outcome:
        return cls(Result.DELIVERED, "2.0.0", detail, remote_mta, relayed)

    @classmethod
    def deferred(cls, status: str, detail: str, *, remote_mta: str | None = None) -> Outcome:
        return cls(Result.DEFERRED, status, detail, remote_mta)

    @classmethod
    def failed(cls, status: str, detail: str, *, remote_mta: str | None = None) -> Outcome:
        return cls(Result.FAILED, status, detail, remote_mta)

    @classmethod
    def from_reason(cls, reason: str, *, remote_mta: str | None = None) -> Outcome:
        """From ``"4.3.5 text"`` / ``"5.1.2 text"``: the class digit decides."""
        status, _, text = reason.partition(" ")
        if status.startswith("5"):
            return cls.failed(status, text, remote_mta=remote_mta)
        return cls.deferred(status, text, remote_mta=remote_mta)

    def describe(self) -> str:
        where = f" ({self.remote_mta})" if self.remote_mta else ""
        return f"{self.status} {self.detail}{where}"
