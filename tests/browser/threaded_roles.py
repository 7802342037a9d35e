"""Roles of mailward run in a thread with their own event loop, for the browser tests (the
test's own thread blocks in Playwright's sync calls)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib
import threading
from collections.abc import Iterable, Iterator

import pytest

from mailward.config import Settings

START_TIMEOUT = 30
STOP_TIMEOUT = 60  # the roles drain their connections within this (a node: several roles)

# ``mailward.server.run`` the attribute is the function; this is the module.
server_run = importlib.import_module("mailward.server.run")


@contextlib.contextmanager
def roles_in_thread(settings: Settings, roles: Iterable[str] = ("web",), name: str = "web server"
                    ) -> Iterator[tuple[asyncio.AbstractEventLoop, dict[str, str]]]:
    """Run ``roles`` of ``settings`` in a thread with its own loop; yield that loop and the
    roles' URLs.

    ``ready`` hands the thread's loop, the serving task and the URLs over; stopping cancels
    that task in its loop (a graceful stop, as in ``api_server.running_server``) and joins
    the thread. A server that fails to start, dies during the test or does not stop in
    ``STOP_TIMEOUT`` fails the test.
    """
    started: concurrent.futures.Future[tuple[asyncio.AbstractEventLoop, asyncio.Task[None],
                                             dict[str, str]]] = concurrent.futures.Future()
    failure: list[BaseException] = []
    stopping = threading.Event()

    async def serve() -> None:
        loop, task = asyncio.get_running_loop(), asyncio.current_task()
        assert task is not None

        def ready(urls: dict[str, str]) -> None:
            started.set_result((loop, task, urls))

        await server_run.run(settings, set(roles), ready=ready)

    def main() -> None:
        try:
            asyncio.run(serve())
        except asyncio.CancelledError:
            if not stopping.is_set():
                failure.append(RuntimeError(f"the {name} task was cancelled"))
        except BaseException as exc:
            failure.append(exc)
        else:
            if not stopping.is_set():
                failure.append(RuntimeError(f"the {name} stopped on its own"))
        finally:
            if not started.done():
                started.set_exception(failure[0] if failure else RuntimeError("no start"))

    thread = threading.Thread(target=main, name=f"mailward {name} (browser test)", daemon=True)
    thread.start()
    try:
        loop, task, urls = started.result(timeout=START_TIMEOUT)
    except concurrent.futures.TimeoutError:
        pytest.fail(f"the {name} did not start within {START_TIMEOUT}s")
    try:
        yield loop, urls
    finally:
        stopping.set()
        with contextlib.suppress(RuntimeError):  # the loop is closed: it stopped already
            loop.call_soon_threadsafe(task.cancel)
        thread.join(STOP_TIMEOUT)
        if thread.is_alive():
            pytest.fail(f"the {name} thread did not stop within {STOP_TIMEOUT}s")
        if failure:
            raise failure[0]
