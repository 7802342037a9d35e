"""What a Sieve script may look at in a message: its header fields (decoded, bounded),
its addresses and its text (decoded, bounded), parsed once per delivery."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses

__all__ = ["MAX_BODY_CHARS", "MAX_HEADER_BYTES", "SieveMessage"]

MAX_HEADER_BYTES = 256 * 1024
"""The header block read by the tests; fields beyond it are not seen."""
MAX_BODY_CHARS = 1024 * 1024
"""The decoded text the ``body`` test searches, at most."""
MAX_PARTS = 100


def _decode(value: str) -> str:
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError):
        return value


class SieveMessage:
    """One message as the tests see it: ``data`` is the bytes being delivered."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)
        end = data.find(b"\r\n\r\n")
        if end < 0:
            end = data.find(b"\n\n")
        head = data if end < 0 else data[:end + 2]
        self._head = message_from_bytes(head[:MAX_HEADER_BYTES], policy=policy.compat32)
        self._parsed: Message | None = None
        self._text: dict[str, list[str]] = {}

    def headers(self, name: str) -> list[str]:
        """The decoded values of every field named ``name`` (case-insensitive)."""
        return [_decode(str(v)).replace("\r\n", "").replace("\n", "")
                for v in self._head.get_all(name, [])]

    def raw_headers(self, name: str) -> list[str]:
        return [str(v) for v in self._head.get_all(name, [])]

    def has(self, name: str) -> bool:
        return name in self._head

    def addresses(self, name: str) -> list[str]:
        """The addresses in the fields named ``name``."""
        return [addr for _, addr in getaddresses(self.raw_headers(name)) if addr]

    def _message(self) -> Message:
        if self._parsed is None:
            self._parsed = message_from_bytes(self.data, policy=policy.compat32)
        return self._parsed

    def text(self, transform: str, types: tuple[str, ...] = ()) -> list[str]:
        """The texts the ``body`` test searches (RFC 5173): ``:raw`` the undecoded body,
        ``:content`` the decoded parts of the given types (``""`` is any), ``:text`` the
        decoded text parts; each bounded by :data:`MAX_BODY_CHARS`."""
        key = transform + "\0" + "\0".join(types)
        if key in self._text:
            return self._text[key]
        if transform == ":raw":
            end = self.data.find(b"\r\n\r\n")
            body = self.data[end + 4:] if end >= 0 else b""
            found = [body[:MAX_BODY_CHARS].decode("utf-8", "replace")]
        else:
            wanted = types if transform == ":content" else ("text",)
            found = []
            budget = MAX_BODY_CHARS
            for index, part in enumerate(self._message().walk()):
                if index >= MAX_PARTS or budget <= 0:
                    break
                if part.is_multipart():
                    continue
                ctype = part.get_content_type()
                if not any(w == "" or w == ctype or ("/" not in w and
                           ctype.startswith(w + "/")) for w in wanted):
                    continue
                payload = part.get_payload(decode=True)
                if not isinstance(payload, bytes):
                    continue
                charset = part.get_content_charset() or "utf-8"
                try:
                    text = payload.decode(charset, "replace")
                except LookupError:
                    text = payload.decode("utf-8", "replace")
                found.append(text[:budget])
                budget -= len(text)
        self._text[key] = found
        return found
