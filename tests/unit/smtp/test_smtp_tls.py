"""Self-signed certificate generation and the server TLS context."""

from __future__ import annotations

import ipaddress
import os
import ssl
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mailward.smtp.tls import ensure_certificate, server_context


def test_generates_pair(tmp_path: Path) -> None:
    cert_path = tmp_path / "a" / "b" / "cert.pem"
    key_path = tmp_path / "keys" / "key.pem"
    old_umask = os.umask(0)
    try:
        ensure_certificate(cert_path, key_path, "mx.example.net")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["mx.example.net"]
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "mx.example.net"
    assert cert.issuer == cert.subject
    lifetime = cert.not_valid_after_utc - datetime.now(UTC)
    assert timedelta(days=700) < lifetime < timedelta(days=800)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    key = load_pem_private_key(key_path.read_bytes(), None)
    assert key.public_key() == cert.public_key()
    assert not list(tmp_path.rglob(".*.tmp"))


def test_existing_pair_is_kept(tmp_path: Path) -> None:
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_certificate(cert_path, key_path, "mx.example.net")
    before = cert_path.read_bytes(), key_path.read_bytes()
    ensure_certificate(cert_path, key_path, "other.example.net")
    assert (cert_path.read_bytes(), key_path.read_bytes()) == before


def test_missing_key_regenerates_both(tmp_path: Path) -> None:
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_certificate(cert_path, key_path, "mx.example.net")
    old_cert = cert_path.read_bytes()
    key_path.unlink()
    ensure_certificate(cert_path, key_path, "mx.example.net")
    assert cert_path.read_bytes() != old_cert
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = load_pem_private_key(key_path.read_bytes(), None)
    assert key.public_key() == cert.public_key()


def test_ip_and_idn_names(tmp_path: Path) -> None:
    ensure_certificate(tmp_path / "ip.pem", tmp_path / "ip.key", "192.0.2.5")
    cert = x509.load_pem_x509_certificate((tmp_path / "ip.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("192.0.2.5")]
    ensure_certificate(tmp_path / "idn.pem", tmp_path / "idn.key", "mx.bücher.example")
    cert = x509.load_pem_x509_certificate((tmp_path / "idn.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["mx.xn--bcher-kva.example"]


def test_server_context(tmp_path: Path) -> None:
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_certificate(cert_path, key_path, "mx.example.net")
    ctx = server_context(cert_path, key_path)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_NONE
    assert not ctx.check_hostname
