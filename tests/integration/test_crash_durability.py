"""A 250 is a promise: kill the server with SIGKILL while a client sends, restart it, and
every message that got 250 is delivered. Runs ``mailward serve`` as a real process."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import smtplib
import sys
import threading
from collections.abc import AsyncIterator

import pytest
from mail_helpers import Sink, sink_server

from mailward.app import Services
from mailward.config import Settings
from mailward.db import AddressList
from mailward.directory import Actor
from mailward.server.run import STOP_SECONDS

OP = Actor.operator()
MX_LINE = re.compile(rb"^mx\s+smtp://127\.0\.0\.1:(\d+)")
START_TIMEOUT = 60
pytestmark = pytest.mark.slow


class Server:
    """``mailward serve --roles mx,delivery`` in a child process."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0
        self._drainer: asyncio.Task[None] | None = None

    async def start(self) -> int:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mailward", "serve", "--roles", "mx,delivery",
            env=self.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        assert self.proc.stdout is not None
        seen = []
        async with asyncio.timeout(START_TIMEOUT):
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"server exited: {b''.join(seen).decode()}")
                seen.append(line)
                found = MX_LINE.match(line)
                if found:
                    self.port = int(found.group(1))
                    break
        self._drainer = asyncio.create_task(self._drain())
        return self.port

    async def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while await self.proc.stdout.readline():
            pass

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:  # serve cancels roles stuck in their shutdown after STOP_SECONDS
                async with asyncio.timeout(STOP_SECONDS + 30):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
                pytest.fail("mailward serve did not exit after SIGTERM")


@pytest.fixture
async def customer(settings: Settings, directory: Services) -> AsyncIterator[Sink]:
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "filtered.example", account="Acme")
    await directory.bulk.add_lines(OP, ["ann@filtered.example"], AddressList.FILTER)
    async with sink_server() as sink:
        await directory.servers.add(OP, "filtered.example", sink.address, preference=10)
        yield sink


def sender_thread(port: int, accepted: list[int], stop: threading.Event,
                  progress: asyncio.Event, loop: asyncio.AbstractEventLoop) -> None:
    """Send numbered messages until the server dies; record those answered 250."""
    number = 0
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            while not stop.is_set():
                number += 1
                data = (f"From: a@outside.example\r\nTo: ann@filtered.example\r\n"
                        f"Subject: crash {number}\r\n\r\nbody {number}\r\n").encode()
                client.sendmail("a@outside.example", ["ann@filtered.example"], data)
                accepted.append(number)  # only reached after the 250
                loop.call_soon_threadsafe(progress.set)
    except (smtplib.SMTPException, OSError):
        pass  # the server was killed mid-conversation


async def test_every_message_answered_250_survives_sigkill(
    settings: Settings, customer: Sink, mailward_env: dict[str, str], directory: Services
) -> None:
    customer.rcpt = lambda _a: "451 4.3.2 not now"  # keep everything in the queue
    env = {**os.environ, **mailward_env, "MAILWARD_PORT_MX": "0", "MAILWARD_BIND": "127.0.0.1",
           "MAILWARD_RETRY_FIRST_SECONDS": "1", "MAILWARD_RETRY_MAX_INTERVAL_SECONDS": "1",
           "MAILWARD_QUEUE_POLL_SECONDS": "0.2", "MAILWARD_SMTP_TIMEOUT_SECONDS": "10"}
    server = Server(env)
    try:
        port = await server.start()
        accepted: list[int] = []
        stop, progress = threading.Event(), asyncio.Event()
        loop = asyncio.get_running_loop()
        client = asyncio.create_task(asyncio.to_thread(
            sender_thread, port, accepted, stop, progress, loop))
        async with asyncio.timeout(60):
            while len(accepted) < 25:
                await progress.wait()
                progress.clear()
        await server.kill()  # while the client is still sending
        await client
        assert len(accepted) >= 25
        customer.rcpt = lambda _a: None  # the customer's server is back
        await server.start()
        try:
            async with asyncio.timeout(90), customer._changed:
                await customer._changed.wait_for(
                    lambda: set(accepted) <= _subjects(customer))
        except TimeoutError:
            left = (await directory.queue.list(OP)).items
            missing = sorted(set(accepted) - _subjects(customer))
            pytest.fail(f"not delivered after restart: {missing}; "
                        f"queue: {[(e.status, e.last_error) for e in left][:5]}")
    finally:
        await server.stop()
    delivered = _subjects(customer)
    assert set(accepted) <= delivered
    assert len(customer.received) == len(delivered), "a message was delivered twice"


def _subjects(sink: Sink) -> set[int]:
    return {int(str(r.message["Subject"]).split()[-1]) for r in sink.received}
