"""Address book data, pure (no database): vCard 2.1/3.0/4.0 in and 3.0/4.0 out with
``vobject``, CSV in the shapes Google, Outlook and Thunderbird write (stdlib ``csv``), and
the rules of a contact's fields (for forms and files alike).

Reading never stops at a bad card: each card (or CSV row) comes back as a ``Card`` or as
the reason it could not be read, numbered from 1; ``read_file`` also validates each card
for :mod:`mailward.webmail.contacts`.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import vobject  # type: ignore[import-untyped]  # no stubs installed

from mailward.core.errors import InvalidInput
from mailward.core.normalize import normalize_address

__all__ = ["Card", "CleanContact", "ContactIn", "clean_contact", "decode", "group_name",
           "parse_csv", "parse_vcards", "read_file", "to_csv", "to_vcard"]

GROUP_SEPARATOR = " ::: "  # Google's, in "Group Membership" and "Labels"


@dataclass(slots=True)
class Card:
    """One contact as a file holds it; ``emails[0]`` is the primary address."""

    name: str = ""
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    organisation: str = ""
    note: str = ""
    groups: list[str] = field(default_factory=list)
    uid: str | None = None


Parsed = tuple[int, Card | str]  # (number from 1, the card or why it could not be read)


def decode(data: bytes) -> str:
    """The text of an uploaded file: UTF-8 (BOM allowed), UTF-16 with a BOM, else cp1252."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


# -- vCard in -------------------------------------------------------------------------------


def parse_vcards(text: str, max_cards: int) -> tuple[list[Parsed], bool]:
    """The cards of a vCard file (at most ``max_cards``; the flag says more were left)."""
    out: list[Parsed] = []
    for index, lines in enumerate(_card_chunks(text), start=1):
        if index > max_cards:
            return out, True
        if isinstance(lines, str):
            out.append((index, lines))
            continue
        try:
            component = vobject.readOne("\r\n".join(lines) + "\r\n")
            out.append((index, _card_of(component)))
        except Exception as exc:  # vobject raises many kinds on bad input
            out.append((index, f"could not be read ({_short(exc)})"))
    return out, False


def _card_chunks(text: str) -> Iterator[list[str] | str]:
    """Each BEGIN:VCARD … END:VCARD block's lines (quoted-printable soft breaks joined), or
    the reason a block is broken."""
    lines: list[str] | None = None
    depth = 0
    pending_qp = False
    for raw in text.splitlines():
        marker = raw.strip().upper()
        if lines is None:
            if marker == "BEGIN:VCARD":
                lines, depth, pending_qp = [raw.strip()], 1, False
            continue
        if pending_qp:  # vCard 2.1: a quoted-printable value continues after "="
            lines[-1] = lines[-1][:-1] + raw
            pending_qp = raw.endswith("=")
            continue
        if marker == "BEGIN:VCARD":
            depth += 1  # an embedded card (2.1 AGENT): kept inside its parent
        elif marker == "END:VCARD":
            depth -= 1
            if depth == 0:
                lines.append(raw.strip())
                yield lines
                lines = None
                continue
        lines.append(raw)
        head = raw.split(":", 1)[0].upper()
        pending_qp = "QUOTED-PRINTABLE" in head and raw.endswith("=") and ":" in raw
    if lines is not None:
        yield "the card has no END:VCARD"


def _card_of(component: Any) -> Card:
    card = Card()
    contents: dict[str, list[Any]] = component.contents
    card.name = _line(_first(contents, "fn"))
    if not card.name and "n" in contents:
        n = contents["n"][0].value
        parts = [_joined(getattr(n, part, "")) for part in ("prefix", "given", "additional",
                                                            "family", "suffix")]
        card.name = _line(" ".join(part for part in parts if part))
    ranked: list[tuple[int, int, str]] = []
    for order, line in enumerate(contents.get("email", [])):
        value = _line(_text(line.value))
        if value:
            ranked.append((_preference(line), order, value))
    card.emails = [value for _, _, value in sorted(ranked)]
    if card.emails and card.name.lower() == card.emails[0].lower():
        card.name = ""  # FN was only the address (as ``to_vcard`` writes a nameless one)
    for line in contents.get("tel", []):
        value = _line(_text(line.value))
        if value.lower().startswith("tel:"):
            value = value[4:]
        if value:
            card.phones.append(value)
    if "org" in contents:
        org = contents["org"][0].value
        card.organisation = _line("; ".join(part for part in (
            [_text(p) for p in org] if isinstance(org, list) else [_text(org)]) if part))
    card.note = _text(_first(contents, "note")).replace("\r\n", "\n").strip()
    for line in contents.get("categories", []):
        values = line.value if isinstance(line.value, list) else _text(line.value).split(",")
        card.groups.extend(_line(_text(v)) for v in values if _line(_text(v)))
    uid = _line(_first(contents, "uid"))
    card.uid = uid or None
    return card


