"""Maildir++ ``maildirsize``: a quota line, then ``"<bytes> <count>"`` delta lines.

Usage is the sum of the delta lines. We append a line per change (under the mailbox
lock) and, once the file grows past 5120 bytes as Maildir++ suggests, fold it into one
line. A missing or unparsable file is recomputed by the caller from the uidlists.
We keep no limit in the file (``0S,0C``): the quota is passed per delivery.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from mailward.store.maildir.files import FILE_MODE, atomic_write

MAILDIRSIZE_FILE = "maildirsize"
QUOTA_LINE = "0S,0C"
COMPACT_ABOVE = 5120
_QUOTA_RE = re.compile(r"(?:\d+[SC](?:,\d+[SC])*)?")


def read_usage(maildir: Path) -> tuple[int, int] | None:
    """``(bytes, messages)`` from ``maildirsize``, or ``None`` if missing or corrupt."""
    try:
        text = (maildir / MAILDIRSIZE_FILE).read_text("ascii")
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    lines = text.split("\n")
    if len(lines) < 3 or lines[-1] != "" or not _QUOTA_RE.fullmatch(lines[0]):
        return None
    total_bytes = total_count = 0
    for line in lines[1:-1]:
        parts = line.split()
        if len(parts) != 2:
            return None
        try:
            total_bytes += int(parts[0])
            total_count += int(parts[1])
        except ValueError:
            return None
    if total_bytes < 0 or total_count < 0:
        return None
    return total_bytes, total_count


def write_usage(maildir: Path, size: int, count: int) -> None:
    """Replace ``maildirsize`` with a single total line."""
    atomic_write(maildir / MAILDIRSIZE_FILE, f"{QUOTA_LINE}\n{size} {count}\n".encode())


def add_usage(maildir: Path, size: int, count: int) -> None:
    """Record a change; a no-op when there is no file (it will be recomputed)."""
    if size == 0 and count == 0:
        return
    path = maildir / MAILDIRSIZE_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC, FILE_MODE)
    except FileNotFoundError:
        return
    try:
        os.write(fd, f"{size} {count}\n".encode())
        length = os.fstat(fd).st_size
    finally:
        os.close(fd)
    if length > COMPACT_ABOVE:
        current = read_usage(maildir)
        if current is None:
            invalidate(maildir)
        else:
            write_usage(maildir, *current)


def invalidate(maildir: Path) -> None:
    """Forget the recorded usage so the next reader recomputes it."""
    (maildir / MAILDIRSIZE_FILE).unlink(missing_ok=True)
