"""``mailward serve --workers N`` as a real process group, and which worker holds a
connection (from ``/proc``: the kernel's socket table and each worker's open files)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from mail_helpers import Sink, sink_server

from mailward.app import Services
from mailward.db import AddressList
from mailward.directory import Actor
from mailward.server.run import STOP_SECONDS

START_TIMEOUT = 60
ROLE_LINE = re.compile(r"^(mx|submission|imap|pop3|web)\s+([a-z0-9]+://[^\s,]+(?:, [a-z0-9]+://[^\s,]+)*)")
WORKERS_LINE = re.compile(r"^workers\s+(\d+) process(?:es)?.*\(pids? ([\d, ]+)\)")


class Node:
    """``mailward serve --roles ROLES --workers N``; stdout and stderr are collected in
    ``lines``."""

    def __init__(self, env: dict[str, str], roles: str, workers: int = 2) -> None:
        self.env = env
        self.roles = roles
        self.workers = workers
        self.proc: asyncio.subprocess.Process | None = None
        self.ports: dict[str, list[int]] = {}
        self.pids: list[int] = []
        self.lines: list[str] = []
        self._changed = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> Node:
        self.lines.clear()
        self.ports, self.pids = {}, []
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mailward", "serve", "--roles", self.roles,
            "--workers", str(self.workers), env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.create_task(self._read())
        try:
            found = await self.wait_line(WORKERS_LINE, timeout=START_TIMEOUT)
        except TimeoutError:
            raise RuntimeError("serve did not start:\n" + "\n".join(self.lines)) from None
        self.pids = [int(pid) for pid in found.group(2).split(", ")]
        for line in self.lines:
            role = ROLE_LINE.match(line)
            if role:
                self.ports[role.group(1)] = [int(url.rsplit(":", 1)[1])
                                             for url in role.group(2).split(", ")]
        return self

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            async with self._changed:
                self.lines.append(line.decode(errors="replace").rstrip("\n"))
                self._changed.notify_all()
        async with self._changed:
            self.lines.append("<exited>")
            self._changed.notify_all()

    async def wait_line(self, pattern: re.Pattern[str], *, start: int = 0,
                        timeout: float = 30) -> re.Match[str]:  # noqa: ASYNC109
        """The first line from ``lines[start:]`` matching ``pattern`` (searched)."""
        async with asyncio.timeout(timeout), self._changed:
            while True:
                for line in self.lines[start:]:
                    if found := pattern.search(line):
                        return found
                    if line == "<exited>":
                        raise RuntimeError("serve exited:\n" + "\n".join(self.lines))
                await self._changed.wait()

    def children(self) -> set[int]:
        """The live worker processes (children of the supervisor)."""
        return set(children(self.pid))

    async def restarted(self, index: int, old_pid: int, start: int) -> int:
        """Wait until the supervisor reports worker ``index`` ready again; its new pid."""
        found = await self.wait_line(re.compile(rf"worker {index} ready \(pid (\d+)\)"),
                                     start=start)
        pid = int(found.group(1))
        assert pid != old_pid
        return pid

    async def stop(self) -> int:
        """SIGTERM the supervisor; its exit status once it exited."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.terminate()
        try:  # workers drain for up to STOP_SECONDS
            async with asyncio.timeout(STOP_SECONDS + 30):
                status = await self.proc.wait()
        except TimeoutError:
            self.kill()
            raise AssertionError("mailward serve did not exit after SIGTERM") from None
        await self._finish()
        return status

    def kill(self) -> None:
        """SIGKILL the supervisor, then at once every worker (before they could notice)."""
        if self.proc is not None:
            workers = self.children()
            for pid in (self.proc.pid, *workers):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    async def killed(self) -> None:
        self.kill()
        assert self.proc is not None
        await self.proc.wait()
        await self._finish()

    async def _finish(self) -> None:
        if self._reader is not None:
            await self._reader


@contextlib.asynccontextmanager
async def running(env: dict[str, str], roles: str, workers: int = 2) -> AsyncIterator[Node]:
    node = await Node(env, roles, workers).start()
    try:
        yield node
    finally:
        for pid in node.children():  # in case a test left one stopped
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        if node.proc is not None and node.proc.returncode is None:
            try:
                await node.stop()
            finally:
                node.kill()  # whatever is left


def children(pid: int) -> Iterator[int]:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                yield int(stat.parent.name)


def holder(server_port: int, client_port: int, pids: set[int]) -> int | None:
    """Which of ``pids`` holds the server end of the TCP connection from ``client_port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, remote = (int(a.rsplit(":", 1)[1], 16) for a in fields[1:3])
                if (local, remote) == (server_port, client_port):
                    inodes.add(f"socket:[{fields[9]}]")
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                        return pid
    return None


def state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@contextlib.asynccontextmanager
async def stopped(*pids: int) -> AsyncIterator[None]:
    """SIGSTOP ``pids`` for the block: new connections go to the other workers."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        async with asyncio.timeout(10):
            for pid in pids:  # the signal takes effect when the process is next scheduled
                while state(pid) != "T":  # noqa: ASYNC110 - a process state, no event
                    await asyncio.sleep(0.001)
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


@contextlib.asynccontextmanager
async def filtered_customer(directory: Services) -> AsyncIterator[Sink]:
    """Customer domain filtered.example (ann listed Filter) delivering to a loopback sink."""
    op = Actor.operator()
    await directory.accounts.create(op, "Acme")
    await directory.domains.create(op, "filtered.example", account="Acme")
    await directory.bulk.add_lines(op, ["ann@filtered.example"], AddressList.FILTER)
    async with sink_server() as sink:
        await directory.servers.add(op, "filtered.example", sink.address, preference=10)
        yield sink
