"""``PROMETHEUS_MULTIPROC_DIR`` for a node of several worker processes.

``prometheus_client`` chooses at import whether its values live in memory or in files of
that directory, so :func:`prepare` must run before anything imports it (it refuses
otherwise); this module imports nothing that does.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Final

ENV: Final = "PROMETHEUS_MULTIPROC_DIR"


class TooLate(RuntimeError):
    """``prometheus_client`` was imported before the directory was set."""


def prepare(directory: Path) -> Path:
    """Empty (or create) ``directory`` and point ``PROMETHEUS_MULTIPROC_DIR`` at it, for
    this process and the workers it forks. Raises :class:`TooLate` when
    ``prometheus_client`` is loaded already without it."""
    if "prometheus_client" in sys.modules and os.environ.get(ENV) != str(directory):
        raise TooLate(f"prometheus_client was imported before {ENV} was set")
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, mode=0o700)
    os.environ[ENV] = str(directory)
    return directory


def forget() -> None:
    """Stop using the directory for processes started from now on (e.g. after a run)."""
    os.environ.pop(ENV, None)
