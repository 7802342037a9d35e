"""Parser for the bulk "Add Addresses" form: one line per address.

Formats (docs/procedures.md, "Bulk add")::

    address
    address|password
    address|destination1[,destination2...]|relay

A third field other than ``relay`` makes a mailbox whose password is the second field,
as the procedure specifies; such lines carry a warning because it is usually a typo.
The parser is pure (no I/O) and never raises: each non-blank line yields one result.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from mailward.core.errors import InvalidInput
from mailward.core.normalize import normalize_address, parse_destinations
from mailward.db.models import AddressKind

RELAY_KEYWORD = "relay"


@dataclass(frozen=True, slots=True)
class BulkLine:
    """One parsed non-blank line: either ``error`` is set, or ``address`` and ``kind`` are."""

    number: int
    text: str
    address: str | None = None
    kind: AddressKind | None = None
    password: str | None = None
    destinations: str | None = None
    error: str | None = None
    warning: str | None = None

    @property
    def shown(self) -> str:
        """The line as it may be echoed back: the address part only, never a password."""
        return self.text.split("|", 1)[0].strip()[:320]


def parse_line(number: int, text: str) -> BulkLine:
    """Parse one non-blank line."""
    line = text.strip()
    fields = [field.strip() for field in line.split("|")]
    try:
        address = normalize_address(fields[0])
        if len(fields) == 1:
            return BulkLine(number, line, address, AddressKind.PENDING)
        if len(fields) > 3:
            raise InvalidInput(f"{len(fields)} '|'-separated fields; at most 3 are allowed")
        if not fields[1]:
            raise InvalidInput("the second field (password or destinations) is empty")
        if len(fields) == 3 and fields[2].lower() == RELAY_KEYWORD:
            destinations = parse_destinations(fields[1], owner=address)
            return BulkLine(
                number, line, address, AddressKind.FORWARDER, destinations=destinations
            )
        warning = None
        if len(fields) == 3:
            shown = fields[2][:20] or "nothing"
            warning = (
                f"third field is {shown!r}, not 'relay': set up as a mailbox whose password "
                "is the second field; add '|relay' if a forwarder was meant"
            )
        return BulkLine(
            number, line, address, AddressKind.MAILBOX, password=fields[1], warning=warning
        )
    except InvalidInput as exc:
        return BulkLine(number, line, error=str(exc))


def single_line(
    address: str, *, password: str | None = None, destinations: str | None = None
) -> BulkLine:
    """A one-address add from a form or the API: bulk rules without the ``|`` syntax."""
    try:
        normalized = normalize_address(address)
        if password is not None and destinations is not None:
            raise InvalidInput("give a password (mailbox) or destinations (forwarder), not both")
        if destinations is not None:
            parsed = parse_destinations(destinations, owner=normalized)
            return BulkLine(1, address, normalized, AddressKind.FORWARDER, destinations=parsed)
        if password is not None:
            if not password:
                raise InvalidInput("password is empty")
            return BulkLine(1, address, normalized, AddressKind.MAILBOX, password=password)
        return BulkLine(1, address, normalized, AddressKind.PENDING)
    except InvalidInput as exc:
        return BulkLine(1, address, error=str(exc))


def parse_bulk(lines: Iterable[str] | str) -> Iterator[BulkLine]:
    """Yield one ``BulkLine`` per non-blank line; line numbers count blank lines too."""
    if isinstance(lines, str):
        lines = lines.splitlines()
    for number, text in enumerate(lines, start=1):
        if text.strip():
            yield parse_line(number, text)
