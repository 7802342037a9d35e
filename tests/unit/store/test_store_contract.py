"""The MailStore contract: every backend in ``conftest.BACKENDS`` must pass all of it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from mailward.store import (
    ANSWERED,
    DELETED,
    FLAGGED,
    INBOX,
    SEEN,
    FolderExists,
    FolderHasChildren,
    InvalidFlag,
    InvalidFolderName,
    InvalidMailbox,
    MailStore,
    NoSuchFolder,
    NoSuchMessage,
    QuotaExceeded,
)

ANN = "ann@example.com"
BOB = "bob@example.com"


def message(n: int, body: str = "hello") -> bytes:
    return f"From: x@example.org\r\nSubject: m{n}\r\n\r\n{body} {n}\r\n".encode()


async def uids(store: MailStore, folder: str = INBOX, mailbox: str = ANN) -> list[int]:
    return [info.uid for info in await store.messages(mailbox, folder)]


async def test_backend_satisfies_the_protocol(store: MailStore) -> None:
    assert isinstance(store, MailStore)


@pytest.mark.parametrize(
    "data",
    [
        b"Subject: crlf\r\n\r\nbody\r\n",
        b"Subject: lf\n\nbody without final newline",
        b"Subject: binary\r\n\r\n\x00\xff\xfe\r\n.\r\n\x1a" + bytes(range(256)),
        b"",
        b"Subject: big\r\n\r\n" + b"0123456789abcdef" * 70_000,
    ],
    ids=["crlf", "lf", "binary", "empty", "big"],
)
async def test_deliver_then_fetch_is_byte_exact(store: MailStore, data: bytes) -> None:
    stored = await store.deliver(ANN, data)
    assert (stored.folder, stored.uid, stored.size) == (INBOX, 1, len(data))
    assert await store.fetch(ANN, INBOX, stored.uid) == data
    [info] = await store.messages(ANN, INBOX)
    assert (info.uid, info.size, info.flags) == (1, len(data), frozenset())


async def test_fetch_many_returns_existing_messages_after_flag_changes(store: MailStore) -> None:
    for n in range(4):
        await store.deliver(ANN, message(n))
    await store.set_flags(ANN, INBOX, 2, {SEEN})  # a Maildir file is renamed by this
    await store.set_flags(ANN, INBOX, 3, {DELETED})
    await store.expunge(ANN, INBOX)
    assert await store.fetch_many(ANN, INBOX, [4, 2, 3, 1, 99]) == {
        1: message(0), 2: message(1), 4: message(3)}
    assert await store.fetch_many(ANN, INBOX, []) == {}
    with pytest.raises(NoSuchFolder):
        await store.fetch_many(ANN, "Missing", [1])


async def test_inbox_name_is_case_insensitive(store: MailStore) -> None:
    stored = await store.deliver(ANN, message(1), folder="inbox")
    assert stored.folder == INBOX
    assert await store.fetch(ANN, "InBoX", stored.uid) == message(1)


async def test_uids_increase_and_are_never_reused(store: MailStore) -> None:
    first = [(await store.deliver(ANN, message(n))).uid for n in range(3)]
    assert first == [1, 2, 3]
    await store.set_flags(ANN, INBOX, 3, {DELETED})
    assert await store.expunge(ANN, INBOX) == [3]
    assert (await store.deliver(ANN, message(4))).uid == 4
    assert await uids(store) == [1, 2, 4]
    status = await store.folder_status(ANN, INBOX)
    assert (status.uidnext, status.exists) == (5, 3)


async def test_state_persists_across_store_instances(
    store: MailStore, make_store: Callable[[], MailStore]
) -> None:
    await store.deliver(ANN, message(1))
    await store.create_folder(ANN, "Archive")
    await store.deliver(ANN, message(2), folder="Archive", flags=frozenset({SEEN}))
    before = await store.folders(ANN)

    reopened = make_store()
    assert await reopened.folders(ANN) == before
    assert await reopened.fetch(ANN, "Archive", 1) == message(2)
    assert (await reopened.deliver(ANN, message(3))).uid == 2
    inbox = await reopened.folder_status(ANN, INBOX)
    assert inbox.uidvalidity == before[0].uidvalidity


async def test_flags_are_replaced_and_read_back(store: MailStore) -> None:
    await store.deliver(ANN, message(1))
    result = await store.set_flags(ANN, INBOX, 1, {"\\seen", FLAGGED, "$Junk"})
    assert result == {SEEN, FLAGGED, "$Junk"}
    [info] = await store.messages(ANN, INBOX)
    assert info.flags == {SEEN, FLAGGED, "$Junk"}
    assert (await store.folder_status(ANN, INBOX)).unseen == 0

    assert await store.set_flags(ANN, INBOX, 1, [ANSWERED]) == {ANSWERED}
    [info] = await store.messages(ANN, INBOX)
    assert info.flags == {ANSWERED}
    assert (await store.folder_status(ANN, INBOX)).unseen == 1
    assert await store.fetch(ANN, INBOX, 1) == message(1)


async def test_deliver_with_flags_and_date(store: MailStore) -> None:
    when = datetime(2024, 2, 29, 12, 30, 15, tzinfo=timezone(timedelta(hours=2)))
    await store.deliver(ANN, message(1), flags=frozenset({SEEN, "$Label1"}), internal_date=when)
    await store.deliver(ANN, message(2), internal_date=datetime(2020, 1, 1, 8, 0, 0))
    first, second = await store.messages(ANN, INBOX)
    assert first.flags == {SEEN, "$Label1"}
    assert first.internal_date == when
    assert second.internal_date == datetime(2020, 1, 1, 8, 0, 0, tzinfo=UTC)
    assert second.internal_date.tzinfo is not None


@pytest.mark.parametrize("flag", ["\\Recent", "\\Unknown", "two words", "paren(", "", "ä"])
async def test_invalid_flags_are_refused(store: MailStore, flag: str) -> None:
    await store.deliver(ANN, message(1))
    with pytest.raises(InvalidFlag):
        await store.set_flags(ANN, INBOX, 1, {flag})
    with pytest.raises(InvalidFlag):
        await store.deliver(ANN, message(2), flags=frozenset({flag}))
    assert await uids(store) == [1]


async def test_unknown_uids_raise_no_such_message(store: MailStore) -> None:
    await store.deliver(ANN, message(1))
    for uid in (0, 2, -1):
        with pytest.raises(NoSuchMessage):
            await store.fetch(ANN, INBOX, uid)
        with pytest.raises(NoSuchMessage):
            await store.set_flags(ANN, INBOX, uid, {SEEN})


async def test_expunge_removes_only_deleted_messages(store: MailStore) -> None:
    for n in range(1, 6):
        await store.deliver(ANN, message(n))
    await store.set_flags(ANN, INBOX, 2, {DELETED})
    await store.set_flags(ANN, INBOX, 4, {DELETED, SEEN})
    await store.set_flags(ANN, INBOX, 5, {SEEN})
    assert await store.expunge(ANN, INBOX) == [2, 4]
    assert await uids(store) == [1, 3, 5]
    with pytest.raises(NoSuchMessage):
        await store.fetch(ANN, INBOX, 2)

    await store.set_flags(ANN, INBOX, 1, {DELETED})
    await store.set_flags(ANN, INBOX, 3, {DELETED})
    assert await store.expunge(ANN, INBOX, [3, 5, 99]) == [3]  # 5 lacks \Deleted
    assert await uids(store) == [1, 5]
    assert await store.expunge(ANN, INBOX, []) == []


async def test_copy_assigns_new_uids_and_keeps_flags_and_dates(store: MailStore) -> None:
    when = datetime(2023, 5, 1, 9, 0, tzinfo=UTC)
    for n in range(1, 4):
        await store.deliver(ANN, message(n), internal_date=when + timedelta(days=n))
    await store.set_flags(ANN, INBOX, 3, {FLAGGED, "$Important"})
    await store.create_folder(ANN, "Archive")
    await store.deliver(ANN, message(9), folder="Archive", flags=frozenset({"$Other"}))

    mapping = await store.copy(ANN, INBOX, [3, 1, 99], "Archive")
    assert mapping == {1: 2, 3: 3}
    assert await uids(store) == [1, 2, 3]  # the source is untouched
    copies = {info.uid: info for info in await store.messages(ANN, "Archive")}
    assert await store.fetch(ANN, "Archive", 3) == message(3)
    assert copies[3].flags == {FLAGGED, "$Important"}
    assert copies[3].internal_date == when + timedelta(days=3)
    assert copies[2].flags == frozenset()
    assert copies[1].flags == {"$Other"}


async def test_move_assigns_new_uids_and_removes_the_source(store: MailStore) -> None:
    for n in range(1, 4):
        await store.deliver(ANN, message(n))
    await store.set_flags(ANN, INBOX, 2, {SEEN})
    await store.create_folder(ANN, "Done")
    used = await store.usage(ANN)

    assert await store.move(ANN, INBOX, [2, 3], "Done") == {2: 1, 3: 2}
    assert await uids(store) == [1]
    moved = await store.messages(ANN, "Done")
    assert [(m.uid, m.flags) for m in moved] == [(1, {SEEN}), (2, frozenset())]
    assert await store.fetch(ANN, "Done", 2) == message(3)
    assert await store.usage(ANN) == used

    # Moving within one folder gives the message a new UID there.
    assert await store.move(ANN, "Done", [1], "Done") == {1: 3}
    assert await uids(store, "Done") == [2, 3]


async def test_copy_and_move_to_missing_folder_fail(store: MailStore) -> None:
    await store.deliver(ANN, message(1))
    with pytest.raises(NoSuchFolder):
        await store.copy(ANN, INBOX, [1], "Nowhere")
    with pytest.raises(NoSuchFolder):
        await store.move(ANN, INBOX, [1], "Nowhere")
    assert await uids(store) == [1]


async def test_folder_create_list_rename_delete(store: MailStore) -> None:
    await store.create_folder(ANN, "Archive/2024")
    names = [f.name for f in await store.folders(ANN)]
    assert names == [INBOX, "Archive", "Archive/2024"]  # superior created too
    await store.deliver(ANN, message(1), folder="Archive/2024")

    await store.rename_folder(ANN, "Archive", "Old/Archive")
    names = [f.name for f in await store.folders(ANN)]
    assert names == [INBOX, "Old", "Old/Archive", "Old/Archive/2024"]
    assert await store.fetch(ANN, "Old/Archive/2024", 1) == message(1)
    with pytest.raises(NoSuchFolder):
        await store.messages(ANN, "Archive/2024")

    with pytest.raises(FolderHasChildren):
        await store.delete_folder(ANN, "Old/Archive")
    await store.delete_folder(ANN, "Old/Archive/2024")
    await store.delete_folder(ANN, "Old/Archive")
    assert [f.name for f in await store.folders(ANN)] == [INBOX, "Old"]


async def test_folder_errors(store: MailStore) -> None:
    await store.create_folder(ANN, "Sent")
    await store.create_folder(ANN, "Drafts")
    with pytest.raises(FolderExists):
        await store.create_folder(ANN, "Sent")
    with pytest.raises(FolderExists):
        await store.create_folder(ANN, "inbox")
    with pytest.raises(InvalidFolderName, match="INBOX"):
        await store.delete_folder(ANN, "INBOX")
    with pytest.raises(InvalidFolderName, match="INBOX"):
        await store.rename_folder(ANN, "Inbox", "Old")
    with pytest.raises(FolderExists):
        await store.rename_folder(ANN, "Sent", "Drafts")
    with pytest.raises(FolderExists):
        await store.rename_folder(ANN, "Sent", "INBOX")
    with pytest.raises(InvalidFolderName):
        await store.rename_folder(ANN, "Sent", "Sent/Sub")
    with pytest.raises(NoSuchFolder):
        await store.rename_folder(ANN, "Missing", "Other")
    with pytest.raises(NoSuchFolder):
        await store.delete_folder(ANN, "Missing")
    with pytest.raises(NoSuchFolder):
        await store.folder_status(ANN, "Missing")
    with pytest.raises(NoSuchFolder):
        await store.deliver(ANN, message(1), folder="Missing")
    with pytest.raises(NoSuchFolder):
        await store.fetch(ANN, "Missing", 1)
    with pytest.raises(NoSuchFolder):
        await store.set_flags(ANN, "Missing", 1, {SEEN})
    with pytest.raises(NoSuchFolder):
        await store.expunge(ANN, "Missing")
    assert [f.name for f in await store.folders(ANN)] == [INBOX, "Drafts", "Sent"]
    assert await store.usage(ANN) == 0


@pytest.mark.parametrize(
    "name",
    ["Projects v1.2", "Entwürfe", "a&b", "back\\slash", "~tilde", "日本語/子", "..hidden"],
)
async def test_unusual_folder_names_round_trip(store: MailStore, name: str) -> None:
    await store.create_folder(ANN, name)
    listed = [f.name for f in await store.folders(ANN)]
    assert name in listed
    stored = await store.deliver(ANN, message(1), folder=name)
    assert await store.fetch(ANN, name, stored.uid) == message(1)


@pytest.mark.parametrize(
    "name",
    ["", "/a", "a/", "a//b", "a\x00b", "a\nb", "a*", "50%", "..", "a/../b", "./a", "x" * 300],
)
async def test_invalid_folder_names_are_refused(store: MailStore, name: str) -> None:
    with pytest.raises(InvalidFolderName):
        await store.create_folder(ANN, name)
    with pytest.raises(InvalidFolderName):
        await store.deliver(ANN, message(1), folder=name)
    assert [f.name for f in await store.folders(ANN)] == [INBOX]


async def test_recreated_folder_gets_a_higher_uidvalidity(store: MailStore) -> None:
    await store.create_folder(ANN, "Tmp")
    first = await store.folder_status(ANN, "Tmp")
    await store.delete_folder(ANN, "Tmp")
    await store.create_folder(ANN, "Tmp")
    again = await store.folder_status(ANN, "Tmp")
    assert again.uidvalidity > first.uidvalidity
    assert (again.uidnext, again.exists) == (1, 0)


async def test_renamed_folder_keeps_uids_under_a_new_uidvalidity(store: MailStore) -> None:
    await store.create_folder(ANN, "A")
    await store.deliver(ANN, message(1), folder="A")
    await store.deliver(ANN, message(2), folder="A")
    before = await store.folder_status(ANN, "A")
    await store.rename_folder(ANN, "A", "B")
    after = await store.folder_status(ANN, "B")
    assert after.uidvalidity > before.uidvalidity
    assert (after.uidnext, after.exists) == (before.uidnext, 2)
    assert await store.fetch(ANN, "B", 2) == message(2)


async def test_usage_follows_deliveries_copies_and_removals(store: MailStore) -> None:
    assert await store.usage(ANN) == 0
    for size in (100, 250, 50):
        assert (await store.deliver(ANN, b"x" * size)).size == size
    assert await store.usage(ANN) == 400
    await store.create_folder(ANN, "Keep")
    await store.copy(ANN, INBOX, [1], "Keep")
    assert await store.usage(ANN) == 400 + 100
    await store.set_flags(ANN, INBOX, 2, {DELETED})
    await store.expunge(ANN, INBOX)
    assert await store.usage(ANN) == 500 - 250
    await store.delete_folder(ANN, "Keep")
    assert await store.usage(ANN) == 150
    assert await store.usage(BOB) == 0


async def test_quota_refuses_and_stores_nothing(store: MailStore) -> None:
    await store.deliver(ANN, b"a" * 600, quota_bytes=1000)
    with pytest.raises(QuotaExceeded) as caught:
        await store.deliver(ANN, b"b" * 401, quota_bytes=1000)
    assert (caught.value.usage, caught.value.size, caught.value.quota) == (600, 401, 1000)
    assert "over quota" in str(caught.value)
    assert await uids(store) == [1]
    assert await store.usage(ANN) == 600
    assert (await store.deliver(ANN, b"c" * 400, quota_bytes=1000)).uid == 2  # exactly full

    await store.create_folder(ANN, "Copies")
    with pytest.raises(QuotaExceeded):
        await store.copy(ANN, INBOX, [1], "Copies", quota_bytes=1000)
    assert await uids(store, "Copies") == []
    assert await store.usage(ANN) == 1000

    await store.set_flags(ANN, INBOX, 1, {DELETED})
    await store.expunge(ANN, INBOX)
    assert await store.usage(ANN) == 400
    assert (await store.deliver(ANN, b"d" * 600, quota_bytes=1000)).uid == 3


async def test_zero_quota_means_no_space_and_none_unlimited(store: MailStore) -> None:
    with pytest.raises(QuotaExceeded):
        await store.deliver(ANN, b"", quota_bytes=0)
    with pytest.raises(QuotaExceeded):
        await store.deliver(ANN, b"x", quota_bytes=0)
    assert (await store.deliver(ANN, b"y" * 10_000, quota_bytes=None)).uid == 1
    assert await store.usage(ANN) == 10_000


@pytest.mark.parametrize(
    "mailbox",
    [
        "../x@example.com",
        "a/b@example.com",
        "a@../../etc",
        "a@example.com/..",
        "..@example.com",
        ".hidden@example.com",
        "a\x00@example.com",
        "a\\b@example.com",
        "Ann@example.com",
        "noat",
        "a@b@example.com",
        "a@example..com",
        "a@.example.com",
        "@example.com",
        "a@localhost",
        "",
    ],
)
async def test_unsafe_mailbox_names_are_refused(store: MailStore, mailbox: str) -> None:
    with pytest.raises(InvalidMailbox):
        await store.deliver(mailbox, message(1))
    with pytest.raises(InvalidMailbox):
        await store.folders(mailbox)
    with pytest.raises(InvalidMailbox):
        await store.delete_mailbox(mailbox)


async def test_unicode_local_parts_are_accepted(store: MailStore) -> None:
    box = "jörg@xn--bcher-kva.example"
    await store.deliver(box, message(1))
    assert await store.fetch(box, INBOX, 1) == message(1)


async def test_mailboxes_are_isolated(store: MailStore) -> None:
    await store.deliver(ANN, message(1))
    assert await store.messages(BOB, INBOX) == []
    with pytest.raises(NoSuchMessage):
        await store.fetch(BOB, INBOX, 1)


async def test_concurrent_deliveries_get_distinct_uids(store: MailStore) -> None:
    bodies = [message(n, "concurrent") for n in range(50)]
    stored = await asyncio.gather(*(store.deliver(ANN, body) for body in bodies))
    assert sorted(s.uid for s in stored) == list(range(1, 51))
    assert await uids(store) == list(range(1, 51))
    for result, body in zip(stored, bodies, strict=True):
        assert await store.fetch(ANN, INBOX, result.uid) == body
    assert await store.usage(ANN) == sum(len(b) for b in bodies)


async def test_concurrent_mixed_operations_stay_consistent(store: MailStore) -> None:
    await store.create_folder(ANN, "Box")
    for n in range(10):
        await store.deliver(ANN, message(n))
    await asyncio.gather(
        *(store.deliver(ANN, message(100 + n)) for n in range(10)),
        *(store.set_flags(ANN, INBOX, uid, {SEEN}) for uid in range(1, 6)),
        store.copy(ANN, INBOX, range(6, 11), "Box"),
    )
    inbox = await store.messages(ANN, INBOX)
    assert [m.uid for m in inbox] == list(range(1, 21))
    assert sum(SEEN in m.flags for m in inbox) == 5
    assert await uids(store, "Box") == [1, 2, 3, 4, 5]


async def test_delete_mailbox_removes_everything(store: MailStore) -> None:
    await store.delete_mailbox(ANN)  # nothing stored yet: no error
    await store.deliver(ANN, message(1))
    await store.create_folder(ANN, "Sent")
    await store.deliver(BOB, message(2))
    await store.delete_mailbox(ANN)
    assert [f.name for f in await store.folders(ANN)] == [INBOX]
    assert await store.usage(ANN) == 0
    assert await store.messages(ANN, INBOX) == []
    assert await store.fetch(BOB, INBOX, 1) == message(2)
