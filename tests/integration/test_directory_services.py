"""Services services against a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from mailward.app import Services
from mailward.db.models import AddressKind, AddressList
from mailward.directory import Actor, Conflict, InvalidInput, LineStatus, NotFound


@pytest.fixture
async def acme(directory: Services, operator: Actor) -> Actor:
    await directory.accounts.create(operator, "Acme")
    await directory.domains.create(operator, "acme.example", account="Acme")
    return await directory.accounts.actor_for("Acme")


async def test_bulk_add_categories(directory: Services, acme: Actor) -> None:
    result = await directory.bulk.add_lines(
        acme, "info@acme.example\n\nbob@ACME.example|Secret-pass1\nnobody@else.example\n",
        AddressList.FILTER,
    )
    assert [(r.line, r.status) for r in result.results] == [
        (1, LineStatus.ADDED), (3, LineStatus.ADDED), (4, LineStatus.INVALID),
    ]
    moved = await directory.bulk.add_lines(acme, "bob@acme.example", AddressList.NO_FILTER)
    assert moved.results[0].status is LineStatus.UPDATED
    bob = await directory.addresses.get(acme, "Bob@acme.example")
    assert (bob.list, bob.kind) == (AddressList.NO_FILTER, AddressKind.MAILBOX)


async def test_other_account_cannot_see(directory: Services, acme: Actor, operator: Actor):
    await directory.bulk.add_lines(acme, "info@acme.example", AddressList.FILTER)
    await directory.accounts.create(operator, "Globex")
    globex = await directory.accounts.actor_for("Globex")
    with pytest.raises(NotFound):
        await directory.addresses.get(globex, "info@acme.example")
    assert (await directory.addresses.search(globex)).total == 0
    with pytest.raises(Conflict):
        await directory.domains.create(operator, "ACME.example.", account="Globex")


async def test_whole_submission_goes_to_one_list_and_reports_each_line(
    directory: Services, acme: Actor
) -> None:
    await directory.bulk.add_lines(acme, "old@acme.example", AddressList.NO_FILTER)
    result = await directory.bulk.add_lines(
        acme,
        "new@acme.example\nold@acme.example\nnew@acme.example\n"
        "typo@acme.example|dest@else.example|rely\n",
        AddressList.FILTER,
    )
    statuses = [(r.address, r.status) for r in result.results]
    assert statuses == [
        ("new@acme.example", LineStatus.ADDED),
        ("old@acme.example", LineStatus.UPDATED),
        ("new@acme.example", LineStatus.UNCHANGED),
        ("typo@acme.example", LineStatus.ADDED),
    ]
    assert result.results[3].kind is AddressKind.MAILBOX and result.results[3].warning
    page = await directory.addresses.search(acme)
    assert {a.list for a in page.items} == {AddressList.FILTER}
    assert result.counts == {"invalid": 0, "added": 2, "updated": 1, "unchanged": 1,
                             "warnings": 1}


async def test_existing_data_is_never_dropped_by_bulk_lines(
    directory: Services, acme: Actor
) -> None:
    await directory.bulk.add_lines(
        acme, "box@acme.example|Box-pass-1\nfwd@acme.example|x@else.example|relay",
        AddressList.FILTER,
    )
    result = await directory.bulk.add_lines(
        acme, "box@acme.example|y@else.example|relay\nfwd@acme.example|Fwd-pass-1",
        AddressList.FILTER,
    )
    box, fwd = result.results
    assert (box.status, box.kind) == (LineStatus.UNCHANGED, AddressKind.AUTOCC)
    assert fwd.status is LineStatus.INVALID and "forwarder" in (fwd.reason or "")
    assert (await directory.addresses.get(acme, "fwd@acme.example")).destinations == [
        "x@else.example"]


async def test_setup_autocc_and_edit_rules(directory: Services, acme: Actor) -> None:
    await directory.bulk.add_lines(acme, "a@acme.example\nb@acme.example", AddressList.FILTER)
    with pytest.raises(InvalidInput, match="do not match"):
        await directory.addresses.setup_mailbox(acme, "a@acme.example", "Pass-word1", "Pass-word2")
    box = await directory.addresses.setup_mailbox(acme, "a@acme.example", "Pass-word1",
                                                  "Pass-word1")
    assert box.kind is AddressKind.MAILBOX
    with pytest.raises(Conflict):
        await directory.addresses.setup_forwarder(acme, "a@acme.example", "x@else.example")
    fwd = await directory.addresses.setup_forwarder(acme, "b@acme.example",
                                                    "x@else.example,y@else.example")
    assert fwd.destinations == ["x@else.example", "y@else.example"]
    with pytest.raises(Conflict, match="cannot auto-cc"):
        await directory.addresses.set_autocc(acme, "b@acme.example", "z@else.example")
    with pytest.raises(Conflict):
        await directory.addresses.set_password(acme, "b@acme.example", "Pass-word1", "Pass-word1")
    cc = await directory.addresses.set_autocc(acme, "a@acme.example", "z@else.example")
    assert (cc.kind, cc.destinations) == (AddressKind.AUTOCC, ["z@else.example"])
    plain = await directory.addresses.remove_autocc(acme, "a@acme.example")
    assert (plain.kind, plain.destinations) == (AddressKind.MAILBOX, [])


async def test_passwords_are_argon2id_and_never_plain(directory: Services, acme: Actor) -> None:
    from sqlalchemy import select

    from mailward.db.models import Address

    await directory.bulk.add_lines(acme, "p@acme.example|Plain-text-9", AddressList.FILTER)
    async with directory.db.session() as session:
        stored = await session.scalar(select(Address.password_hash))
    assert stored is not None and stored.startswith("$argon2id$")
    assert directory.passwords.verify(stored, "Plain-text-9")


async def test_search_pages_and_filters(directory: Services, acme: Actor) -> None:
    from mailward.directory import AddressFilter

    lines = "\n".join(f"user{n:02d}@acme.example" for n in range(25))
    await directory.bulk.add_lines(acme, lines + "\nsales@acme.example|s@else.example|relay",
                                   AddressList.FILTER)
    page = await directory.addresses.search(acme, AddressFilter(search="USER"), page=3, per_page=10)
    assert (page.total, page.pages, len(page.items)) == (25, 3, 5)
    assert page.items[0].email == "user20@acme.example"
    kinds = await directory.addresses.search(acme, AddressFilter(kind=AddressKind.FORWARDER))
    assert [a.email for a in kinds.items] == ["sales@acme.example"]
    literal = await directory.addresses.search(acme, AddressFilter(search="%"))
    assert literal.total == 0


async def test_delete_one_several_and_matching(
    directory: Services, acme: Actor, operator: Actor
) -> None:
    from mailward.directory import AddressFilter

    await directory.bulk.add_lines(
        acme, "\n".join(f"u{n}@acme.example" for n in range(6)), AddressList.FILTER)
    await directory.accounts.create(operator, "Globex")
    await directory.domains.create(operator, "globex.example", account="Globex")
    globex = await directory.accounts.actor_for("Globex")
    await directory.bulk.add_lines(globex, "u1@globex.example", AddressList.FILTER)

    assert await directory.addresses.delete(acme, ["u0@acme.example"]) == ["u0@acme.example"]
    with pytest.raises(NotFound):  # all or none: one foreign address spoils the request
        await directory.addresses.delete(acme, ["u1@acme.example", "u1@globex.example"])
    assert len(await directory.addresses.delete(acme, ["u1@acme.example", "u2@acme.example"])) == 2
    assert await directory.addresses.delete_matching(acme, AddressFilter(search="u")) == 3
    assert (await directory.addresses.search(globex)).total == 1


async def test_account_cannot_bulk_add_into_another_accounts_domain(
    directory: Services, acme: Actor, operator: Actor
) -> None:
    await directory.accounts.create(operator, "Globex")
    globex = await directory.accounts.actor_for("Globex")
    result = await directory.bulk.add_lines(globex, "steal@acme.example", AddressList.FILTER)
    assert result.results[0].status is LineStatus.INVALID
    assert "not one of your domains" in (result.results[0].reason or "")
    assert (await directory.addresses.search(acme)).total == 0


async def test_add_one_takes_any_password_characters(directory: Services, acme: Actor) -> None:
    added = await directory.bulk.add_one(acme, "one@acme.example", AddressList.FILTER,
                                         password="pipe|in-password")
    assert (added.status, added.kind) == (LineStatus.ADDED, AddressKind.MAILBOX)
    both = await directory.bulk.add_one(acme, "two@acme.example", AddressList.FILTER,
                                        password="Pass-word1", destinations="x@else.example")
    assert both.status is LineStatus.INVALID and "not both" in (both.reason or "")


async def test_invalid_line_keeps_its_relay_warning(directory: Services, acme: Actor) -> None:
    result = await directory.bulk.add_lines(acme, "q@acme.example|pw|rely", AddressList.FILTER)
    (line,) = result.results
    assert line.status is LineStatus.INVALID and "at least 8" in (line.reason or "")
    assert line.warning is not None and "relay" in line.warning


async def test_operator_cannot_delete_every_match_of_an_empty_search(
    directory: Services, acme: Actor, operator: Actor
) -> None:
    from mailward.directory import AddressFilter

    await directory.bulk.add_lines(acme, "a@acme.example", AddressList.FILTER)
    with pytest.raises(InvalidInput, match="empty every account"):
        await directory.addresses.delete_matching(operator, AddressFilter())
    assert await directory.addresses.delete_matching(operator, AddressFilter(search="a@")) == 1


async def test_account_names_stay_addressable(directory: Services, operator: Actor) -> None:
    with pytest.raises(InvalidInput, match="'/'"):
        await directory.accounts.create(operator, "Acme/Sales")
    created = await directory.accounts.create(operator, "  Acme   Sales ")
    assert created.name == "Acme Sales"
    assert (await directory.accounts.get(operator, "Acme  Sales")).id == created.id


async def test_recipient_lookup_decides_acceptance(
    directory: Services, acme: Actor, operator: Actor
) -> None:
    from mailward.directory import RecipientLookup, Verdict

    await directory.bulk.add_lines(acme, "info@acme.example\nbox@acme.example|Box-pass-77",
                                   AddressList.FILTER)
    await directory.bulk.add_lines(acme, "raw@acme.example", AddressList.NO_FILTER)
    lookup = directory.recipients.lookup
    info = await lookup("INFO@Acme.Example")
    assert (info.address, info.verdict, info.filtered) == (
        "info@acme.example", Verdict.ACCEPTED, True)
    assert info.kind is AddressKind.PENDING  # listed is enough, whatever its set-up
    raw = await lookup("raw@acme.example")
    assert (raw.verdict, raw.filtered) == (Verdict.ACCEPTED, False)
    assert (await lookup("box@acme.example")).kind is AddressKind.MAILBOX
    assert (await lookup("nobody@acme.example")).verdict is Verdict.UNLISTED
    assert (await lookup("info@elsewhere.example")).verdict is Verdict.NOT_OURS
    assert (await lookup("not an address")).verdict is Verdict.MALFORMED
    # sub-addressing: an unlisted bob+tag@ is bob@ (listed ones stand for themselves)
    tagged = await lookup("Box+Newsletters@acme.example")
    assert (tagged.address, tagged.verdict, tagged.kind) == (
        "box@acme.example", Verdict.ACCEPTED, AddressKind.MAILBOX)
    await directory.bulk.add_lines(acme, "box+own@acme.example|raw@acme.example|relay",
                                   AddressList.NO_FILTER)
    own = await lookup("box+own@acme.example")
    assert (own.address, own.kind) == ("box+own@acme.example", AddressKind.FORWARDER)
    assert (await lookup("+tag@acme.example")).verdict is Verdict.UNLISTED
    assert (await lookup("nobody+tag@acme.example")).verdict is Verdict.UNLISTED
    off = RecipientLookup(directory.db, delimiter="")
    assert (await off.lookup("box+newsletters@acme.example")).verdict is Verdict.UNLISTED


async def test_timestamps_come_back_as_aware_utc(directory: Services, acme: Actor) -> None:
    from datetime import UTC, datetime, timedelta

    account = await directory.accounts.get(acme, "Acme")  # read back from the database
    assert account.created_at.utcoffset() == timedelta(0)
    assert abs(account.created_at - datetime.now(UTC)) < timedelta(hours=1)


async def test_absurd_pages_are_a_clear_error(directory: Services, acme: Actor) -> None:
    with pytest.raises(InvalidInput, match="page must be between 1 and"):
        await directory.addresses.search(acme, page=10**20)
