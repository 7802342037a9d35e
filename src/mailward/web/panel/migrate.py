"""Mail migration in the panel (``/panel/accounts/A/migrations``): the account's jobs with
their progress, a form queuing one (a mailbox, the old server, its login and password),
a job's per-folder progress, and cancelling. The mailbox page links here with
``?mailbox=E``. Account admins see their own account's jobs only (``scoped``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from mailward.core.errors import InvalidInput, ServiceError
from mailward.migrate import CredentialBox, MigrationService, Source
from mailward.migrate.source import TLS_MODES
from mailward.web.errors import http_status
from mailward.web.panel.common import Form, account_url, page, redirect, scoped, web_of

__all__ = ["HANDLERS"]

FormData = Annotated[dict[str, Any], Form]
DEFAULT_PORTS = {"ssl": 993, "starttls": 143, "none": 143}


def service_of(request: Request[Any, Any, Any]) -> MigrationService:
    """The jobs' service: ``services.migrations`` once the app builds one, else one here."""
    services = web_of(request).services
    found = getattr(services, "migrations", None)
    if isinstance(found, MigrationService):
        return found
    return MigrationService(services.db, CredentialBox.of(web_of(request).settings),
                            services.addresses)


def _one(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if isinstance(value, list):
        value = value[0] if value else ""
    return value.strip() if isinstance(value, str) else ""


def _source(data: Mapping[str, Any]) -> Source:
    tls = _one(data, "tls") or "ssl"
    if tls not in TLS_MODES:
        raise InvalidInput(f"TLS mode must be one of {', '.join(TLS_MODES)}")
    port_text = _one(data, "port")
    if port_text and not port_text.isdigit():
        raise InvalidInput("the port is a number")
    port = int(port_text) if port_text else DEFAULT_PORTS[tls]
    password = data.get("password")
    password = password if isinstance(password, str) else ""  # exactly as typed
    return Source(_one(data, "host"), port, tls, _one(data, "login") or _one(data, "mailbox"),
                  password)


async def _list(request: Request[Any, Any, Any], account: str, *, mailbox: str = "",
                status: int = 200, error: str | None = None,
                form: Mapping[str, Any] | None = None) -> Template:
    view, actor = await scoped(request, account)
    jobs = await service_of(request).list(actor, mailbox=mailbox or None)
    entered = {key: _one(form or {}, key) for key in ("mailbox", "host", "port", "tls", "login")}
    entered["mailbox"] = entered["mailbox"] or mailbox
    return page(request, "migrate.html", status=status, account=view,
                account_base=account_url(view.name), jobs=jobs, mailbox=mailbox, error=error,
                form=entered, tls_modes=TLS_MODES)


@get("/accounts/{account:str}/migrations", include_in_schema=False)
async def jobs_page(request: Request[Any, Any, Any], account: FromPath[str],
                    mailbox: FromQuery[str] = "") -> Template:
    return await _list(request, account, mailbox=mailbox.strip())


@post("/accounts/{account:str}/migrations", include_in_schema=False)
async def add_job(request: Request[Any, Any, Any], account: FromPath[str],
                  data: FormData) -> Template | Redirect:
    view, actor = await scoped(request, account)
    try:
        job = await service_of(request).add(actor, _one(data, "mailbox"), _source(data))
    except ServiceError as exc:
        return await _list(request, account, status=http_status(exc), error=str(exc), form=data)
    return redirect(request, account_url(view.name, "migrations", str(job.id)),
                    f"migration of {job.mailbox} queued")


@get("/accounts/{account:str}/migrations/{job_id:int}", include_in_schema=False)
async def job_page(request: Request[Any, Any, Any], account: FromPath[str],
                   job_id: FromPath[int]) -> Template:
    view, actor = await scoped(request, account)
    job = await service_of(request).get(actor, job_id)
    return page(request, "migrate.html", account=view, account_base=account_url(view.name),
                job=job, jobs=None, mailbox=job.mailbox, error=None, form={},
                tls_modes=TLS_MODES)


@post("/accounts/{account:str}/migrations/{job_id:int}/cancel", include_in_schema=False)
async def cancel_job(request: Request[Any, Any, Any], account: FromPath[str],
                     job_id: FromPath[int]) -> Redirect:
    view, actor = await scoped(request, account)
    job = await service_of(request).cancel(actor, job_id)
    return redirect(request, account_url(view.name, "migrations", str(job.id)),
                    f"migration job {job.id} cancelled")


HANDLERS = [jobs_page, add_job, job_page, cancel_job]
