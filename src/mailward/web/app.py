"""The Litestar application: panel pages, webmail, JSON API, OpenAPI document, error
handling."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from litestar import Litestar
from litestar.datastructures import ResponseHeader, State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.flash import FlashConfig, FlashPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig

from mailward.app import Services
from mailward.config import Settings
from mailward.directory.auth_limit import AuthLimiter
from mailward.store import MailStore, open_store
from mailward.web import dnstools, quarantine_links
from mailward.web.api import API_PATH, BEARER, api_routers
from mailward.web.autoconfig import autoconfig_handlers
from mailward.web.context import DEPENDENCIES, STATE_KEY, WebContext
from mailward.web.dnstools import tools_router
from mailward.web.errors import EXCEPTION_HANDLERS
from mailward.web.health import healthz, readyz
from mailward.web.home import index
from mailward.web.login import IP_PREFIX
from mailward.web.panel import panel_handlers
from mailward.web.quarantine_links import quarantine_router
from mailward.web.sessions import (
    MAIL_SESSION_NAMESPACE,
    MAIL_SESSION_STORE,
    SESSION_STORE,
    DatabaseStore,
    csrf_config,
    session_config,
)
from mailward.web.webmail import mail_routers
from mailward.webmail import Webmail

TEMPLATES = Path(__file__).parent / "templates"
# Every page: no framing (clickjacking), no inline script or style, nothing from elsewhere
# (the QR code of the two-factor page is a data: image), no MIME sniffing.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
STATIC = Path(__file__).parent / "static"
OPENAPI_PATH = f"{API_PATH}/openapi.json"


def _version() -> str:
    try:
        return version("mailward")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0"


def openapi_config() -> OpenAPIConfig:
    """The OpenAPI 3.1 document, served at ``OPENAPI_PATH``."""
    return OpenAPIConfig(
        title="mailward API",
        version=_version(),
        description="Accounts, domains and addresses of the mailward email platform.",
        # Mounted at the document itself (not at /api/v1) so that Litestar's catch-all for
        # unknown schema pages does not answer HTML for unknown /api/v1/<x> paths.
        path=OPENAPI_PATH,
        render_plugins=[JsonRenderPlugin(path="/")],
        components=Components(
            security_schemes={
                BEARER: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="A token from POST /api/v1/auth/token",
                )
            }
        ),
    )


def create_app(services: Services, settings: Settings,
               store: MailStore | None = None) -> Litestar:
    """Build the web app over ``services``; the webmail reads and writes ``store`` (the
    configured one, without change notices, when not given: the web role passes one that
    tells IMAP IDLE sessions and the webmail's live updates about changes).

    Panel and API logins count failures per login (``auth_failures_per_window``, the
    directory's limit, which an admin's unlock clears) and per client address with its
    own, much higher limit (``auth_ip_failures_per_window``): an office behind one NAT is
    not locked out by a few bad guesses against one of its users."""
    limiter = AuthLimiter(services.db, settings.auth_failures_per_window,
                          settings.auth_window_seconds,
                          prefix_limits={IP_PREFIX: settings.auth_ip_failures_per_window})
    templates = TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine)
    webmail = Webmail(services, store if store is not None else open_store(settings, services.db))
    return Litestar(
        route_handlers=[
            index,
            healthz,
            readyz,
            *panel_handlers(),
            tools_router(),
            quarantine_router(),
            *autoconfig_handlers(),
            *mail_routers(settings),
            create_static_files_router(path="/static", directories=[STATIC],
                                       include_in_schema=False),
            *api_routers(),
        ],
        dependencies=DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=openapi_config(),
        template_config=templates,
        middleware=[session_config(settings).middleware],
        csrf_config=csrf_config(settings),
        # in the database, so every web node shares sessions and the public pages' limits
        stores={SESSION_STORE: DatabaseStore(services.db),
                MAIL_SESSION_STORE: DatabaseStore(services.db, MAIL_SESSION_NAMESPACE),
                **{name: DatabaseStore(services.db, f"{name}:") for name in (
                    dnstools.RATE_LIMIT_STORE, quarantine_links.RATE_LIMIT_STORE)}},
        plugins=[FlashPlugin(FlashConfig(template_config=templates))],
        state=State({STATE_KEY: WebContext(services, settings, limiter, webmail)}),
        response_headers=[ResponseHeader(name=k, value=v) for k, v in SECURITY_HEADERS.items()],
        logging_config=None,  # the process (``mailward serve``) owns logging, not the app
    )
