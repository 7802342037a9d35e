"""Message summaries (:class:`~mailward.store.interface.Summary`): made from the bytes at
delivery, packed for keeping next to the message, unpacked when listed.

Packed form: ``S<version> <len envelope> <len bodystructure> <len body> <len references>\\n``
and the four values. A summary of another version (the parser's output changed) unpacks to
``None`` and is made again from the bytes, as one that was never kept.
"""

from __future__ import annotations

import asyncio
import re

from mailward.store.interface import Summary
from mailward.store.mime import Message

#: Bump when the parser's ENVELOPE or BODYSTRUCTURE output changes: kept ones are remade.
SUMMARY_VERSION = 2
#: A message up to this size is summarised on the event loop, a bigger one in a thread.
INLINE_BYTES = 64 * 1024
_HEAD = re.compile(rb"S(\d+) (\d+) (\d+) (\d+) (\d+)\n")


def summarize(data: bytes) -> Summary:
    """The summary of a message (the MIME parser never raises on broken input)."""
    message = Message(data)
    return Summary(
        envelope=message.envelope(),
        bodystructure=message.bodystructure(),
        body=message.bodystructure(extensible=False),
        references=message.references(),
    )


async def summarize_async(data: bytes) -> Summary:
    """:func:`summarize`, in a worker thread for a big message."""
    if len(data) > INLINE_BYTES:
        return await asyncio.to_thread(summarize, data)
    return summarize(data)


def pack(summary: Summary) -> bytes:
    parts = (summary.envelope, summary.bodystructure, summary.body, summary.references)
    head = b"S%d %d %d %d %d\n" % (SUMMARY_VERSION, *(len(p) for p in parts))
    return head + b"".join(parts)


def unpack(packed: bytes | None) -> Summary | None:
    """The summary ``pack`` made; ``None`` if absent, damaged or of another version."""
    if not packed:
        return None
    match = _HEAD.match(packed)
    if match is None or int(match.group(1)) != SUMMARY_VERSION:
        return None
    a, b, c, d = (int(match.group(i)) for i in (2, 3, 4, 5))
    start = match.end()
    if len(packed) != start + a + b + c + d:
        return None
    return Summary(
        envelope=packed[start : start + a],
        bodystructure=packed[start + a : start + a + b],
        body=packed[start + a + b : start + a + b + c],
        references=packed[start + a + b + c :],
    )
