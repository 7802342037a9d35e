"""Forwarding-loop detection on raw message bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailward.queue.loops import (
    MAX_HOPS,
    add_delivered_to,
    count_received,
    delivered_to,
    is_loop,
)


def message(*headers: str, body: str = "Hello.\r\n", nl: str = "\r\n") -> bytes:
    head = "".join(h + nl for h in headers)
    return (head + nl + body.replace("\r\n", nl)).encode()


def received(n: int) -> list[str]:
    return [f"Received: from hop{i}.example by hop{i + 1}.example; Fri, 1 Mar 2024" for i in
            range(n)]


def test_max_hops_is_postfix_default() -> None:
    assert MAX_HOPS == 50


# --- count_received ---------------------------------------------------------------------


def test_counts_received_fields_case_insensitively() -> None:
    data = message("Received: from a", "RECEIVED: from b", "received: from c",
                   "Received : from d (obsolete space before colon)", "Subject: x")
    assert count_received(data) == 4


def test_folded_received_fields_count_once() -> None:
    data = message(
        "Received: from a.example (a.example [192.0.2.1])",
        "\tby mx.example (Postfix) with ESMTPS id 123",
        "        for <bob@example.com>; Fri, 1 Mar 2024 12:00:00 +0000",
        "Received: from b.example",
        " by c.example",
        "Subject: folded",
        " Received: not a field, a continuation of Subject",
    )
    assert count_received(data) == 2


def test_received_in_the_body_does_not_count() -> None:
    body = "Received: from body.example\r\nReceived: again\r\n"
    assert count_received(message("Received: from a", "Subject: x", body=body)) == 1


def test_only_the_first_empty_line_ends_the_headers() -> None:
    body = "\r\nReceived: after a second blank line\r\n"
    assert count_received(message("Received: from a", body=body)) == 1
    assert count_received(b"\r\nReceived: no headers at all\r\n") == 0
    assert count_received(b"") == 0


@pytest.mark.parametrize("nl", ["\r\n", "\n"])
def test_lf_and_crlf_line_endings(nl: str) -> None:
    data = message("Received: from a", " by b", "Received: from c", "Subject: x",
                   body="Received: body\r\n", nl=nl)
    assert count_received(data) == 2


def test_headers_without_a_body_or_final_newline() -> None:
    assert count_received(b"Received: from a\r\nReceived: from b") == 2


def test_similar_field_names_do_not_count() -> None:
    data = message("X-Received: from a", "Received-SPF: pass", "ARC-Received: x",
                   "Received: from real")
    assert count_received(data) == 1


def test_non_header_lines_in_the_header_block_are_skipped() -> None:
    data = b"From bob@example Fri Mar  1 12:00:00 2024\r\ngarbage\r\nReceived: x\r\n\r\n"
    assert count_received(data) == 1


# --- delivered_to -----------------------------------------------------------------------


def test_delivered_to_addresses_are_lower_cased() -> None:
    data = message("Delivered-To: Bob@Example.COM", "delivered-to: <alice@example.com>",
                   "DELIVERED-TO:carol@example.com  ", "Subject: x",
                   body="Delivered-To: body@example.com\r\n")
    assert delivered_to(data) == {"bob@example.com", "alice@example.com", "carol@example.com"}


def test_delivered_to_handles_folding_and_8bit() -> None:
    data = (
        "Delivered-To:\r\n jörg@bücher.example\r\nX-Delivered-To: no@example.com\r\n"
        "\r\nbody"
    ).encode() + b"\xff"
    assert delivered_to(data) == {"jörg@bücher.example"}


def test_no_delivered_to() -> None:
    assert delivered_to(message("Subject: x")) == set()
    assert delivered_to(message("Delivered-To:   ")) == set()


# --- is_loop ----------------------------------------------------------------------------


def test_delivered_to_for_the_recipient_is_a_loop_case_insensitively() -> None:
    data = message("Delivered-To: Bob@Example.com", "Received: from a", "Subject: x")
    assert is_loop(data, "bob@example.COM") == "mail forwarding loop for bob@example.COM"
    assert is_loop(data, "<BOB@example.com>") is not None
    assert is_loop(data, "alice@example.com") is None


def test_delivered_to_in_the_body_is_not_a_loop() -> None:
    data = message("Subject: x", body="Delivered-To: bob@example.com\r\n")
    assert is_loop(data, "bob@example.com") is None


def test_exactly_max_hops_is_accepted_one_more_is_a_loop() -> None:
    assert is_loop(message(*received(MAX_HOPS)), "bob@example.com") is None
    reason = is_loop(message(*received(MAX_HOPS + 1)), "bob@example.com")
    assert reason == f"too many hops ({MAX_HOPS + 1} Received headers)"


def test_custom_hop_limit() -> None:
    data = message(*received(3))
    assert is_loop(data, "bob@example.com", max_hops=3) is None
    assert is_loop(data, "bob@example.com", max_hops=2) == "too many hops (3 Received headers)"


def test_folded_received_fields_do_not_inflate_the_hop_count() -> None:
    folded = [f"Received: from hop{i}\r\n\tby next{i}\r\n\tfor <x@y>; date" for i in
              range(MAX_HOPS)]
    assert is_loop(message(*folded), "bob@example.com") is None


def test_body_received_lines_do_not_inflate_the_hop_count() -> None:
    body = "".join(h + "\r\n" for h in received(200))
    assert is_loop(message(*received(MAX_HOPS), body=body), "bob@example.com") is None


# --- add_delivered_to -------------------------------------------------------------------


def test_add_delivered_to_prepends_one_line() -> None:
    data = message("Subject: x")
    out = add_delivered_to(data, "bob@example.com")
    assert out == b"Delivered-To: bob@example.com\r\n" + data
    assert is_loop(out, "BOB@example.com") == "mail forwarding loop for BOB@example.com"
    assert is_loop(out, "alice@example.com") is None


def test_add_delivered_to_keeps_lf_messages_lf() -> None:
    data = message("Subject: x", nl="\n")
    assert add_delivered_to(data, "bob@example.com") == b"Delivered-To: bob@example.com\n" + data


def test_add_delivered_to_utf8_address() -> None:
    out = add_delivered_to(message("Subject: x"), "jörg@bücher.example")
    assert out.startswith("Delivered-To: jörg@bücher.example\r\n".encode())
    assert delivered_to(out) == {"jörg@bücher.example"}


@pytest.mark.parametrize("bad", ["", "bob@example.com\r\nX-Injected: 1", "a\nb", "a\rb"])
def test_add_delivered_to_refuses_line_breaks(bad: str) -> None:
    with pytest.raises(ValueError):
        add_delivered_to(message("Subject: x"), bad)


def test_forwarding_chain_is_caught_on_the_second_visit() -> None:
    data = message(*received(2))
    first = add_delivered_to(data, "list@example.com")
    assert is_loop(first, "alias@example.com") is None
    second = add_delivered_to(first, "alias@example.com")
    assert is_loop(second, "list@example.com") == "mail forwarding loop for list@example.com"


# --- properties -------------------------------------------------------------------------


@given(
    n=st.integers(min_value=0, max_value=120),
    folds=st.lists(st.booleans(), min_size=120, max_size=120),
    body=st.binary(max_size=500),
    crlf=st.booleans(),
)
def test_hop_count_ignores_folding_and_body(
    n: int, folds: list[bool], body: bytes, crlf: bool
) -> None:
    nl = "\r\n" if crlf else "\n"
    fields = [f"Received: from h{i}" + (f"{nl}\tby x{i}" if folds[i] else "") for i in range(n)]
    data = message(*fields, "Subject: s", body="", nl=nl) + b"Received: x\r\n" + body
    assert count_received(data) == n
    assert (is_loop(data, "bob@example.com") is None) == (n <= MAX_HOPS)
