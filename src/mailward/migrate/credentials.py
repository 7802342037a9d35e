"""The old server's password at rest: AES-GCM with a key derived (HKDF-SHA256) from the web
secret (:func:`mailward.config.secret.web_secret`), bound to the job's mailbox and login.

Only the delivery worker that runs a job decrypts it; the job's row loses it when the job
ends (done, failed or cancelled).
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mailward.config import Settings
from mailward.config.secret import web_secret

INFO = b"mailward migrate credentials v1"
NONCE_BYTES = 12


class CredentialError(Exception):
    """The stored password cannot be decrypted (the web secret changed, or it was altered)."""


class CredentialBox:
    """Encrypts and decrypts old-server passwords with a key derived from one secret."""

    def __init__(self, secret: str) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=INFO).derive(secret.encode())
        self._aead = AESGCM(key)

    @classmethod
    def of(cls, settings: Settings) -> CredentialBox:
        return cls(web_secret(settings))

    @staticmethod
    def _bound(mailbox: str, login: str) -> bytes:
        return f"{mailbox}\n{login}".encode()

    def seal(self, password: str, *, mailbox: str, login: str) -> bytes:
        """``nonce || ciphertext`` of ``password``, valid only for ``mailbox`` + ``login``."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, password.encode(), self._bound(mailbox, login))

    def open(self, sealed: bytes, *, mailbox: str, login: str) -> str:
        """The password :meth:`seal` encrypted; ``CredentialError`` if it cannot be read."""
        try:
            plain = self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:],
                                       self._bound(mailbox, login))
        except (InvalidTag, ValueError) as exc:
            raise CredentialError("the stored password cannot be decrypted "
                                  "(was the web secret changed?)") from exc
        return plain.decode()
