"""Virus scanning with ClamAV's ``clamd``: the MX tier asks before the spam pipeline.

``ClamdClient`` speaks clamd's ``INSTREAM`` command (the message in chunks, each behind its
4-byte length, a zero length at the end; the answer ends with a NUL) over a unix socket or
TCP ``host:port``, one connection per scan, the whole exchange within a timeout.
``VirusScanner`` turns the answer into a ``Scan``: clean, infected (with the signature clamd
names), failed (clamd unreachable, slow, or answering an error) or skipped (the message is
larger than ``clamd_max_bytes``).

A virus verdict is not a score. The intake refuses or holds an infected message for each
Filter recipient as its ``virus_action`` says (``FilterPolicy.virus_action``: the address's,
else its domain's, else ``reject``); a failed or skipped scan is a neutral (0-point)
finding, ``virus-scan-failed`` or ``virus-scan-skipped``, and ``clamd_fail_open`` decides
whether a failed one is delivered or answered 451.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import or_, select

from mailward.config import Settings
from mailward.db import Database
from mailward.db.models import FilterPolicy
from mailward.directory.facts import address_ids, domain_keys
from mailward.filter.pipeline import Finding

__all__ = ["DEFAULT_VIRUS_ACTION", "SCAN_FAILED", "SCAN_SKIPPED", "VIRUS", "VIRUS_ACTIONS",
           "VIRUS_REASON", "ClamdClient", "ClamdError", "Scan", "ScanStatus", "VirusScanner",
           "clamd_target", "is_virus_reason", "scan_of", "virus_reason"]

log = logging.getLogger(__name__)

VIRUS = "virus"  # the check name of an infected message's finding (in the quarantine)
SCAN_FAILED = "virus-scan-failed"
SCAN_SKIPPED = "virus-scan-skipped"
VIRUS_ACTIONS = ("reject", "quarantine")
DEFAULT_VIRUS_ACTION = "reject"
VIRUS_REASON = "virus found"  # how the reason of a hold or refusal for a virus starts


def virus_reason(signature: str) -> str:
    """The reason of a hold or refusal for a virus (the quarantine keys on it)."""
    return f"{VIRUS_REASON} ({signature})"


def is_virus_reason(reason: str) -> bool:
    """Whether a quarantine reason is a virus hold (released by an administrator only)."""
    return reason.startswith(VIRUS_REASON)
CHUNK_BYTES = 64 * 1024
MAX_ANSWER_BYTES = 4096
_UNPRINTABLE = re.compile(r"[^\x21-\x7e]")


class ClamdError(Exception):
    """clamd hung up without an answer (e.g. past its stream size limit)."""


def clamd_target(address: str) -> str | tuple[str, int]:
    """Where clamd listens: a unix socket path (``/run/clamav/clamd.ctl``, or
    ``unix:`` before a path) or ``(host, port)`` from ``host:port`` (``[::1]:3310``)."""
    text = address.strip()
    if text.startswith("unix:"):
        return text[len("unix:"):]
    if "/" in text:
        return text
    host, colon, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"clamd_socket: {address!r} is neither a socket path nor host:port")
    return host, int(port)


class ClamdClient:
    """One clamd, asked over a fresh connection per command."""

    def __init__(self, address: str, timeout: float, *, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.target = clamd_target(address)
        self.timeout = timeout
        self.chunk_bytes = chunk_bytes

    def __str__(self) -> str:
        return self.target if isinstance(self.target, str) else \
            f"{self.target[0]}:{self.target[1]}"

    async def ping(self) -> bool:
        """Whether clamd answers ``PING`` with ``PONG``."""
        return await self.command(b"PING") == "PONG"

    async def instream(self, data: bytes) -> str:
        """clamd's answer to scanning ``data`` (``stream: OK``, ``stream: <name> FOUND``)."""
        return await self.command(b"INSTREAM", data)

    async def command(self, command: bytes, payload: bytes | None = None) -> str:
        """Send ``command`` (NUL-terminated, the ``z`` form) and, for ``INSTREAM``, the
        payload in chunks; clamd's answer. Raises ``TimeoutError`` past the timeout,
        ``OSError`` when clamd cannot be reached, ``ClamdError`` when it hangs up."""
        async with asyncio.timeout(self.timeout):
            if isinstance(self.target, str):
                reader, writer = await asyncio.open_unix_connection(self.target)
            else:
                reader, writer = await asyncio.open_connection(*self.target)
            try:
                await self._send(writer, command, payload)
                answer = await reader.readuntil(b"\0")
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                writer.transport.abort()
                raise ClamdError(f"it closed the connection ({exc or type(exc).__name__}): a "
                                 "message over its StreamMaxLength?") from exc
            except BaseException:
                writer.transport.abort()  # never wait to flush to a clamd that stopped reading
                raise
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        return answer[:MAX_ANSWER_BYTES].rstrip(b"\0").decode("utf-8", "replace").strip()

    async def _send(self, writer: asyncio.StreamWriter, command: bytes,
                    payload: bytes | None) -> None:
        writer.write(b"z" + command + b"\0")
        if payload is not None:
            view = memoryview(payload)
            for start in range(0, len(view), self.chunk_bytes):
                part = view[start:start + self.chunk_bytes]
                writer.write(struct.pack(">I", len(part)))
                writer.write(part)
                await writer.drain()
            writer.write(struct.pack(">I", 0))
        await writer.drain()


