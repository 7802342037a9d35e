"""IMAP subscriptions of a Maildir: the ``subscriptions`` file in the Maildir root.

One canonical folder name per line (UTF-8); the file is replaced atomically (temporary
file, fsync, rename). Lines that are not valid folder names (for instance a header a
different program wrote) are ignored when reading. Callers hold the mailbox lock.
"""

from __future__ import annotations

from pathlib import Path

from mailward.store.interface import InvalidFolderName
from mailward.store.maildir.files import atomic_write
from mailward.store.maildir.names import inbox_first, normalize_folder, renamed

SUBSCRIPTIONS_FILE = "subscriptions"


def read_subscriptions(maildir: Path) -> list[str]:
    """The subscribed names, sorted with ``INBOX`` first (none if there is no file)."""
    try:
        raw = (maildir / SUBSCRIPTIONS_FILE).read_bytes()
    except FileNotFoundError:
        return []
    names: list[str] = []
    for line in raw.decode("utf-8", errors="replace").splitlines():
        try:
            names.append(normalize_folder(line))
        except InvalidFolderName:
            continue
    return inbox_first(names)


def write_subscriptions(maildir: Path, names: list[str]) -> None:
    """Replace the file with ``names`` (canonical, deduplicated by the caller or here)."""
    text = "".join(f"{name}\n" for name in inbox_first(names))
    atomic_write(maildir / SUBSCRIPTIONS_FILE, text.encode())


def subscribe(maildir: Path, folder: str) -> None:
    names = read_subscriptions(maildir)
    if folder not in names:
        write_subscriptions(maildir, [*names, folder])


def unsubscribe(maildir: Path, folder: str) -> None:
    names = read_subscriptions(maildir)
    if folder in names:
        write_subscriptions(maildir, [name for name in names if name != folder])


def rename_subscriptions(maildir: Path, old: str, new: str) -> None:
    """Move the subscriptions of ``old`` and its inferiors to their new names."""
    names = read_subscriptions(maildir)
    moved = [renamed(name, old, new) or name for name in names]
    if moved != names:
        write_subscriptions(maildir, moved)
