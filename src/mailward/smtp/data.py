"""Receiving DATA: the dot-terminated lines, and their bytes with memory per session bounded.

``read_data`` reads up to ``<CRLF>.<CRLF>`` into a ``DataBuffer``.

Up to ``memory_limit`` bytes stay in memory; past that, everything goes to an anonymous
temporary file under the spill directory (``data_dir/tmp``): ``O_TMPFILE`` on Linux, so
no name ever appears and nothing is left behind by a crash; the file is gone when the
buffer is closed. While spilled, at most ``FLUSH_BYTES`` wait in memory between writes
(page-cache writes, no fsync: these bytes are not durable until the spool has them).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

FLUSH_BYTES = 64 * 1024
MAX_DATA_LINE = 1000  # RFC 5321 §4.5.3.1.6, including CRLF (+1 for a stuffed dot)
KEEPALIVE_SECONDS = 1.0  # while DATA flows, the idle timeout is reset this often at most
R_LINE_TOO_LONG = "500 5.5.2 Line too long"
R_TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"
R_BARE_NEWLINE = "550 5.6.0 Message refused: bare CR or LF in message (RFC 5321 2.3.8)"


class DataBuffer:
    """Collects DATA lines; :meth:`value` returns them whole, :meth:`close` frees them."""

    def __init__(self, memory_limit: int | None = None, directory: Path | None = None
                 ) -> None:
        self.memory_limit = memory_limit  # None: never spill
        self.directory = directory
        self.size = 0
        self._chunks: list[bytes] = []
        self._pending = 0  # bytes in _chunks
        self._file: BinaryIO | None = None

    @property
    def spilled(self) -> bool:
        """Whether the bytes went past the memory limit into a temporary file."""
        return self._file is not None

    def write(self, data: bytes) -> None:
        self.size += len(data)
        self._chunks.append(data)
        self._pending += len(data)
        if self._file is None:
            if self.memory_limit is None or self._pending <= self.memory_limit:
                return
            self._file = self._open()
        if self._pending >= min(FLUSH_BYTES, max(self.memory_limit or 0, 1)):
            self._flush()

    def _open(self) -> BinaryIO:
        directory = self.directory or Path(tempfile.gettempdir())
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return tempfile.TemporaryFile(dir=directory, prefix="smtp-data-")

    def _flush(self) -> None:
        assert self._file is not None
        self._file.write(b"".join(self._chunks))
        self._chunks.clear()
        self._pending = 0

    def discard(self) -> None:
        """Drop everything collected so far (a refused message is read on, not kept)."""
        self.close()
        self.size = 0

    async def value(self) -> bytes:
        """All the bytes written, as one ``bytes`` (read back from the file if spilled)."""
        if self._file is None:
            return b"".join(self._chunks)
        self._flush()
        handle = self._file

        def read() -> bytes:
            handle.seek(0, os.SEEK_SET)
            return handle.read()

        return await asyncio.to_thread(read)

    def close(self) -> None:
        """Free memory and delete the temporary file (if any); safe to call twice."""
        self._chunks.clear()
        self._pending = 0
        if self._file is not None:
            self._file.close()
            self._file = None


async def read_data(reader: asyncio.StreamReader, buffer: DataBuffer, *, limit: int,
                    keepalive: Callable[[], None]) -> str | None:
    """Read up to ``<CRLF>.<CRLF>`` into ``buffer`` (unstuffed); the error reply or None.

    Only CRLF ends a line, so ``<LF>.<LF>`` or ``<CRLF>.<LF>`` never ends the data;
    any CR or LF not part of a CRLF refuses the whole message. After the first error
    (line too long, bare CR/LF, over ``limit`` bytes if non-zero) the buffer is emptied
    and the rest is read and discarded, so the session stays in sync. ``keepalive`` is
    called now and then while lines arrive (a slow but live sender keeps the session).
    """
    loop = asyncio.get_running_loop()
    size = 0
    error: str | None = None
    in_long_line = False
    last_reset = loop.time()
    while True:
        try:
            line = await reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError as exc:
            await reader.read(exc.consumed)
            in_long_line = True
            error = error or R_LINE_TOO_LONG
            buffer.discard()
            continue
        now = loop.time()
        if now - last_reset > KEEPALIVE_SECONDS:
            keepalive()
            last_reset = now
        if in_long_line:  # the tail of an over-long line
            in_long_line = False
            continue
        if line == b".\r\n":
            return error
        if error is not None:
            continue
        stuffed = line.startswith(b".")
        if len(line) > MAX_DATA_LINE + stuffed:
            error = R_LINE_TOO_LONG
        elif b"\r" in line[:-2] or b"\n" in line[:-2]:
            error = R_BARE_NEWLINE
        else:
            size += len(line) - stuffed
            if limit and size > limit:
                error = R_TOO_BIG
        if error is not None:
            buffer.discard()
        else:
            buffer.write(line[1:] if stuffed else line)
