"""Request and response bodies of the JSON API (msgspec structs; they define the OpenAPI).

Single objects are answered with the directory's own views (dataclasses); the structs here
are only the shapes the views lack. Requests reject unknown fields, so a typo such as
``"pasword"`` is an error, not a no-op.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import msgspec
from litestar.openapi import ResponseSpec

from mailward.core.paging import to_json
from mailward.db.models import AddressKind, AddressList, Role
from mailward.directory.bulk_add import LineResult
from mailward.directory.views import AddressView

S = TypeVar("S")

Destinations = str | list[str]
"""Forward targets: a comma-separated string or a JSON list of addresses."""


class Request(msgspec.Struct, forbid_unknown_fields=True):
    """Base of request bodies."""


# -- requests ----------------------------------------------------------------------------


class TokenRequest(Request):
    login: str
    password: str
    name: str = "api"
    code: str | None = None  # the current two-factor code, for users who turned it on
    expires_days: int | None = None  # the token stops working after this many days


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


class DomainVerify(Request):
    """``operator``: mark the domain verified without DNS proof (operators only)."""

    operator: bool = False


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


class UserPasswordChange(Request):
    """A user's new password; ``current`` is required for one's own."""

    password: str
    password_repeat: str
    current: str | None = None


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
# Single objects are the directory's own views; only shapes the views lack are defined here.


class ErrorOut(msgspec.Struct):
    error: str


class MeOut(msgspec.Struct):
    role: Role
    login: str
    account_id: int | None
    account: str | None


class DomainDeleted(msgspec.Struct):
    deleted: str
    addresses_deleted: int


class AddressPage(msgspec.Struct):
    items: list[AddressView]
    total: int
    page: int
    per_page: int
    pages: int


class AddInvalid(msgspec.Struct):
    """422 body of ``POST /addresses``: the reason, and the line result it came from."""

    error: str
    result: LineResult


class BulkOut(msgspec.Struct):
    list_: AddressList = msgspec.field(name="list")
    counts: dict[str, int]
    results: list[LineResult]


class DeletedOut(msgspec.Struct):
    deleted: int
    addresses: list[str] | None = None


def out(view: Any, struct: type[S]) -> S:
    """A directory view as response ``struct`` (the view itself when it is one)."""
    if isinstance(view, struct):
        return view
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


class ServerCreate(Request):
    server: str
    preference: int
    port: int | None = None


class ServerPatch(Request):
    host: str | None = None
    port: int | None = None
    preference: int | None = None
