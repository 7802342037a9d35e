"""The webmail address book on both backends: contacts and groups kept to their mailbox,
suggestions, vCard 2.1/3.0/4.0 and CSV import (bad cards reported, re-import updates) and
export round trips, and the rows going with the address."""

from __future__ import annotations

import pytest

from mailward.app import Services
from mailward.core.errors import Conflict, InvalidInput, NotFound
from mailward.db import AddressList
from mailward.directory import Actor
from mailward.webmail import contacts as contacts_module
from mailward.webmail.contacts import Contact, ContactIn, Contacts

OP = Actor.operator()
A, B = "a@acme.example", "b@acme.example"
PASSWORD = "Mailbox-pass-77"


@pytest.fixture
async def book(directory: Services) -> Contacts:
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "acme.example", account="Acme", hosting=True)
    await directory.bulk.add_lines(OP, [f"{name}@acme.example|{PASSWORD}" for name in "abcd"],
                                   AddressList.NO_FILTER)
    return Contacts(directory.db)


def shape(contacts: list[Contact]) -> list[tuple[object, ...]]:
    """What a contact holds, without ids and counters (to compare two address books)."""
    return sorted((c.name, tuple(c.emails), tuple(c.phones), c.organisation, c.note,
                   tuple(sorted(c.groups))) for c in contacts)


async def test_add_update_delete_with_validated_fields(book: Contacts) -> None:
    jane = await book.add(A, ContactIn("  Jane   Doe ", ["Jane.Doe@Example.ORG", "jd@example.com",
                                                         "jane.doe@example.org"],
                                       ["+49 30 1234"], "Acme", "met at\r\nthe fair"))
    assert jane.name == "Jane Doe"
    assert jane.emails == ["jane.doe@example.org", "jd@example.com"]  # normalised, once
    assert jane.primary == "jane.doe@example.org"
    assert (jane.phones, jane.organisation, jane.note) == (["+49 30 1234"], "Acme",
                                                           "met at\nthe fair")
    assert jane.uid and jane.uid.startswith("urn:uuid:")
    assert await book.get(A, jane.id) == jane
    changed = await book.update(A, jane.id, ContactIn("Jane Roe", ["jd@example.com"]))
    assert (changed.name, changed.emails, changed.phones) == ("Jane Roe", ["jd@example.com"], [])
    assert [c.name for c in await book.list(A, q="ROE")] == ["Jane Roe"]
    assert [c.name for c in await book.list(A, q="jd@exa")] == ["Jane Roe"]
    assert await book.list(A, q="nobody") == []
    for bad in (ContactIn("X", ["not an address"]), ContactIn(""), ContactIn("x" * 201),
                ContactIn("X", phones=["1" * 65]), ContactIn("X", note="n" * 4001),
                ContactIn("X", [f"a{i}@example.org" for i in range(21)])):
        with pytest.raises(InvalidInput):
            await book.add(A, bad)
    only_address = await book.add(A, ContactIn(emails=["solo@example.org"]))
    assert only_address.display == "solo@example.org"
    await book.delete(A, jane.id)
    with pytest.raises(NotFound):
        await book.get(A, jane.id)
    assert [c.id for c in await book.list(A)] == [only_address.id]


async def test_groups_and_their_members(book: Contacts) -> None:
    ann = await book.add(A, ContactIn("Ann", ["ann@example.org"]))
    bo = await book.add(A, ContactIn("Bo", ["bo@example.org"]))
    team = await book.add_group(A, "Team")
    with pytest.raises(Conflict):
        await book.add_group(A, " team ")
    team = await book.set_members(A, team.id, [ann.id, bo.id])
    assert team.members == sorted([ann.id, bo.id])
    assert (await book.get(A, ann.id)).groups == ["Team"]
    assert [c.name for c in await book.list(A, group=team.id)] == ["Ann", "Bo"]
    friends = await book.add_group(A, "Friends")
    await book.set_contact_groups(A, bo.id, [friends.id])
    assert (await book.get(A, bo.id)).groups == ["Friends"]
    renamed = await book.rename_group(A, team.id, "Core team")
    assert (renamed.name, renamed.members) == ("Core team", [ann.id])
    assert [g.name for g in await book.groups(A)] == ["Core team", "Friends"]
    await book.delete_group(A, friends.id)
    assert (await book.get(A, bo.id)).groups == []  # the contact stays
    await book.delete(A, ann.id)
    assert (await book.groups(A))[0].members == []


