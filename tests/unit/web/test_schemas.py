"""Request and response bodies of the JSON API."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from mailward.db.models import AddressKind, AddressList
from mailward.directory.bulk_add import LineResult, LineStatus
from mailward.directory.views import AccountView, AddressView
from mailward.web.api import schemas


def test_views_are_the_response_bodies() -> None:
    view = AddressView(
        "a@b.example",
        "b.example",
        AddressList.NO_FILTER,
        AddressKind.AUTOCC,
        ["c@d.example"],
        None,
        5,
        False,
    )
    assert schemas.out(view, schemas.AddressView) is view
    assert msgspec.json.decode(msgspec.json.encode(view))["list"] == "no-filter"
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    page = schemas.out(
        {"items": [view], "total": 1, "page": 1, "per_page": 50, "pages": 1}, schemas.AddressPage
    )
    assert page.items[0].kind is AddressKind.AUTOCC
    encoded = msgspec.json.decode(msgspec.json.encode(AccountView(1, "Acme", when)))
    assert encoded == {"id": 1, "name": "Acme", "created_at": "2026-01-02T03:04:05Z"}
    line = LineResult(3, "x@y.example", LineStatus.INVALID, reason="no")
    assert msgspec.json.decode(msgspec.json.encode(line))["status"] == "invalid"


def test_destinations_accept_a_list_or_a_string() -> None:
    assert schemas.joined(["a@x.example", "b@x.example"]) == "a@x.example,b@x.example"
    assert schemas.joined("a@x.example, b@x.example") == "a@x.example, b@x.example"


def test_requests_reject_unknown_fields() -> None:
    with pytest.raises(msgspec.ValidationError, match="pasword"):
        msgspec.json.decode(
            b'{"password": "x", "pasword": "x", "password_repeat": "x"}',
            type=schemas.PasswordChange,
        )
