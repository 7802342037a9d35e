"""Store backends under test: the contract suite runs once per entry of ``BACKENDS``.

``make_store`` returns a factory; every call opens a *new* store instance on the same
underlying storage, so tests can check what persists across instances (restarts).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mailward.store import MaildirStore, MailStore

StoreFactory = Callable[[], MailStore]

BACKENDS = ["maildir"]


@pytest.fixture(params=BACKENDS)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    if request.param == "maildir":
        root = tmp_path / "mail"
        return lambda: MaildirStore(root)
    raise AssertionError(f"unknown store backend {request.param}")


@pytest.fixture
def store(make_store: StoreFactory) -> MailStore:
    return make_store()
