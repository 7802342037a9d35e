"""DKIM: per-domain signing keys (``keys``) and signing/verifying messages (``sign``)."""

from mailward.dkim.keys import (
    DkimRecordView,
    DkimService,
    KeyPair,
    generate_keypair,
    new_keypair,
    record_name,
    selector_for,
    txt_strings,
    txt_value,
    zone_line,
)
from mailward.dkim.sign import SIGNED_HEADERS, TxtLookup, dns_txt_lookup, sign, verify

__all__ = [
    "SIGNED_HEADERS",
    "DkimRecordView",
    "DkimService",
    "KeyPair",
    "TxtLookup",
    "dns_txt_lookup",
    "generate_keypair",
    "new_keypair",
    "record_name",
    "selector_for",
    "sign",
    "txt_strings",
    "txt_value",
    "verify",
    "zone_line",
]
