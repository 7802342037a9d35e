"""The old IMAP server, read with the standard library's ``imaplib`` (blocking: the runner
calls it through ``asyncio.to_thread``), read-only (EXAMINE, ``BODY.PEEK``).

Every socket operation is bounded by ``timeout``; a message larger than the caller's cap is
never fetched (its RFC822.SIZE is known first).
"""

from __future__ import annotations

import contextlib
import functools
import imaplib
import re
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ParamSpec, TypeVar

from mailward.migrate.folders import SourceFolder, parse_list
from mailward.store.interface import RECENT

TLS_MODES = ("ssl", "starttls", "none")
P = ParamSpec("P")
R = TypeVar("R")

_FETCH_ITEM = re.compile(rb"(UID|RFC822\.SIZE) (\d+)|FLAGS \(([^)]*)\)|INTERNALDATE \"([^\"]+)\"",
                         re.I)
_MESSAGES = re.compile(rb"MESSAGES (\d+)", re.I)


class SourceError(Exception):
    """The old server could not be reached, refused the login or answered badly."""


class LoginRefused(SourceError):
    """The old server refused the login and password."""


@dataclass(frozen=True, slots=True)
class SourceMessage:
    """One message of an old folder, before its bytes are fetched."""

    uid: int
    size: int
    flags: frozenset[str]
    internal_date: datetime


def parse_internaldate(value: str) -> datetime:
    """``" 7-Dec-2026 10:00:00 +0100"`` as an aware datetime."""
    return datetime.strptime(value.strip(), "%d-%b-%Y %H:%M:%S %z")


def quoted(name: bytes) -> str:
    """A mailbox name as an IMAP quoted string (names are ASCII: modified UTF-7)."""
    text = name.decode("ascii", "replace")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check(typ: str, data: Sequence[object], what: str) -> None:
    if typ != "OK":
        detail = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
        raise SourceError(f"{what}: {typ} {detail}".strip())


def _guarded(method: Callable[P, R]) -> Callable[P, R]:
    """``method`` with socket and protocol errors raised as ``SourceError``."""

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except (OSError, imaplib.IMAP4.error) as exc:
            raise SourceError(f"{method.__name__}: {exc}") from exc

    return call


class SourceServer:
    """One logged-in, read-only connection to the old server."""

    def __init__(self, client: imaplib.IMAP4) -> None:
        self.client = client

    @classmethod
    def connect(cls, host: str, port: int, tls: str, login: str, password: str, *,
                timeout: float, context: ssl.SSLContext | None = None) -> SourceServer:
        """Connect (implicit TLS, STARTTLS or plain), log in; ``LoginRefused`` on a NO."""
        if tls not in TLS_MODES:
            raise SourceError(f"unknown TLS mode {tls!r}")
        context = context or ssl.create_default_context()
        try:
            if tls == "ssl":
                client: imaplib.IMAP4 = imaplib.IMAP4_SSL(host, port, ssl_context=context,
                                                          timeout=timeout)
            else:
                client = imaplib.IMAP4(host, port, timeout=timeout)
                if tls == "starttls":
                    client.starttls(context)
        except (OSError, imaplib.IMAP4.error) as exc:
            raise SourceError(f"cannot connect to {host}:{port} ({tls}): {exc}") from exc
        server = cls(client)
        try:
            client.login(login, password)
        except imaplib.IMAP4.error as exc:
            server.close()
            raise LoginRefused(f"{host}:{port} refused the login of {login}: {exc}") from exc
        except OSError as exc:
            server.close()
            raise SourceError(f"{host}:{port}: {exc}") from exc
        return server

    def close(self) -> None:
        try:
            self.client.logout()
        except (OSError, imaplib.IMAP4.error):
            with contextlib.suppress(OSError):
                self.client.shutdown()

    @_guarded
    def folders(self) -> list[SourceFolder]:
        """Every folder (``LIST "" "*"``), with its attributes."""
        typ, data = self.client.list('""', "*")
        _check(typ, data, "LIST")
        return parse_list(data)  # type: ignore[arg-type]

    @_guarded
    def count(self, folder: SourceFolder) -> int:
        """How many messages ``folder`` holds (STATUS MESSAGES)."""
        typ, data = self.client.status(quoted(folder.raw), "(MESSAGES)")
        _check(typ, data, f"STATUS {folder.name}")
        for item in data:
            if isinstance(item, bytes) and (match := _MESSAGES.search(item)):
                return int(match.group(1))
        return 0

    @_guarded
    def examine(self, folder: SourceFolder) -> int:
        """Open ``folder`` read-only; its UIDVALIDITY."""
        typ, data = self.client.select(quoted(folder.raw), readonly=True)
        _check(typ, data, f"EXAMINE {folder.name}")
        for item in self.client.untagged_responses.get("UIDVALIDITY", []):
            if isinstance(item, bytes) and item.strip().isdigit():
                return int(item)
        raise SourceError(f"{folder.name}: the server sent no UIDVALIDITY")

    @_guarded
    def messages_after(self, last_uid: int) -> list[SourceMessage]:
        """The open folder's messages with a UID above ``last_uid``, by UID."""
        typ, data = self.client.uid("FETCH", f"{last_uid + 1}:*",
                                    "(UID FLAGS INTERNALDATE RFC822.SIZE)")
        _check(typ, data, "UID FETCH")
        found: dict[int, SourceMessage] = {}
        for item in data:
            line: object = item[0] if isinstance(item, tuple) else item
            if not isinstance(line, bytes):
                continue
            uid = size = None
            flags: frozenset[str] = frozenset()
            date: datetime | None = None
            for match in _FETCH_ITEM.finditer(line):
                if match.group(1):
                    number = int(match.group(2))
                    if match.group(1).upper() == b"UID":
                        uid = number
                    else:
                        size = number
                elif match.group(4):
                    date = parse_internaldate(match.group(4).decode("ascii"))
                else:
                    flags = frozenset(f for f in match.group(3).decode("utf-8", "replace")
                                      .split() if f.lower() != RECENT.lower())
            if uid is None or size is None or date is None or uid <= last_uid:
                continue  # "n:*" names the last message even when its UID is below n
            found[uid] = SourceMessage(uid, size, flags, date)
        return [found[uid] for uid in sorted(found)]

    @_guarded
    def fetch(self, uid: int) -> bytes:
        """The bytes of message ``uid`` of the open folder (without setting ``\\Seen``)."""
        typ, data = self.client.uid("FETCH", str(uid), "(BODY.PEEK[])")
        _check(typ, data, f"UID FETCH {uid}")
        for item in data:
            if isinstance(item, tuple) and isinstance(item[1], bytes):
                return item[1]
        raise SourceError(f"message {uid} vanished from the old server")
