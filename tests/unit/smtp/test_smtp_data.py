"""The DATA buffer: in memory up to its limit, then an anonymous file that goes away."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from mailward.smtp.data import DataBuffer


def files_open_under(directory: Path) -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(f"{directory}/"):
            found.append(target)
    return found


async def test_small_data_stays_in_memory(tmp_path: Path) -> None:
    buffer = DataBuffer(100, tmp_path / "tmp")
    buffer.write(b"Subject: hi\r\n")
    assert not buffer.spilled and await buffer.value() == b"Subject: hi\r\n"
    assert not (tmp_path / "tmp").exists()


async def test_data_past_the_limit_spills_and_the_file_goes_away(tmp_path: Path) -> None:
    spill = tmp_path / "tmp"
    buffer = DataBuffer(10, spill)
    lines = [b"line %d\r\n" % n for n in range(20_000)]
    for line in lines:
        buffer.write(line)
    assert buffer.spilled and len(files_open_under(spill)) == 1
    assert os.listdir(spill) == []  # never a name in the directory
    assert await buffer.value() == b"".join(lines)
    buffer.close()
    buffer.close()
    assert files_open_under(spill) == []


async def test_discard_drops_a_spilled_message(tmp_path: Path) -> None:
    buffer = DataBuffer(0, tmp_path)
    buffer.write(b"x" * 100)
    buffer.discard()
    assert files_open_under(tmp_path) == [] and buffer.size == 0


@given(st.lists(st.binary(max_size=300), max_size=40), st.integers(0, 2000))
def test_value_is_what_was_written_whatever_the_limit(chunks: list[bytes], limit: int) -> None:
    buffer = DataBuffer(limit)
    for chunk in chunks:
        buffer.write(chunk)
    try:
        assert asyncio.run(buffer.value()) == b"".join(chunks)
    finally:
        buffer.close()
