"""SASL PLAIN (RFC 4616), as the IMAP, POP3 and submission listeners receive it."""

from __future__ import annotations

import base64
import binascii


def decode_sasl_plain(response: str) -> tuple[str, str] | None:
    """Decode a SASL PLAIN response (RFC 4616) into ``(login, password)``.

    ``None`` when malformed or when an authorization identity other than the login is
    requested (no proxy authentication).
    """
    if response == "=":
        response = ""
    try:
        raw = base64.b64decode(response.encode("ascii"), validate=True)
        authzid, authcid, password = raw.decode("utf-8").split("\0")
    except (UnicodeError, binascii.Error, ValueError):
        return None
    if not authcid or not password or (authzid and authzid != authcid):
        return None
    return authcid, password