def _preference(line: Any) -> int:
    """Lower is preferred: 4.0 ``PREF=n``; 3.0 ``TYPE=pref``; 2.1 a bare ``PREF``."""
    params: dict[str, list[str]] = line.params
    for value in params.get("PREF", []):
        if value.isdigit():
            return int(value)
    types = [t.lower() for value in params.get("TYPE", []) for t in value.split(",")]
    singles = [s.lower() for s in getattr(line, "singletonparams", [])]
    return 0 if "pref" in types or "pref" in singles else 101


def _first(contents: dict[str, list[Any]], name: str) -> str:
    return _text(contents[name][0].value) if name in contents else ""


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return value if isinstance(value, str) else str(value)


def _joined(value: Any) -> str:
    return " ".join(value) if isinstance(value, list) else str(value or "")


def _line(value: str) -> str:
    """One line: runs of whitespace (newlines too) made single spaces."""
    return " ".join(value.split())


def _short(exc: Exception) -> str:
    text = _line(str(exc)) or type(exc).__name__
    return text[:120]


# -- vCard out ------------------------------------------------------------------------------


def to_vcard(cards: Iterable[Card], version: str) -> str:
    """The cards as one vCard file, ``version`` "3.0" or "4.0" (RFC 2426 / RFC 6350)."""
    if version not in ("3.0", "4.0"):
        raise ValueError(version)
    return "".join(_vcard(card, version) for card in cards)


def _vcard(card: Card, version: str) -> str:
    out = vobject.vCard()
    out.add("version").value = version
    if card.uid:
        out.add("uid").value = card.uid
    out.add("fn").value = card.name or (card.emails[0] if card.emails else "")
    given, _, family = card.name.rpartition(" ") if "@" not in card.name else ("", "", "")
    out.add("n").value = vobject.vcard.Name(family=family, given=given)
    for position, address in enumerate(card.emails):
        line = out.add("email")
        line.value = address
        if version == "3.0":
            line.type_param = ["INTERNET", "pref"] if position == 0 else ["INTERNET"]
        elif position == 0:
            line.params["PREF"] = ["1"]
    for number in card.phones:
        line = out.add("tel")
        if version == "3.0":
            line.value = number
        else:
            uri = _tel_uri(number)
            line.value = uri or number
            line.params["VALUE"] = ["uri" if uri else "text"]
    if card.organisation:
        out.add("org").value = [card.organisation]
    if card.note:
        out.add("note").value = card.note
    if card.groups:
        out.add("categories").value = list(card.groups)
    text: str = out.serialize()
    return text


def _tel_uri(number: str) -> str | None:
    """``tel:`` URI of a number made only of digits and visual separators (RFC 3966)."""
    if not re.fullmatch(r"\+?[0-9][0-9 ().\-/]*", number.strip()):
        return None
    digits = re.sub(r"[ ()/]+", "-", number.strip()).strip("-")
    return "tel:" + re.sub(r"-{2,}", "-", digits)


# -- CSV ------------------------------------------------------------------------------------

CSV_NAME = ("name", "display name", "full name", "fn")
CSV_GIVEN = ("given name", "first name")
CSV_MIDDLE = ("additional name", "middle name")
CSV_FAMILY = ("family name", "last name", "surname")
CSV_ORG = ("organization 1 - name", "organization name", "organization", "organisation",
           "company")