async def test_another_mailbox_cannot_reach_contacts_or_groups(book: Contacts) -> None:
    ann = await book.add(A, ContactIn("Ann", ["ann@example.org"]))
    group = await book.add_group(A, "Team")
    await book.set_members(A, group.id, [ann.id])
    own = await book.add_group(B, "Mine")
    for attempt in (
        book.get(B, ann.id), book.update(B, ann.id, ContactIn("Mallory")),
        book.delete(B, ann.id), book.set_contact_groups(B, ann.id, []),
        book.set_members(B, group.id, []), book.rename_group(B, group.id, "X"),
        book.delete_group(B, group.id),
        book.set_members(B, own.id, [ann.id]),  # their own group, someone else's contact
    ):
        with pytest.raises(NotFound):
            await attempt
    bob = await book.add(B, ContactIn("Bob", ["bob@example.org"]))
    with pytest.raises(NotFound):
        await book.set_contact_groups(B, bob.id, [group.id])  # someone else's group
    assert [c.name for c in await book.list(B)] == ["Bob"]
    assert await book.suggest(B, "ann") == [] and await book.suggest(B, "tea") == []
    assert (await book.get(A, ann.id)).name == "Ann"
    assert (await book.groups(A))[0].members == [ann.id]


async def test_the_address_book_is_limited(book: Contacts,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(contacts_module, "MAX_CONTACTS", 2)
    await book.add(A, ContactIn("One"))
    await book.add(A, ContactIn("Two"))
    with pytest.raises(InvalidInput, match="full"):
        await book.add(A, ContactIn("Three"))
    await book.add(B, ContactIn("Three"))  # per mailbox
    result = await book.import_(B, b"Name,E-mail 1 - Value\nFour,four@example.org\n"
                                   b"Five,five@example.org\n", "more.csv")
    assert (result.added, [(e.index, "full" in e.reason) for e in result.errors]) == \
        (1, [(2, True)])


async def test_suggestions_by_name_word_or_address_most_used_first(book: Contacts) -> None:
    alice = await book.add(A, ContactIn("Alice Smith", ["alice@example.org"]))
    await book.add(A, ContactIn("Bob Stone", ["bob@example.org", "smirk@example.net"]))
    carol = await book.add(A, ContactIn("Carol", ["smithers@example.com"]))
    await book.add(A, ContactIn("Ärger Özil", ["oe@example.org"]))
    await book.add(A, ContactIn("Percent", ["per%cent@example.org"]))
    family = await book.add_group(A, "Smiths, family")
    await book.set_members(A, family.id, [alice.id, carol.id])
    assert await book.suggest(A, "SMI") == [
        ("Alice Smith", "alice@example.org"),  # a word of the name
        ("Bob Stone", "smirk@example.net"),  # a second address
        ("Carol", "smithers@example.com"),
        ("Smiths, family", "Alice Smith <alice@example.org>, Carol <smithers@example.com>"),
    ]
    await book.used(A, ["Carol <Smithers@example.com>", "bob@example.org", "junk"])
    await book.used(A, ["smithers@example.com"])
    assert (await book.get(A, carol.id)).used == 2
    assert [name for name, _ in await book.suggest(A, "smi")] == [
        "Carol", "Bob Stone", "Alice Smith", "Smiths, family"]
    assert await book.suggest(A, "smi", limit=1) == [("Carol", "smithers@example.com")]
    assert await book.suggest(A, "ärg") == [("Ärger Özil", "oe@example.org")]
    assert await book.suggest(A, "%") == []  # a LIKE wildcard is a character
    assert await book.suggest(A, "per%") == [("Percent", "per%cent@example.org")]
    assert await book.suggest(A, "  ") == []
    await book.used(B, ["alice@example.org"])
    assert (await book.get(A, alice.id)).used == 0  # another mailbox's sending


VCARDS = (
    "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:card-one\r\nFN:Jane Doe\r\nN:Doe;Jane;;;\r\n"
    "EMAIL;TYPE=INTERNET:jd@example.com\r\nEMAIL;TYPE=INTERNET,pref:Jane@Example.org\r\n"
    "TEL;TYPE=CELL:+1 555 0100\r\nORG:Acme\\, Inc.;Sales\r\nNOTE:likes\\, tea\\nand cake\r\n"
    "CATEGORIES:Friends,Work\r\nEND:VCARD\r\n"
    "BEGIN:VCARD\nVERSION:4.0\nFN:Max\n  Mustermann\nEMAIL;PREF=1:max@example.de\n"
    "TEL;VALUE=uri;TYPE=voice:tel:+49-30-1234\nCATEGORIES:Work\nEND:VCARD\n"
    "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Broken\r\nEMAIL:not an address\r\nEND:VCARD\r\n"
    "BEGIN:VCARD\r\nVERSION:2.1\r\nN;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:M=C3=BCller;J=\r\n"
    "=C3=B6rg\r\nEMAIL;PREF;INTERNET:joerg@example.de\r\nEND:VCARD\r\n"
    "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Bad line\r\nEMAIL;TYPE=\"open:x@example.org\r\n"
    "END:VCARD\r\n"
    "BEGIN:VCARD\r\nVERSION:3.0\r\nNOTE:nothing else\r\nEND:VCARD\r\n"
    "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Cut off\r\n"
)


async def test_vcard_import_reports_bad_cards_and_reimport_updates(book: Contacts) -> None:
    result = await book.import_(A, VCARDS.encode(), "contacts.vcf")
    assert (result.added, result.updated, result.skipped) == (3, 0, 1)
    assert [e.index for e in result.errors] == [3, 5, 7]
    assert "not a valid address" in result.errors[0].reason
    assert str(result.errors[2]) == "#7: the card has no END:VCARD"
    assert shape(await book.list(A)) == [
        ("Jane Doe", ("jane@example.org", "jd@example.com"), ("+1 555 0100",),
         "Acme, Inc.; Sales", "likes, tea\nand cake", ("Friends", "Work")),
        ("Jörg Müller", ("joerg@example.de",), (), "", "", ()),
        ("Max Mustermann", ("max@example.de",), ("+49-30-1234",), "", "", ("Work",)),
    ]
    assert [(g.name, len(g.members)) for g in await book.groups(A)] == [("Friends", 1),
                                                                        ("Work", 2)]
    before = {c.name: c.id for c in await book.list(A)}
    again = await book.import_(A, VCARDS.encode(), "contacts.vcf")
    assert (again.added, again.updated, again.skipped) == (0, 0, 4)
    assert {c.name: c.id for c in await book.list(A)} == before
    changed = VCARDS.replace("FN:Jane Doe", "FN:Jane Roe").replace(
        "EMAIL;PREF=1:max@example.de", "EMAIL;PREF=1:max@example.de\nEMAIL:mm@example.de")
    third = await book.import_(A, changed.encode(), "contacts.vcf")
    assert (third.added, third.updated) == (0, 2)
    after = {c.name: c for c in await book.list(A)}
    assert after["Jane Roe"].id == before["Jane Doe"]  # matched by UID
    assert after["Max Mustermann"].emails == ["max@example.de", "mm@example.de"]  # by address
    assert len(after) == 3 and len(await book.groups(A)) == 2


GOOGLE_CSV = (
    "Name,Given Name,Family Name,E-mail 1 - Type,E-mail 1 - Value,E-mail 2 - Type,"
    "E-mail 2 - Value,Phone 1 - Type,Phone 1 - Value,Organization 1 - Name,Notes,"
    "Group Membership\n"
    "Ann Lee,Ann,Lee,* Home,ann@example.org,Work,ann@work.example,Mobile,+1 555 0101,"
    "Lee Ltd,\"two\nlines\",* myContacts ::: Family ::: Work\n"
    ",Ben,Ray,,ben@example.org ::: ben@other.example,,,,,,,\n"
    "Bad,,,,not-an-address,,,,,,,\n"
    ",,,,,,,,,,,\n"
)
OUTLOOK_CSV = (
    "First Name;Middle Name;Last Name;E-mail Address;E-mail 2 Address;E-mail Display Name;"
    "Mobile Phone;Company;Categories\r\n"
    "Cy;;Young;cy@example.org;;Cy Young (cy@example.org);0171 555;Young AG;\"Family;Golf\"\r\n"
)


async def test_csv_import_reads_google_and_outlook_headers(book: Contacts) -> None:
    google = await book.import_(A, GOOGLE_CSV.encode(), "google.csv")
    assert (google.added, [e.index for e in google.errors]) == (2, [3])
    outlook = await book.import_(A, OUTLOOK_CSV.encode("cp1252"), "outlook.csv")
    assert (outlook.added, outlook.errors) == (1, [])
    assert shape(await book.list(A)) == [
        ("Ann Lee", ("ann@example.org", "ann@work.example"), ("+1 555 0101",), "Lee Ltd",
         "two\nlines", ("Family", "Work")),
        ("Ben Ray", ("ben@example.org", "ben@other.example"), (), "", "", ()),
        ("Cy Young", ("cy@example.org",), ("0171 555",), "Young AG", "", ("Family", "Golf")),
    ]
    again = await book.import_(A, GOOGLE_CSV.encode(), "google.csv")
    assert (again.added, again.updated, again.skipped) == (0, 0, 2)  # by primary address


async def test_export_and_import_round_trip_in_every_format(book: Contacts) -> None:
    ann = await book.add(A, ContactIn("Ann O'Neil, Jr.", ["ann@example.org", "a2@example.org"],
                                      ["+1 (555) 0101", "=cmd"], "Acme; Sales",
                                      "first line\nsecond, with; marks"))
    bo = await book.add(A, ContactIn("Bo", ["bo@example.org"]))
    await book.add(A, ContactIn("No Address", phones=["123"]))
    await book.add(A, ContactIn(emails=["only@example.org"]))
    for name, members in (("Friends", [ann.id, bo.id]), ("Work: Team", [ann.id])):
        group = await book.add_group(A, name)
        await book.set_members(A, group.id, members)
    expected = shape(await book.list(A))
    for fmt, target in (("vcard3", "b"), ("vcard4", "c"), ("csv", "d")):
        content_type, data = await book.export(A, fmt)
        text = data.decode()
        if fmt == "csv":
            assert content_type.startswith("text/csv")
            assert text.startswith("Name,Given Name,Family Name,E-mail 1 - Value,")
            assert "'=cmd" in text  # no formula for a spreadsheet
        else:
            assert content_type.startswith("text/vcard")
            assert text.count("BEGIN:VCARD") == 4
        if fmt == "vcard3":
            assert "VERSION:3.0" in text and "EMAIL;TYPE=INTERNET,pref:ann@example.org" in text
        if fmt == "vcard4":
            assert "VERSION:4.0" in text and "VERSION:3.0" not in text
            assert "EMAIL;PREF=1:ann@example.org" in text
            assert "TEL;VALUE=uri:tel:+1-555-0101" in text
        mailbox = f"{target}@acme.example"
        result = await book.import_(mailbox, data, f"export.{'csv' if fmt == 'csv' else 'vcf'}")
        assert (result.added, result.errors) == (4, []), fmt
        got = shape(await book.list(mailbox))
        if fmt == "vcard4":  # a tel: URI has no brackets
            expected_here = [row if row[0] != ann.name else
                             (*row[:2], ("+1-555-0101", "=cmd"), *row[3:]) for row in expected]
        else:
            expected_here = expected
        assert got == expected_here, fmt
        assert [g.name for g in await book.groups(mailbox)] == ["Friends", "Work: Team"]
        again = await book.import_(mailbox, data, "again.vcf" if fmt != "csv" else "a.csv")
        assert (again.added, len(await book.list(mailbox))) == (0, 4), fmt


async def test_import_bounds(book: Contacts, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidInput, match="larger than 5 MB"):
        await book.import_(A, b"BEGIN:VCARD\r\n" + b"x" * (5 * 1024 * 1024), "big.vcf")
    with pytest.raises(InvalidInput):
        await book.import_(A, b"\x00\x01binary", "photo.png")
    with pytest.raises(InvalidInput):
        await book.export(A, "ldif")
    monkeypatch.setattr(contacts_module, "MAX_IMPORT_CARDS", 2)
    cards = "".join(f"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:N{i}\r\nEND:VCARD\r\n" for i in range(4))
    result = await book.import_(A, cards.encode(), "many.vcf")
    assert result.added == 2 and [e.index for e in result.errors] == [3]


async def test_rows_go_with_the_address(directory: Services, book: Contacts) -> None:
    ann = await book.add(A, ContactIn("Ann", ["ann@example.org"]))
    group = await book.add_group(A, "Team")
    await book.set_members(A, group.id, [ann.id])
    await book.add(B, ContactIn("Kept"))
    await directory.addresses.delete(OP, [A])
    with pytest.raises(NotFound):
        await book.add(A, ContactIn("Ghost"))  # no such mailbox any more
    await directory.bulk.add_lines(OP, [f"{A}|{PASSWORD}"], AddressList.NO_FILTER)
    assert await book.list(A) == [] and await book.groups(A) == []  # a new owner: empty
    assert [c.name for c in await book.list(B)] == ["Kept"]
