"""Serializers for IMAP response values: :mod:`mailward.store.imap_values`."""

from __future__ import annotations

from mailward.store.imap_values import NIL, human_string, imap_list, imap_string, nstring

__all__ = ["NIL", "human_string", "imap_list", "imap_string", "nstring"]
