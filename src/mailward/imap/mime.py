"""The MIME parser behind FETCH: :mod:`mailward.store.mime` (the store keeps its ENVELOPE
and BODYSTRUCTURE per message from delivery on, so the parser lives there)."""

from __future__ import annotations

from mailward.store.mime import (
    MAX_DEPTH,
    MAX_PARTS,
    Message,
    _Parser,
    _Part,
    bodystructure,
    envelope,
    parse,
    section,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_PARTS",
    "Message",
    "_Parser",
    "_Part",
    "bodystructure",
    "envelope",
    "parse",
    "section",
]
