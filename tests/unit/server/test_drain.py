"""A role stuck in its shutdown does not keep ``mailward serve`` from exiting."""

from __future__ import annotations

import asyncio
import importlib
import logging

import pytest

run_module = importlib.import_module("mailward.server.run")  # the package exports run()


async def test_stuck_roles_are_cancelled_and_named(monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(run_module, "STOP_SECONDS", 0.05)
    never = asyncio.Event()
    done = asyncio.create_task(asyncio.sleep(0), name="mailward-mx")
    stuck = asyncio.create_task(never.wait(), name="mailward-delivery")
    with caplog.at_level(logging.ERROR, logger="mailward.server.run"):
        await run_module._drain({"mx": done, "delivery": stuck})
    assert done.done() and not done.cancelled()
    assert stuck.cancelled()
    assert "roles still stopping after" in caplog.text and "delivery" in caplog.text
    assert "mailward-mx" not in caplog.text


async def test_roles_that_stop_are_simply_awaited(caplog: pytest.LogCaptureFixture) -> None:
    tasks = {"mx": asyncio.create_task(asyncio.sleep(0))}
    await run_module._drain(tasks)
    assert tasks["mx"].done() and caplog.text == ""
