"""Fixtures of the browser tests: Debian's Chromium, driven by Playwright's sync API, against
a real ``web`` role.

* ``browser`` (session): headless ``/usr/bin/chromium`` (``scripts/ensure-browser``
  installs it). Playwright never downloads a browser; without Chromium the tests fail.
* ``web_server``: ``mailward.server.run`` with the web role on 127.0.0.1, port 0, in a
  thread of its own with its own event loop (the test blocks the main thread in
  Playwright's sync calls); its base URL.
* ``page``: a fresh browser context and page whose ``base_url`` is that server.
* ``shot(page, name)``: a full-page screenshot in ``test-output/screenshots/`` for review.

Every test here is marked ``browser``.

Playwright's sync API and ``asyncio.run`` in one thread: after each sync call Playwright
leaves its own event loop marked as the thread's running loop, so ``asyncio.run`` (the
database fixtures, pytest-asyncio's tests after these) would refuse to start while the
session's browser is alive. The loop is marked running here only while Playwright code runs
(the ``page`` fixture, the test function, closing the browser) and unmarked otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from threaded_roles import roles_in_thread

from mailward.config import Settings

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-output" / "screenshots"
HERE = Path(__file__).resolve().parent


Shot = Callable[[Page, str], Path]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.browser)


# -- Playwright's event loop, marked running only while Playwright code runs ----------------

_playwright_loop: asyncio.AbstractEventLoop | None = None


@contextlib.contextmanager
def playwright_turn() -> Iterator[None]:
    """Mark Playwright's loop as this thread's running loop for the block (if it is up)."""
    if _playwright_loop is None:
        yield
        return
    asyncio._set_running_loop(_playwright_loop)
    try:
        yield
    finally:
        asyncio._set_running_loop(None)


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    """The test function of a browser test runs in Playwright's turn."""
    with playwright_turn():
        return (yield)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    global _playwright_loop
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure-browser (Debian's chromium)")
    playwright = sync_playwright().start()
    _playwright_loop = asyncio.get_running_loop()  # Playwright's, marked by start()
    try:
        # Headless; Playwright passes --no-sandbox itself (chromium_sandbox defaults to
        # False), which Chromium needs when the tests run as root.
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
    except BaseException:
        playwright.stop()
        _playwright_loop = None
        raise
    asyncio._set_running_loop(None)
    try:
        yield launched
    finally:
        with playwright_turn():
            try:
                launched.close()
            finally:
                playwright.stop()
        _playwright_loop = None


# -- the web role in a thread --------------------------------------------------------------


@contextlib.contextmanager
def serving_in_thread(settings: Settings) -> Iterator[str]:
    """The ``web`` role of ``settings`` in a thread (:func:`roles_in_thread`); its URL."""
    with roles_in_thread(settings) as (_, urls):
        yield urls["web"]


@pytest.fixture
def web_server(settings: Settings) -> Iterator[str]:
    """Base URL of a real ``web`` role on 127.0.0.1 (a free port) for this test."""
    with serving_in_thread(settings.model_copy(update={"bind": "127.0.0.1", "port_web": 0})) as url:
        yield url


@pytest.fixture
def page(browser: Browser, web_server: str) -> Iterator[Page]:
    """A fresh context (no cookies) and page; relative URLs go to ``web_server``.

    An uncaught JavaScript error on the page fails the test.
    """
    errors: list[str] = []
    with playwright_turn():
        context = browser.new_context(base_url=web_server)
        new = context.new_page()
        new.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield new
    finally:
        with playwright_turn():
            context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Shot:
    """``shot(page, name)``: a full-page screenshot, test-output/screenshots/TEST-NAME.png."""
    test = re.sub(r"[^\w.-]+", "-", request.node.name).strip("-")

    def take(page: Page, name: str) -> Path:
        path = SCREENSHOTS / f"{test}-{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=path, full_page=True)
        return path

    return take
