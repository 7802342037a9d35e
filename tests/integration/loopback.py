"""A loopback address of this test process, for test servers on a fixed port.

Test servers bind port 0 on 127.0.0.1 wherever they can. A few cannot: delivery to a
domain's MX always connects to port 25. Such a server listens on ``own_loopback()``, an
address of 127.0.0.0/8 made from the process id, so that parallel pytest workers (and
other pytest runs on the machine) never meet on the same address and port.
"""

from __future__ import annotations

import os


def own_loopback() -> str:
    """``127.A.B.C`` unique to this process among those running (1 <= A, so never 127.0.0.x)."""
    pid = os.getpid()
    return f"127.{1 + (pid >> 16)}.{(pid >> 8) & 0xFF}.{pid & 0xFF}"
