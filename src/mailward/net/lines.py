"""Reading protocol command lines from an asyncio stream (POP3, IMAP).

Lines longer than the stream's limit are consumed and reported as :data:`OVERLONG`, so a
session can answer with an error and stay in sync instead of failing.
"""

from __future__ import annotations

import asyncio
import contextlib

OVERLONG = b"\0overlong"
"""Returned (by identity) for a line longer than the reader's limit; compare with ``is``."""


async def read_line(reader: asyncio.StreamReader) -> bytes | None:
    """The next line with its line end, :data:`OVERLONG` if too long, ``None`` at EOF."""
    try:
        return await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError:
        return None
    except asyncio.LimitOverrunError as exc:
        consumed = exc.consumed
    while True:  # discard the rest of the overlong line
        await reader.readexactly(consumed)
        try:
            await reader.readuntil(b"\n")
            return OVERLONG
        except asyncio.IncompleteReadError:
            return None
        except asyncio.LimitOverrunError as exc:
            consumed = exc.consumed


async def close_writer(writer: asyncio.StreamWriter, timeout: float | None) -> None:  # noqa: ASYNC109
    """Close a connection, waiting at most ``timeout`` for it to go (never raises)."""
    writer.close()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(timeout):
            await writer.wait_closed()
