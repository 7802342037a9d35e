"""The subscriptions part of the MailStore contract, on every backend in ``BACKENDS``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from mailward.store import (
    INBOX,
    FolderExists,
    InvalidFolderName,
    InvalidMailbox,
    MailStore,
)

StoreFactory = Callable[[], MailStore]
ANN = "ann@example.com"
BOB = "bob@example.com"


async def test_no_subscriptions_at_first(store: MailStore) -> None:
    assert await store.subscriptions(ANN) == []


async def test_subscriptions_are_sorted_inbox_first_and_persist(
    make_store: StoreFactory,
) -> None:
    store = make_store()
    for name in ["Zeta", "inbox", "Archive/2024", "Archive", "Entwürfe"]:
        await store.subscribe(ANN, name)
    expected = [INBOX, "Archive", "Archive/2024", "Entwürfe", "Zeta"]
    assert await store.subscriptions(ANN) == expected
    assert await make_store().subscriptions(ANN) == expected


async def test_subscribe_and_unsubscribe_are_idempotent(store: MailStore) -> None:
    await store.subscribe(ANN, "Lists")
    await store.subscribe(ANN, "Lists")
    assert await store.subscriptions(ANN) == ["Lists"]
    await store.unsubscribe(ANN, "Lists")
    await store.unsubscribe(ANN, "Lists")
    await store.unsubscribe(ANN, "Never")
    assert await store.subscriptions(ANN) == []


async def test_inbox_subscription_is_case_insensitive(store: MailStore) -> None:
    await store.subscribe(ANN, "InBox")
    assert await store.subscriptions(ANN) == [INBOX]
    await store.unsubscribe(ANN, "inbox")
    assert await store.subscriptions(ANN) == []


async def test_subscribed_folder_need_not_exist(store: MailStore) -> None:
    await store.subscribe(ANN, "Nowhere/Deep")
    assert await store.subscriptions(ANN) == ["Nowhere/Deep"]
    assert [f.name for f in await store.folders(ANN)] == [INBOX]


async def test_subscriptions_belong_to_their_mailbox(store: MailStore) -> None:
    await store.subscribe(ANN, "Ann")
    await store.subscribe(BOB, "Bob")
    assert await store.subscriptions(ANN) == ["Ann"]
    assert await store.subscriptions(BOB) == ["Bob"]


@pytest.mark.parametrize("name", ["", "a//b", "/a", "a/", "x*", "y%", "a/../b", "bad\nname"])
async def test_invalid_names_are_refused(store: MailStore, name: str) -> None:
    with pytest.raises(InvalidFolderName):
        await store.subscribe(ANN, name)
    with pytest.raises(InvalidFolderName):
        await store.unsubscribe(ANN, name)
    assert await store.subscriptions(ANN) == []


async def test_invalid_mailbox_is_refused(store: MailStore) -> None:
    for call in (
        store.subscriptions("Ann@Example.com"),
        store.subscribe("not-an-address", "A"),
        store.unsubscribe("../etc@example.com", "A"),
    ):
        with pytest.raises(InvalidMailbox):
            await call


async def test_delete_folder_keeps_its_subscription(store: MailStore) -> None:
    await store.create_folder(ANN, "Old")
    await store.subscribe(ANN, "Old")
    await store.delete_folder(ANN, "Old")
    assert await store.subscriptions(ANN) == ["Old"]


async def test_rename_moves_subscriptions_of_the_folder_and_inferiors(
    store: MailStore,
) -> None:
    for name in ["Work/Projects/A", "Work/Projects/B", "Workshop", "Other"]:
        await store.create_folder(ANN, name)
    for name in ["Work", "Work/Projects/A", "Workshop", "Other", "Work/Gone"]:
        await store.subscribe(ANN, name)
    await store.rename_folder(ANN, "Work", "Done/Work")
    assert await store.subscriptions(ANN) == [
        "Done/Work",
        "Done/Work/Gone",
        "Done/Work/Projects/A",
        "Other",
        "Workshop",
    ]


async def test_rename_merges_with_an_existing_subscription(store: MailStore) -> None:
    await store.create_folder(ANN, "A")
    await store.subscribe(ANN, "A")
    await store.subscribe(ANN, "B")  # subscribed, but no folder B exists
    await store.rename_folder(ANN, "A", "B")
    assert await store.subscriptions(ANN) == ["B"]


async def test_failed_rename_leaves_subscriptions(store: MailStore) -> None:
    await store.create_folder(ANN, "A")
    await store.create_folder(ANN, "B")
    await store.subscribe(ANN, "A")
    with pytest.raises(FolderExists):
        await store.rename_folder(ANN, "A", "B")
    assert await store.subscriptions(ANN) == ["A"]


async def test_delete_mailbox_removes_subscriptions(make_store: StoreFactory) -> None:
    store = make_store()
    await store.subscribe(ANN, "Lists")
    await store.subscribe(BOB, "Lists")
    await store.delete_mailbox(ANN)
    assert await store.subscriptions(ANN) == []
    assert await make_store().subscriptions(BOB) == ["Lists"]


async def test_concurrent_subscribes_are_all_kept(make_store: StoreFactory) -> None:
    stores = [make_store(), make_store()]
    names = [f"List{n:02d}" for n in range(20)]
    await asyncio.gather(*(stores[n % 2].subscribe(ANN, name) for n, name in enumerate(names)))
    assert await stores[0].subscriptions(ANN) == names
