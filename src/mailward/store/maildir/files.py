"""Blocking file-system helpers: durable writes, unique Maildir names, the mailbox lock."""

from __future__ import annotations

import fcntl
import itertools
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = "mailward-lock"
FOLDER_MARKER = "maildirfolder"
SUBDIRS = ("cur", "new", "tmp")
DIR_MODE = 0o700
FILE_MODE = 0o600

_counter = itertools.count()
_SIZE_RE = re.compile(r",S=(\d+)(?:,|$)")


def _hostname() -> str:
    # The Maildir spec: "/" and ":" in the host name are written as octal escapes.
    return socket.gethostname().replace("/", "\\057").replace(":", "\\072") or "localhost"


_HOST = _hostname()


def unique_base(size: int) -> str:
    """A new unique message base name ``time.MusecPpidQnRrand.host,S=size``."""
    now = time.time()
    sec, usec = int(now), int((now % 1) * 1_000_000)
    rand = secrets.token_hex(4)
    return f"{sec}.M{usec}P{os.getpid()}Q{next(_counter)}R{rand}.{_HOST},S={size}"


def split_name(name: str) -> tuple[str, str]:
    """Split a Maildir file name into its base and its ``:2,`` info letters."""
    base, _, info = name.partition(":")
    return base, info[2:] if info.startswith("2,") else ""


def size_from_base(base: str) -> int | None:
    """The ``,S=<size>`` a base name carries, if any."""
    match = _SIZE_RE.search(base)
    return int(match.group(1)) if match else None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` durably (temporary file, fsync, rename, fsync dir)."""
    tmp = path.with_name(f"{path.name}.tmp.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def write_new_file(path: Path, data: bytes, mtime: float | None) -> float:
    """Create ``path`` exclusively with ``data``, fsync it; return its mtime."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    try:
        try:
            _write_all(fd, data)
            if mtime is not None:
                os.utime(fd, (mtime, mtime))
            os.fsync(fd)
            return os.fstat(fd).st_mtime
        finally:
            os.close(fd)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def make_dirs(path: Path) -> None:
    """``mkdir -p`` that fsyncs the parent of every directory it creates."""
    missing: list[Path] = []
    probe = path
    while not probe.is_dir():
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        fsync_dir(directory.parent)


def ensure_folder_dirs(folder_dir: Path, *, subfolder: bool) -> None:
    """Make sure ``cur``, ``new`` and ``tmp`` (and a subfolder's marker) exist."""
    for sub in SUBDIRS:
        if not (folder_dir / sub).is_dir():
            make_dirs(folder_dir / sub)
    marker = folder_dir / FOLDER_MARKER
    if subfolder and not marker.exists():
        os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, FILE_MODE))


@contextmanager
def mailbox_lock(maildir: Path) -> Iterator[None]:
    """Hold the exclusive ``flock`` of a Maildir, creating the Maildir if needed.

    If the Maildir is deleted (or replaced) while we wait, the lock is taken again on
    the new one, so a waiter never works in a directory that is gone.
    """
    path = maildir / LOCK_FILE
    while True:
        ensure_folder_dirs(maildir, subfolder=False)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held = os.fstat(fd)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
        except BaseException:
            os.close(fd)
            raise
        if current is not None and (current.st_dev, current.st_ino) == (
            held.st_dev,
            held.st_ino,
        ):
            break
        os.close(fd)
    try:
        yield
    finally:
        os.close(fd)
