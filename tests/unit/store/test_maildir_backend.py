"""What only the Maildir backend promises: its on-disk layout and living with other programs."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailward.config import load_settings
from mailward.db import Database
from mailward.store import (
    DELETED,
    FLAGGED,
    INBOX,
    SEEN,
    InvalidFolderName,
    InvalidMailbox,
    MaildirStore,
    QuotaExceeded,
    open_store,
)
from mailward.store.maildir import mailbox as mailbox_module

ANN = "ann@example.com"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "mail"


@pytest.fixture
def store(root: Path) -> MaildirStore:
    return MaildirStore(root)


def maildir(root: Path, local: str = "ann", domain: str = "example.com") -> Path:
    return root / domain / local / "Maildir"


def files_and_dirs(directory: Path) -> list[str]:
    return os.listdir(directory)


def files(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if not name.startswith("."))


def files_outside(top: Path, home: Path) -> list[Path]:
    """Everything under ``top`` that is neither inside ``home`` nor one of its parents."""
    home = home.resolve()
    return [
        path
        for path in top.rglob("*")
        if not (path.resolve().is_relative_to(home) or home.is_relative_to(path.resolve()))
    ]


def drop_in(directory: Path, name: str, data: bytes, mtime: float | None = None) -> Path:
    """Write a message the way a foreign MDA would: tmp/ first, then rename."""
    tmp = directory.parent / "tmp" / name
    tmp.write_bytes(data)
    if mtime is not None:
        os.utime(tmp, (mtime, mtime))
    target = directory / name
    tmp.rename(target)
    return target


def test_open_store_uses_the_mail_subdirectory(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    opened = open_store(settings, Database(settings.db_url))
    assert isinstance(opened, MaildirStore)
    assert opened.root == tmp_path / "mail"


async def test_layout_is_maildir_plus_plus(store: MaildirStore, root: Path) -> None:
    await store.deliver(ANN, b"Subject: hi\n\nhello\n")
    for folder in ("Archive/2024", "v1.2", "Entwürfe"):
        await store.create_folder(ANN, folder)
    home = maildir(root)
    assert {"cur", "new", "tmp"} <= set(os.listdir(home))
    dirs = sorted(n for n in os.listdir(home) if n.startswith("."))
    assert dirs == [".Archive", ".Archive.2024", ".Entw&APw-rfe", ".v1\\2e2"]
    for name in dirs:
        assert {"cur", "new", "tmp", "maildirfolder"} <= set(os.listdir(home / name))


async def test_delivery_writes_a_unique_sized_file_into_new(
    store: MaildirStore, root: Path
) -> None:
    data = b"Subject: sized\r\n\r\nbody\r\n"
    await store.deliver(ANN, data)
    await store.deliver(ANN, data)
    home = maildir(root)
    names = files(home / "new")
    assert len(names) == 2 and names[0] != names[1]
    assert all(name.endswith(f",S={len(data)}") for name in names)
    assert all(":" not in name and "/" not in name for name in names)
    assert files(home / "tmp") == []
    assert (home / "new" / names[0]).read_bytes() == data


async def test_flagged_delivery_goes_to_cur_with_info(store: MaildirStore, root: Path) -> None:
    await store.deliver(ANN, b"x", flags=frozenset({SEEN, FLAGGED}))
    [name] = files(maildir(root) / "cur")
    assert name.endswith(":2,FS")
    assert files(maildir(root) / "new") == []


async def test_seen_moves_the_file_to_cur_and_keeps_the_uid(
    store: MaildirStore, root: Path
) -> None:
    await store.deliver(ANN, b"first")
    await store.deliver(ANN, b"second")
    new = maildir(root) / "new"
    [before] = [n for n in files(new) if (new / n).read_bytes() == b"first"]
    await store.set_flags(ANN, INBOX, 1, {SEEN, DELETED})
    [after] = files(maildir(root) / "cur")
    assert after == f"{before}:2,ST"
    assert [(m.uid, m.flags) for m in await store.messages(ANN, INBOX)] == [
        (1, {SEEN, DELETED}),
        (2, frozenset()),
    ]
    assert await MaildirStore(root).fetch(ANN, INBOX, 1) == b"first"


async def test_keywords_use_dovecot_keywords_letters(store: MaildirStore, root: Path) -> None:
    await store.deliver(ANN, b"x")
    await store.set_flags(ANN, INBOX, 1, {"$Junk", "Work", SEEN})
    keywords = (maildir(root) / "dovecot-keywords").read_text()
    assert keywords == "0 $Junk\n1 Work\n"
    [name] = files(maildir(root) / "cur")
    assert name.endswith(":2,Sab")
    assert await store.set_flags(ANN, INBOX, 1, {"$junk"}) == {"$Junk"}  # case-insensitive
    assert files(maildir(root) / "cur")[0].endswith(":2,a")


async def test_letters_we_do_not_map_survive_flag_changes(store: MaildirStore, root: Path) -> None:
    cur = maildir(root) / "cur"
    await store.folders(ANN)  # creates the Maildir
    drop_in(cur, "1700000000.foreign.host:2,PS", b"passed")
    [info] = await store.messages(ANN, INBOX)
    assert info.flags == {SEEN}
    await store.set_flags(ANN, INBOX, info.uid, {FLAGGED})
    assert files(cur) == ["1700000000.foreign.host:2,FP"]


async def test_foreign_files_get_the_next_uids_oldest_first(
    store: MaildirStore, root: Path
) -> None:
    await store.deliver(ANN, b"ours")
    home = maildir(root)
    drop_in(home / "new", "2000.newer.host", b"newer message", mtime=2_000_000_000)
    drop_in(home / "cur", "1000.older.host:2,S", b"older", mtime=1_000_000_000)
    infos = await store.messages(ANN, INBOX)
    assert [(m.uid, m.size, m.flags) for m in infos] == [
        (1, 4, frozenset()),
        (2, 5, {SEEN}),
        (3, 13, frozenset()),
    ]
    assert infos[1].internal_date == datetime.fromtimestamp(1_000_000_000, UTC)
    assert await store.fetch(ANN, INBOX, 3) == b"newer message"
    assert await store.usage(ANN) == 4 + 5 + 13
    assert (await store.deliver(ANN, b"next")).uid == 4


async def test_refused_delivery_leaves_no_file(store: MaildirStore, root: Path) -> None:
    await store.deliver(ANN, b"a" * 90, quota_bytes=100)
    with pytest.raises(QuotaExceeded):
        await store.deliver(ANN, b"b" * 20, quota_bytes=100)
    assert files(maildir(root) / "tmp") == []
    assert len(files(maildir(root) / "new")) == 1


async def test_stale_tmp_files_are_cleaned(
    store: MaildirStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.deliver(ANN, b"kept")
    (maildir(root) / "tmp" / "123.crashed.host").write_bytes(b"half a message")
    await store.folder_status(ANN, INBOX)
    assert files(maildir(root) / "tmp") == ["123.crashed.host"]  # young: left alone
    monkeypatch.setattr(mailbox_module, "STALE_TMP_SECONDS", -60)  # everything is "old"
    await store.folder_status(ANN, INBOX)
    assert files(maildir(root) / "tmp") == []
    assert await store.fetch(ANN, INBOX, 1) == b"kept"


async def test_files_removed_by_others_disappear(store: MaildirStore, root: Path) -> None:
    await store.deliver(ANN, b"a" * 10)
    await store.deliver(ANN, b"b" * 20)
    assert await store.usage(ANN) == 30
    [first] = [name for name in files(maildir(root) / "new")  # names need not sort by UID
               if (maildir(root) / "new" / name).read_bytes() == b"a" * 10]
    (maildir(root) / "new" / first).unlink()
    assert [m.uid for m in await store.messages(ANN, INBOX)] == [2]
    assert await store.usage(ANN) == 20
    assert (await store.deliver(ANN, b"c")).uid == 3


async def test_lost_uidlist_means_new_uidvalidity_and_no_double_count(
    store: MaildirStore, root: Path
) -> None:
    for n in range(3):
        await store.deliver(ANN, b"m" * (n + 1))
    before = await store.folder_status(ANN, INBOX)
    assert await store.usage(ANN) == 6
    (maildir(root) / "mailward-uidlist").unlink()

    reopened = MaildirStore(root)
    after = await reopened.folder_status(ANN, INBOX)
    assert after.uidvalidity > before.uidvalidity
    assert (after.exists, after.uidnext) == (3, 4)
    assert await reopened.usage(ANN) == 6


@pytest.mark.parametrize("content", ["", "garbage\n", "0S,0C\n12 x\n", "0S,0C\n5 1"])
async def test_broken_maildirsize_is_recomputed(
    store: MaildirStore, root: Path, content: str
) -> None:
    await store.deliver(ANN, b"a" * 70)
    await store.create_folder(ANN, "Sub")
    await store.deliver(ANN, b"b" * 30, folder="Sub")
    (maildir(root) / "maildirsize").write_text(content)
    assert await store.usage(ANN) == 100
    assert (maildir(root) / "maildirsize").read_text() == "0S,0C\n100 2\n"


async def test_maildirsize_is_folded_when_it_grows(store: MaildirStore, root: Path) -> None:
    await store.usage(ANN)
    for _ in range(400):  # ~400 appended lines would exceed 5120 bytes
        await store.deliver(ANN, b"z" * 10)
    assert (maildir(root) / "maildirsize").stat().st_size <= 5120
    assert await MaildirStore(root).usage(ANN) == 4000


async def test_torn_uidlist_tail_is_ignored_and_repaired(store: MaildirStore, root: Path) -> None:
    await store.deliver(ANN, b"one")
    uidlist = maildir(root) / "mailward-uidlist"
    with uidlist.open("a") as handle:
        handle.write("2 99 1700000000 half-writ")  # a crash in the middle of an append
    reopened = MaildirStore(root)
    assert [m.uid for m in await reopened.messages(ANN, INBOX)] == [1]
    assert (await reopened.deliver(ANN, b"two")).uid == 2
    assert "half-writ" not in uidlist.read_text()
    assert [m.uid for m in await MaildirStore(root).messages(ANN, INBOX)] == [1, 2]


async def test_copy_hard_links_and_flags_stay_independent(store: MaildirStore, root: Path) -> None:
    await store.deliver(ANN, b"shared body")
    await store.create_folder(ANN, "Copy")
    assert await store.copy(ANN, INBOX, [1], "Copy") == {1: 1}
    [original] = files(maildir(root) / "new")
    [copied] = files(maildir(root) / ".Copy" / "cur")
    original_stat = (maildir(root) / "new" / original).stat()
    assert (maildir(root) / ".Copy" / "cur" / copied).stat().st_ino == original_stat.st_ino
    await store.set_flags(ANN, "Copy", 1, {SEEN})
    assert (await store.messages(ANN, INBOX))[0].flags == frozenset()


async def test_names_never_escape_the_root(store: MaildirStore, tmp_path: Path) -> None:
    for mailbox in ("../evil@example.com", "x@../../evil", "../../@example.com", "a@b/c.com"):
        with pytest.raises(InvalidMailbox):
            await store.deliver(mailbox, b"x")
    for folder in ("../../../evil", "a/../../b", "..", "./x"):
        with pytest.raises(InvalidFolderName):
            await store.create_folder(ANN, folder)
    tricky = "~/..x/y"  # dot-dot inside a level, a leading tilde: escaped, not refused
    await store.create_folder(ANN, tricky)
    assert tricky in [f.name for f in await store.folders(ANN)]
    assert files_outside(tmp_path, maildir(tmp_path / "mail")) == []
    assert ".\\7e.\\2e\\2ex.y" in files_and_dirs(maildir(tmp_path / "mail"))


async def test_two_store_instances_share_the_lock(root: Path) -> None:
    first, second = MaildirStore(root), MaildirStore(root)
    stored = await asyncio.gather(
        *(first.deliver(ANN, f"a{n}".encode()) for n in range(20)),
        *(second.deliver(ANN, f"b{n}".encode()) for n in range(20)),
    )
    assert sorted(s.uid for s in stored) == list(range(1, 41))
    assert len(await MaildirStore(root).messages(ANN, INBOX)) == 40


DELIVER_SCRIPT = """
import asyncio, sys
from pathlib import Path
from mailward.store import MaildirStore

async def main():
    store = MaildirStore(Path(sys.argv[1]))
    results = await asyncio.gather(
        *(store.deliver("ann@example.com", f"{sys.argv[2]}{n}".encode()) for n in range(15))
    )
    print(" ".join(str(r.uid) for r in results))

asyncio.run(main())
"""


async def test_processes_delivering_at_once_get_distinct_uids(root: Path) -> None:
    async def run(tag: str) -> list[int]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            DELIVER_SCRIPT,
            str(root),
            tag,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate()
        assert proc.returncode == 0
        return [int(uid) for uid in out.split()]

    batches = await asyncio.gather(run("p"), run("q"), run("r"))
    assert sorted(uid for batch in batches for uid in batch) == list(range(1, 46))
    store = MaildirStore(root)
    assert [m.uid for m in await store.messages(ANN, INBOX)] == list(range(1, 46))
    assert await store.usage(ANN) == sum(len(f"{t}{n}") for t in "pqr" for n in range(15))
