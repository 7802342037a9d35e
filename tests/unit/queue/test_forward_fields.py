"""The header fields local delivery reads and rewrites (forwarding caps)."""

from __future__ import annotations

from mailward.queue.loops import count_delivered_to, field_value, without_field


def test_field_helpers_read_and_drop_whole_fields() -> None:
    data = (b"X-Mailward-Forward-Copies: 7\r\nDelivered-To: a@x.example\r\n"
            b"X-Other: 1\r\n folded\r\nDelivered-To: b@x.example\r\n\r\n"
            b"X-Mailward-Forward-Copies: body, kept\r\n")
    assert field_value(data, "x-mailward-forward-copies") == "7"
    assert count_delivered_to(data) == 2
    assert without_field(data, "X-Other") == (
        b"X-Mailward-Forward-Copies: 7\r\nDelivered-To: a@x.example\r\n"
        b"Delivered-To: b@x.example\r\n\r\nX-Mailward-Forward-Copies: body, kept\r\n")
    assert without_field(data, "X-Mailward-Forward-Copies").startswith(b"Delivered-To: a@")
    assert without_field(data, "X-Mailward-Forward-Copies").endswith(b"body, kept\r\n")
