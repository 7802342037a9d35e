"""Readiness checks that need nothing but the standard library (the metrics listener and
the web app's ``/readyz`` share them)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def check_spool(directory: Path) -> None:
    """Create, fsync and remove a file in ``directory`` (made if missing: the spool makes
    it at its first message); raises ``OSError`` if it cannot."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".readyz-", dir=directory)
    try:
        os.write(fd, b"ready\n")
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(name)


def reason(exc: BaseException) -> str:
    """A failed check's exception in one short line."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:200]
