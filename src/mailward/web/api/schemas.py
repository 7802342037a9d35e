"""Request and response bodies of the JSON API (msgspec structs; they define the OpenAPI).

Responses mirror the directory's view dataclasses field for field (``out`` converts);
requests reject unknown fields so a typo such as ``"pasword"`` is an error, not a no-op.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, TypeVar

import msgspec
from litestar.openapi import ResponseSpec

from mailward.db.models import AddressKind, AddressList, Role
from mailward.directory.bulk_add import LineStatus
from mailward.directory.views import to_json

S = TypeVar("S", bound=msgspec.Struct)

Destinations = str | list[str]
"""Forward targets: a comma-separated string or a JSON list of addresses."""


class Request(msgspec.Struct, forbid_unknown_fields=True):
    """Base of request bodies."""


# -- requests ----------------------------------------------------------------------------


class TokenRequest(Request):
    login: str
    password: str
    name: str = "api"


class AccountCreate(Request):
    name: str


class UserCreate(Request):
    login: str
    password: str


class DomainCreate(Request):
    name: str
    account: str
    hosting: bool = False


class DomainPatch(Request):
    hosting: bool


class AddressCreate(Request):
    address: str
    list_: AddressList = msgspec.field(name="list")
    password: str | None = None
    destinations: Destinations | None = None


class BulkAdd(Request):
    list_: AddressList = msgspec.field(name="list")
    text: str


class AddressSetup(Request):
    kind: Literal["mailbox", "forwarder"]
    password: str | None = None
    password_repeat: str | None = None
    destinations: Destinations | None = None


class PasswordChange(Request):
    password: str
    password_repeat: str


class DestinationsChange(Request):
    destinations: Destinations


class ListChange(Request):
    list_: AddressList = msgspec.field(name="list")


class AddressDelete(Request):
    """Either ``addresses``, or search criteria together with ``"all": true``."""

    addresses: list[str] | None = None
    search: str = ""
    domain: str | None = None
    list_: AddressList | None = msgspec.field(default=None, name="list")
    kind: AddressKind | None = None
    all: bool = False


# -- responses ---------------------------------------------------------------------------


class ErrorOut(msgspec.Struct):
    error: str


class MeOut(msgspec.Struct):
    role: Role
    login: str
    account_id: int | None
    account: str | None


class AccountOut(msgspec.Struct):
    id: int
    name: str
    created_at: datetime


class UserOut(msgspec.Struct):
    id: int
    login: str
    role: str
    account: str | None


class TokenOut(msgspec.Struct):
    id: int
    name: str
    login: str
    token: str


class DomainOut(msgspec.Struct):
    name: str
    display_name: str
    account: str
    hosting: bool
    created_at: datetime


class DomainDeleted(msgspec.Struct):
    deleted: str
    addresses_deleted: int


class AddressOut(msgspec.Struct):
    email: str
    domain: str
    list_: AddressList = msgspec.field(name="list")
    kind: AddressKind
    destinations: list[str]
    quota_bytes: int | None
    used_bytes: int
    needs_setup: bool


class AddressPage(msgspec.Struct):
    items: list[AddressOut]
    total: int
    page: int
    per_page: int
    pages: int


class LineResultOut(msgspec.Struct):
    line: int
    input: str
    status: LineStatus
    address: str | None = None
    kind: AddressKind | None = None
    reason: str | None = None
    warning: str | None = None


class AddInvalid(msgspec.Struct):
    """422 body of ``POST /addresses``: the reason, and the line result it came from."""

    error: str
    result: LineResultOut


class BulkOut(msgspec.Struct):
    list_: AddressList = msgspec.field(name="list")
    counts: dict[str, int]
    results: list[LineResultOut]


class DeletedOut(msgspec.Struct):
    deleted: int
    addresses: list[str] | None = None


def out(view: Any, struct: type[S]) -> S:
    """Convert a directory view (dataclass) into its response struct."""
    return msgspec.convert(to_json(view), struct)


def joined(destinations: Destinations) -> str:
    """The comma-separated form the directory services take."""
    if isinstance(destinations, str):
        return destinations
    return ",".join(destinations)


_WHY = {
    400: "invalid input (the message says which field or rule)",
    401: "missing or unknown bearer token",
    403: "only an operator may do this",
    404: "no such object in your account",
    409: "conflicts with existing data or the object's state",
    422: "the address was refused (reason given)",
    429: "too many failed logins (see Retry-After)",
}


def errors(*codes: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the error answers a handler may give (all ``ErrorOut``)."""
    return {
        code: ResponseSpec(data_container=ErrorOut, description=_WHY[code])
        for code in (400, 401, *codes)
    }
