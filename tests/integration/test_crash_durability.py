"""A 250 is a promise: kill the server with SIGKILL while a client sends (the worker
process that serves the client, or the whole node: supervisor and workers), let it come
back (the supervisor restarts a worker; a node is started again), and every message that
got 250 is delivered. Runs ``mailward serve --workers 2`` as real processes."""

from __future__ import annotations

import asyncio
import os
import signal
import smtplib
import threading
from collections.abc import AsyncIterator

import pytest
from mail_helpers import Sink
from worker_helpers import Node, filtered_customer, holder

from mailward.app import Services
from mailward.config import Settings
from mailward.directory import Actor

OP = Actor.operator()
pytestmark = pytest.mark.slow


@pytest.fixture
async def customer(settings: Settings, directory: Services) -> AsyncIterator[Sink]:
    async with filtered_customer(directory) as sink:
        yield sink


def sender_thread(port: int, accepted: list[int], stop: threading.Event,
                  progress: asyncio.Event, loop: asyncio.AbstractEventLoop,
                  client_port: list[int]) -> None:
    """Send numbered messages until the server dies; record those answered 250 (and the
    client's port in ``client_port``)."""
    number = 0
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            assert client.sock is not None
            client_port.append(client.sock.getsockname()[1])
            while not stop.is_set():
                number += 1
                data = (f"From: a@outside.example\r\nTo: ann@filtered.example\r\n"
                        f"Subject: crash {number}\r\n\r\nbody {number}\r\n").encode()
                client.sendmail("a@outside.example", ["ann@filtered.example"], data)
                accepted.append(number)  # only reached after the 250
                loop.call_soon_threadsafe(progress.set)
    except (smtplib.SMTPException, OSError):
        pass  # the server was killed mid-conversation


@pytest.mark.parametrize("killed", ["worker", "node"])
async def test_every_message_answered_250_survives_sigkill(
    settings: Settings, customer: Sink, mailward_env: dict[str, str], directory: Services,
    killed: str,
) -> None:
    customer.rcpt = lambda _a: "451 4.3.2 not now"  # keep everything in the queue
    env = {**os.environ, **mailward_env, "MAILWARD_PORT_MX": "0", "MAILWARD_BIND": "127.0.0.1",
           "MAILWARD_RETRY_FIRST_SECONDS": "1", "MAILWARD_RETRY_MAX_INTERVAL_SECONDS": "1",
           "MAILWARD_QUEUE_POLL_SECONDS": "0.2", "MAILWARD_SMTP_TIMEOUT_SECONDS": "10"}
    server = Node(env, "mx,delivery", workers=2)
    try:
        await server.start()
        port = server.ports["mx"][0]
        accepted: list[int] = []
        client_port: list[int] = []
        stop, progress = threading.Event(), asyncio.Event()
        loop = asyncio.get_running_loop()
        client = asyncio.create_task(asyncio.to_thread(
            sender_thread, port, accepted, stop, progress, loop, client_port))
        try:
            async with asyncio.timeout(60):
                while len(accepted) < 25:
                    await progress.wait()
                    progress.clear()
        except TimeoutError:
            pytest.fail(f"{len(accepted)} accepted; server: {server.lines[-20:]}")
        mark = len(server.lines)
        if killed == "node":
            await server.killed()  # supervisor and workers, while the client is still sending
        else:  # the worker serving the client, mid-conversation
            worker = holder(port, client_port[0], set(server.pids))
            assert worker is not None
            os.kill(worker, signal.SIGKILL)
        await client
        assert len(accepted) >= 25
        customer.rcpt = lambda _a: None  # the customer's server is back
        if killed == "node":
            await server.start()
        else:
            await server.restarted(server.pids.index(worker), worker, mark)
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
