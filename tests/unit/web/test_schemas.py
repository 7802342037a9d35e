"""The API's response structs mirror the directory's views field for field."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import msgspec
import pytest

from mailward.db.models import AddressKind, AddressList
from mailward.directory.bulk_add import LineResult, LineStatus
from mailward.directory.views import AccountView, AddressView, DomainView, TokenView, UserView
from mailward.web.api import schemas


def encoded_fields(struct: type[msgspec.Struct]) -> list[str]:
    return [field.encode_name for field in msgspec.structs.fields(struct)]


@pytest.mark.parametrize(
    ("view", "struct"),
    [
        (AccountView, schemas.AccountOut),
        (UserView, schemas.UserOut),
        (TokenView, schemas.TokenOut),
        (DomainView, schemas.DomainOut),
        (AddressView, schemas.AddressOut),
        (LineResult, schemas.LineResultOut),
    ],
)
def test_struct_matches_view(view: type, struct: type[msgspec.Struct]) -> None:
    assert encoded_fields(struct) == [field.name for field in dataclasses.fields(view)]


def test_out_converts_enums_and_datetimes() -> None:
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
    converted = schemas.out(view, schemas.AddressOut)
    assert (converted.list_, converted.kind) == (AddressList.NO_FILTER, AddressKind.AUTOCC)
    assert msgspec.json.decode(msgspec.json.encode(converted))["list"] == "no-filter"
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert schemas.out(AccountView(1, "Acme", when), schemas.AccountOut).created_at == when
    line = LineResult(3, "x@y.example", LineStatus.INVALID, reason="no")
    assert schemas.out(line, schemas.LineResultOut).status is LineStatus.INVALID


def test_destinations_accept_a_list_or_a_string() -> None:
    assert schemas.joined(["a@x.example", "b@x.example"]) == "a@x.example,b@x.example"
    assert schemas.joined("a@x.example, b@x.example") == "a@x.example, b@x.example"


def test_requests_reject_unknown_fields() -> None:
    with pytest.raises(msgspec.ValidationError, match="pasword"):
        msgspec.json.decode(
            b'{"password": "x", "pasword": "x", "password_repeat": "x"}',
            type=schemas.PasswordChange,
        )
