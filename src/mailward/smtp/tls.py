"""TLS for the SMTP listeners: a self-signed certificate on first start, server contexts."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=730)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # O_CREAT's mode is filtered by the umask
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _subject_alt_name(hostname: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        return x509.DNSName(hostname.encode("idna").decode("ascii"))


def self_signed(hostname: str) -> tuple[bytes, bytes]:
    """A fresh EC P-256 key and a ~2-year self-signed certificate for ``hostname`` (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    san = _subject_alt_name(hostname)
    cn = san.value if isinstance(san, x509.DNSName) else hostname
    has_cn = len(cn) <= 64  # longer names cannot be a CN; the SAN alone then names it
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if has_cn else [])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName([san]), critical=not has_cn)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def ensure_certificate(cert_path: Path, key_path: Path, hostname: str) -> None:
    """Generate a self-signed pair unless both files exist (key 0600, parents created)."""
    cert_path, key_path = Path(cert_path), Path(key_path)
    if cert_path.exists() and key_path.exists():
        return
    cert_pem, key_pem = self_signed(hostname)
    for parent in {cert_path.parent, key_path.parent}:
        parent.mkdir(parents=True, exist_ok=True)
    # Key first: a crash in between leaves the certificate missing, so the next start
    # regenerates both instead of pairing a new certificate with a stale key.
    with contextlib.suppress(FileNotFoundError):
        cert_path.unlink()
    _write_atomic(key_path, key_pem, 0o600)
    _write_atomic(cert_path, cert_pem, 0o644)


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """A server-side context, TLS 1.2 or newer, no client certificates requested."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.load_cert_chain(str(cert_path), str(key_path))
    return ctx