CSV_NOTE = ("notes", "note")
CSV_GROUPS = ("group membership", "labels", "categories")
NOT_VALUES = ("type", "label", "display", "name", "custom")


def parse_csv(text: str, max_rows: int) -> tuple[list[Parsed], bool]:
    """The contacts of a CSV file with a header row (at most ``max_rows``)."""
    first = text.split("\n", 1)[0]  # the header: its most frequent separator is the one
    delimiter = max(",;\t", key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except (StopIteration, csv.Error):
        return [], False
    columns = _columns(header)
    out: list[Parsed] = []
    index = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            index += 1
            out.append((index, f"could not be read ({_short(exc)})"))
            continue
        if not any(cell.strip() for cell in row):
            continue
        index += 1
        if index > max_rows:
            return out, True
        out.append((index, _row_card(row, columns)))
    return out, False


def _columns(header: list[str]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {key: [] for key in (
        "name", "given", "middle", "family", "email", "phone", "org", "note", "groups", "uid")}
    primary: list[int] = []
    for i, h in enumerate(header):
        for key, names in (("name", CSV_NAME), ("given", CSV_GIVEN), ("middle", CSV_MIDDLE),
                           ("family", CSV_FAMILY), ("org", CSV_ORG), ("note", CSV_NOTE),
                           ("groups", CSV_GROUPS), ("uid", ("uid",))):
            if h in names:
                found[key].append(i)
                break
        else:
            if any(word in h for word in NOT_VALUES):
                continue
            if "mail" in h:
                (primary if "primary" in h else found["email"]).append(i)
            elif any(word in h for word in ("phone", "mobile", "fax", "pager", "tel")):
                found["phone"].append(i)
    found["email"] = primary + found["email"]
    return found


def _row_card(row: list[str], columns: dict[str, list[int]]) -> Card:
    def cells(key: str) -> list[str]:
        return [_unguard(row[i].strip()) for i in columns[key] if i < len(row) and row[i].strip()]

    def one(key: str) -> str:
        values = cells(key)
        return values[0] if values else ""

    card = Card()
    card.name = _line(one("name")) or _line(" ".join(
        part for part in (one("given"), one("middle"), one("family")) if part))
    for cell in cells("email"):
        card.emails.extend(_line(v) for v in cell.split(":::") if _line(v))
    for cell in cells("phone"):
        card.phones.extend(_line(v) for v in cell.split(":::") if _line(v))
    card.organisation = _line(one("org"))
    card.note = one("note").replace("\r\n", "\n")
    for cell in cells("groups"):
        separator = ":::" if ":::" in cell else ";" if ";" in cell else ","
        card.groups.extend(
            name for name in (_line(v) for v in cell.split(separator))
            if name and not name.startswith("*"))  # Google's system groups: "* myContacts"
    card.uid = one("uid") or None
    return card


def to_csv(cards: list[Card]) -> str:
    """The cards as CSV with Google's column names (which Outlook and Thunderbird read)."""
    emails = max([len(card.emails) for card in cards] + [1])
    phones = max([len(card.phones) for card in cards] + [1])
    header = (["Name", "Given Name", "Family Name"]
              + [f"E-mail {n} - Value" for n in range(1, emails + 1)]
              + [f"Phone {n} - Value" for n in range(1, phones + 1)]
              + ["Organization 1 - Name", "Notes", "Group Membership"])
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(header)
    for card in cards:
        given, _, family = card.name.rpartition(" ") if "@" not in card.name else ("", "", "")
        writer.writerow([_guard(cell) for cell in (
            [card.name, given, family]
            + card.emails + [""] * (emails - len(card.emails))
            + card.phones + [""] * (phones - len(card.phones))
            + [card.organisation, card.note, GROUP_SEPARATOR.join(card.groups)])])
    return buffer.getvalue()


def _risky(cell: str) -> bool:
    """Whether a spreadsheet would take the cell for a formula (CSV injection)."""
    if not cell:
        return False
    if cell[0] in "=@\t\r":
        return True
    return cell[0] in "+-" and not re.match(r"[+-][0-9 (]", cell)


def _guard(cell: str) -> str:
    return "'" + cell if _risky(cell) else cell


def _unguard(cell: str) -> str:
    return cell[1:] if cell.startswith("'") and _risky(cell[1:]) else cell


# -- the fields' rules (forms and files alike) ---------------------------------------------

MAX_EMAILS = 20  # per contact
MAX_PHONES = 20
NAME_CHARS = ORG_CHARS = 200
NOTE_CHARS = 4000
PHONE_CHARS = 64
GROUP_CHARS = 100


@dataclass(frozen=True, slots=True)
class ContactIn:
    """A contact as a form (or a file) gives it; ``emails[0]`` becomes the primary."""

    name: str = ""
    emails: Sequence[str] = ()
    phones: Sequence[str] = ()
    organisation: str = ""
    note: str = ""


@dataclass(slots=True)
class CleanContact:
    """A contact's fields, validated (``clean_contact``)."""

    name: str
    emails: list[str]
    phones: list[str]
    organisation: str
    note: str


def clean_contact(contact: ContactIn) -> CleanContact:
    """The contact with its fields checked and tidied, or ``InvalidInput`` saying why."""
    name = single_line(contact.name, "name", NAME_CHARS)
    emails: list[str] = []
    for raw in contact.emails:
        if raw.strip():
            address = normalize_address(raw)
            if address not in emails:
                emails.append(address)
    if len(emails) > MAX_EMAILS:
        raise InvalidInput(f"at most {MAX_EMAILS} addresses per contact")
    phones = union([single_line(p, "phone number", PHONE_CHARS) for p in contact.phones
                    if p.strip()], [])
    if len(phones) > MAX_PHONES:
        raise InvalidInput(f"at most {MAX_PHONES} phone numbers per contact")
    organisation = single_line(contact.organisation, "organisation", ORG_CHARS)
    note = contact.note.replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(note) > NOTE_CHARS:
        raise InvalidInput(f"the note is longer than {NOTE_CHARS} characters")
    if any(ord(c) < 32 and c not in "\n\t" for c in note):
        raise InvalidInput("the note has control characters")
    if not (name or emails):
        raise InvalidInput("give the contact a name or an address")
    return CleanContact(name, emails, phones, organisation, note)


def group_name(name: str) -> str:
    name = single_line(name, "group name", GROUP_CHARS)
    if not name:
        raise InvalidInput("the group needs a name")
    return name


def single_line(value: str, what: str, limit: int) -> str:
    text = " ".join(value.split())
    if len(text) > limit:
        raise InvalidInput(f"the {what} is longer than {limit} characters")
    return text


def union(first: Sequence[str], then: Sequence[str]) -> list[str]:
    out: list[str] = []
    for value in [*first, *then]:
        if value not in out:
            out.append(value)
    return out


ValidCard = tuple[CleanContact, list[str], str | None]  # a valid card: contact, group names, UID


def read_file(data: bytes, filename: str,
              max_cards: int) -> tuple[list[tuple[int, ValidCard | str | None]], bool]:
    """The cards of a vCard or CSV file, each valid (``ValidCard``), bad (why) or empty
    (None); and whether there were more than ``max_cards``."""
    text = decode(data)
    name = filename.lower()
    if name.endswith((".vcf", ".vcard")) or (
            not name.endswith(".csv") and "BEGIN:VCARD" in text[:2048].upper()):
        parsed, more = parse_vcards(text, max_cards)
    elif name.endswith((".csv", ".txt")) or "," in text[:2048] or ";" in text[:2048]:
        parsed, more = parse_csv(text, max_cards)
    else:
        raise InvalidInput("that is neither a vCard (.vcf) nor a CSV file")
    out: list[tuple[int, ValidCard | str | None]] = []
    for index, card in parsed:
        if isinstance(card, str) or not (card.name.strip() or card.emails):
            out.append((index, card if isinstance(card, str) else None))
            continue
        try:
            clean = clean_contact(ContactIn(card.name, card.emails, card.phones,
                                            card.organisation, card.note))
            groups = [group_name(group) for group in card.groups]
        except InvalidInput as exc:
            out.append((index, str(exc)))
            continue
        out.append((index, (clean, groups, card.uid if card.uid and len(card.uid) <= 255
                            else None)))
    return out, more