class ScanStatus(enum.StrEnum):
    CLEAN = "clean"
    INFECTED = "infected"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Scan:
    """What clamd said of one message."""

    status: ScanStatus
    signature: str = ""  # INFECTED: the signature's name as clamd gave it (printable)
    reason: str = ""  # FAILED, SKIPPED: why

    @property
    def infected(self) -> bool:
        return self.status is ScanStatus.INFECTED

    def finding(self) -> Finding | None:
        """The neutral finding of a scan that did not happen (none otherwise)."""
        if self.status is ScanStatus.FAILED:
            return Finding(SCAN_FAILED, 0.0, self.reason)
        if self.status is ScanStatus.SKIPPED:
            return Finding(SCAN_SKIPPED, 0.0, self.reason)
        return None


def scan_of(answer: str) -> Scan:
    """clamd's ``INSTREAM`` answer as a ``Scan``."""
    text = answer.removeprefix("stream:").strip()
    if text == "OK":
        return Scan(ScanStatus.CLEAN)
    if text.endswith(" FOUND"):
        name = _UNPRINTABLE.sub("?", text[:-len(" FOUND")].strip())[:100] or "unnamed"
        return Scan(ScanStatus.INFECTED, signature=name)
    return Scan(ScanStatus.FAILED, reason=f"clamd: {_UNPRINTABLE.sub(' ', text)[:200]}")


class VirusScanner:
    """Scans messages with the configured clamd and reads recipients' ``virus_action``."""

    def __init__(self, db: Database, settings: Settings) -> None:
        if not settings.clamd_socket:
            raise ValueError("clamd_socket is not set")
        self.db = db
        self.client = ClamdClient(settings.clamd_socket, settings.clamd_timeout_seconds)
        self.fail_open = settings.clamd_fail_open
        self.max_bytes = settings.clamd_max_bytes

    @classmethod
    def of(cls, db: Database, settings: Settings) -> VirusScanner | None:
        """A scanner when ``clamd_socket`` is set (None: no scanning)."""
        return cls(db, settings) if settings.clamd_socket else None

    async def scan(self, data: bytes) -> Scan:
        """clamd's verdict on ``data``; a scan that failed or was skipped is logged. Never
        raises (but is cancellable)."""
        if len(data) > self.max_bytes:
            log.info("virus scan skipped: the message has %d bytes, more than clamd_max_bytes "
                     "(%d)", len(data), self.max_bytes)
            return Scan(ScanStatus.SKIPPED,
                        reason=f"not scanned: larger than {self.max_bytes} bytes")
        try:
            scan = scan_of(await self.client.instream(data))
        except TimeoutError:
            scan = Scan(ScanStatus.FAILED, reason=f"clamd at {self.client} did not answer "
                                                  f"within {self.client.timeout:g}s")
        except ClamdError as exc:
            scan = Scan(ScanStatus.FAILED, reason=f"clamd at {self.client}: {exc}")
        except (OSError, asyncio.LimitOverrunError) as exc:
            scan = Scan(ScanStatus.FAILED, reason=f"clamd at {self.client} unreachable: "
                                                  f"{exc or type(exc).__name__}")
        if scan.status is ScanStatus.FAILED:
            log.warning("virus scan failed (%s): %s", "delivering" if self.fail_open else
                        "answering 451", scan.reason)
        return scan

    async def actions(self, recipients: Iterable[str]) -> dict[str, str]:
        """Each recipient's ``virus_action`` (reject or quarantine): its address's, else
        its domain's, else ``reject``. Asked for infected mail only: not cached."""
        wanted = sorted(set(recipients))
        found = dict.fromkeys(wanted, DEFAULT_VIRUS_ACTION)
        async with self.db.session() as session:
            domains = await domain_keys(session, (r.rsplit("@", 1)[-1] for r in wanted))
            if not domains:
                return found
            listed = await address_ids(session, (r for r in wanted
                                                 if r.rsplit("@", 1)[-1] in domains))
            rows = (await session.execute(select(
                FilterPolicy.domain_id, FilterPolicy.address_id, FilterPolicy.virus_action)
                .where(FilterPolicy.domain_id.in_(sorted(d for d, _a in domains.values())),
                       FilterPolicy.virus_action.is_not(None),
                       or_(FilterPolicy.address_id.is_(None),
                           FilterPolicy.address_id.in_(sorted(listed.values())))))).all()
        of_domain = {d: action for d, a, action in rows if a is None}
        of_address = {a: action for _d, a, action in rows if a is not None}
        for recipient in wanted:
            domain = domains.get(recipient.rsplit("@", 1)[-1])
            address_id = listed.get(recipient)
            action = of_address.get(address_id) if address_id is not None else None
            if action is None and domain is not None:
                action = of_domain.get(domain[0])
            found[recipient] = action if action in VIRUS_ACTIONS else DEFAULT_VIRUS_ACTION
        return found
