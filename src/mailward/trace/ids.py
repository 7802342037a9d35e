"""Ids of sessions, traces and queued messages."""

from __future__ import annotations

import secrets
import time


def new_id() -> str:
    """A short, time-ordered, unguessable id: 11 hex digits of milliseconds and 10 random
    ones (a queue id, a trace id, an SMTP session id)."""
    return f"{time.time_ns() // 1_000_000:011X}{secrets.token_hex(5).upper()}"
