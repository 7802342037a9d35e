"""Address and domain normalisation: lower-case, IDNA (ASCII) domains, RFC length limits."""

from __future__ import annotations

import idna
from email_validator import EmailNotValidError, validate_email

from mailward.core.errors import InvalidInput

MAX_DESTINATIONS_CHARS = 128
MAX_LOCAL_PART_OCTETS = 64


def normalize_domain(text: str) -> str:
    """Return the lower-case ASCII (A-label) form of a domain, or raise ``InvalidInput``."""
    name = text.strip().rstrip(".")
    if not name:
        raise InvalidInput("domain name is empty")
    try:
        # Validating a dummy address reuses email-validator's full domain checks.
        result = validate_email(f"postmaster@{name}", check_deliverability=False)
    except EmailNotValidError as exc:
        reason = _domain_reason(exc)
        raise InvalidInput(f"{text.strip()!r} is not a valid domain: {reason}") from None
    return result.ascii_domain.lower()


def _domain_reason(exc: EmailNotValidError) -> str:
    return str(exc).replace("The part after the @-sign", "The domain")


def normalize_address(text: str) -> str:
    """Return ``local@domain`` lower-cased with an ASCII domain, or raise ``InvalidInput``."""
    raw = text.strip()
    if not raw:
        raise InvalidInput("address is empty")
    try:
        result = validate_email(raw, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise InvalidInput(f"{raw!r} is not a valid address: {exc}") from None
    local = result.local_part.lower()
    if len(local.encode()) > MAX_LOCAL_PART_OCTETS:
        raise InvalidInput(f"{raw!r} is not a valid address: the part before the @-sign is "
                           f"longer than {MAX_LOCAL_PART_OCTETS} octets")
    return f"{local}@{result.ascii_domain.lower()}"


def domain_of(address: str) -> str:
    return address.rpartition("@")[2]


def display_domain(ascii_domain: str) -> str:
    """The Unicode form of a stored domain, for people to read."""
    try:
        return idna.decode(ascii_domain)
    except idna.IDNAError:
        return ascii_domain


def parse_destinations(text: str, *, owner: str | None = None) -> str:
    """Validate a comma-separated destination list; return it normalised and comma-joined.

    Every entry must be a valid address, none may repeat or be the owner itself, and the
    joined field may not exceed 128 characters (commas included; docs/procedures.md).
    """
    parts = [part.strip() for part in text.split(",")]
    if not any(parts):
        raise InvalidInput("destination is empty")
    seen: list[str] = []
    for part in parts:
        if not part:
            raise InvalidInput("destination has an empty entry between commas")
        address = normalize_address(part)
        if address == owner:
            raise InvalidInput(f"destination {part!r} is the address itself (a mail loop)")
        if address not in seen:
            seen.append(address)
    joined = ",".join(seen)
    if len(joined) > MAX_DESTINATIONS_CHARS:
        raise InvalidInput(
            f"destination is {len(joined)} characters; at most {MAX_DESTINATIONS_CHARS} "
            "including commas"
        )
    return joined


def subaddress_base(address: str, delimiter: str) -> str | None:
    """``bob@d`` for a normalised ``bob+tag@d`` (``delimiter`` "+"); ``None`` when the
    address has no tag, the delimiter is off (empty), or nothing is left before it."""
    local, _, domain = address.rpartition("@")
    if not delimiter or delimiter not in local:
        return None
    base = local.split(delimiter, 1)[0]
    return f"{base}@{domain}" if base else None
