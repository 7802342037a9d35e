"""The JSON API under ``/api/v1``: every route but ``POST /auth/token`` needs a bearer token."""

from __future__ import annotations

from litestar import Router

from mailward.web.api.accounts import AccountController
from mailward.web.api.address_edit import AddressEditController
from mailward.web.api.addresses import AddressController
from mailward.web.api.audit import AuditController
from mailward.web.api.auth import issue_token, me
from mailward.web.api.dns import DnsLookupController, DnsRecordsController, DnsStatusController
from mailward.web.api.domains import DomainController
from mailward.web.api.filter import AddressFilterController, DomainFilterController
from mailward.web.api.quarantine import QuarantineController
from mailward.web.api.queue import QueueController
from mailward.web.api.servers import ServerController
from mailward.web.api.tokens import TokenController
from mailward.web.api.trace import DashboardController, TraceController
from mailward.web.api.users import UserController
from mailward.web.context import require_token

API_PATH = "/api/v1"
BEARER = "BearerToken"


def api_routers() -> list[Router]:
    """The public login route and the token-protected rest, both under ``API_PATH``."""
    public = Router(path=API_PATH, route_handlers=[issue_token])
    protected = Router(
        path=API_PATH,
        route_handlers=[
            me,
            TokenController,
            AccountController,
            UserController,
            DomainController,
            ServerController,
            AddressController,
            AddressEditController,
            QueueController,
            DomainFilterController,
            AddressFilterController,
            QuarantineController,
            AuditController,
            DnsLookupController,
            DnsRecordsController,
            DnsStatusController,
            TraceController,
            DashboardController,
        ],
        guards=[require_token],
        security=[{BEARER: []}],
    )
    return [public, protected]
