"""Email Hosting (docs/procedures.md): the account's domains → Domain Details → Mail
Server Settings (list, add, edit, delete, Auto-Configure with confirmation), the domain's
catch-all (with its spam warning) and alias domains, and each domain's DNS page (the
check's checklist and the records to publish)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from mailward.core.errors import InvalidInput, NotFound
from mailward.directory import ServiceError
from mailward.directory.aliases import CATCH_ALL_WARNING, AliasService
from mailward.dns.service import domain_check, domain_records
from mailward.dns.verify import find_proof, verify_domain
from mailward.web.errors import http_status
from mailward.web.panel.common import (
    Form,
    account_url,
    page,
    redirect,
    scoped,
    user_of,
    web_of,
)

MAX_FORM = 16 * 1024
FormData = Annotated[dict[str, str], Form]


@get("/accounts/{account:str}/hosting", include_in_schema=False)
async def hosting(request: Request[Any, Any, Any], account: FromPath[str]) -> Template | Redirect:
    """The account's domains; with only one, straight to its Domain Details."""
    view, actor = await scoped(request, account)
    domains = await web_of(request).services.domains.list(actor)
    base = account_url(view.name)
    if len(domains) == 1:
        return Redirect(f"{base}domains/{domains[0].name}", status_code=303)
    return page(request, "hosting.html", account=view, account_base=base, domains=domains)


async def _details(
    request: Request[Any, Any, Any],
    account: FromPath[str],
    domain: FromPath[str],
    template: str,
    *,
    status: int = 200,
    **context: Any,
) -> Template:
    view, actor = await scoped(request, account)
    web = web_of(request)
    found = await web.services.domains.get(actor, domain)  # 404 unless theirs
    servers = await web.services.servers.list(actor, found.name)
    aliases = AliasService(web.services.db)
    catch_all = await aliases.catch_all(actor, found.name)
    return page(
        request,
        template,
        status=status,
        account=view,
        account_base=account_url(view.name),
        domain=found,
        servers=servers,
        hosting_host=web.settings.hosting_host,
        catch_all=catch_all,
        catch_all_warning=CATCH_ALL_WARNING,
        aliases=await aliases.aliases(actor, found.name),
        **context,
    )


@get("/accounts/{account:str}/domains/{domain:str}", include_in_schema=False)
async def details(
    request: Request[Any, Any, Any], account: FromPath[str], domain: FromPath[str]
) -> Template:
    return await _details(request, account, domain, "domain.html")


@post(
    "/accounts/{account:str}/domains/{domain:str}/verify",
    include_in_schema=False,
    request_max_body_size=MAX_FORM,
)
async def verify(
    request: Request[Any, Any, Any], account: FromPath[str], domain: FromPath[str],
    data: FormData,
) -> Template | Redirect:
    """Check DNS now for the domain's proof of control (``operator=yes``: mark it verified,
    operators only)."""
    view, actor = await scoped(request, account)
    web = web_of(request)
    here = f"{account_url(view.name)}domains/{domain}"
    operator = data.get("operator") == "yes"
    try:
        if operator and user_of(request).is_operator:  # vouches as the operator it is
            await web.services.domains.get(actor, domain)  # 404 unless this account's
            actor = user_of(request).actor
        result = await verify_domain(web.services.directory, web.settings, actor, domain,
                                     operator=operator)
    except ServiceError as exc:
        if http_status(exc) == 404:
            raise
        return await _details(request, account, domain, "domain.html", status=http_status(exc),
                              verify_error=str(exc))
    if result.verified:
        return redirect(request, here, f"{result.domain.name} is verified ({result.detail})")
    return await _details(request, account, domain, "domain.html", status=422,
                          verify_error=result.detail)


@get("/accounts/{account:str}/domains/{domain:str}/servers", include_in_schema=False)
async def servers(
    request: Request[Any, Any, Any], account: FromPath[str], domain: FromPath[str]
) -> Template:
    return await _details(request, account, domain, "servers.html", error=None, form="")


@post(
    "/accounts/{account:str}/domains/{domain:str}/servers/{action:str}",
    include_in_schema=False,
    request_max_body_size=MAX_FORM,
)
async def change_servers(
    request: Request[Any, Any, Any],
    account: FromPath[str],
    domain: FromPath[str],
    action: FromPath[str],
    data: FormData,
) -> Template | Redirect:
    """``add``, ``edit``, ``delete`` (asks first), ``auto-configure`` (asks first)."""
    view, actor = await scoped(request, account)
    service = web_of(request).services.servers
    here = f"{account_url(view.name)}domains/{domain}/servers"
    confirmed = data.get("confirm") == "yes"
    try:
        if action == "add":
            added = await service.add(
                actor,
                domain,
                data.get("host", ""),
                preference=data.get("preference", ""),
                port=data.get("port") or None,
            )
            return redirect(request, here, f"{added.address} added (preference {added.preference})")
        if action == "edit":
            edited = await service.edit(
                actor,
                domain,
                data.get("server", ""),
                host=data.get("host") or None,
                preference=data.get("preference") or None,
                port=data.get("port") or None,
            )
            return redirect(
                request, here, f"{edited.address} saved (preference {edited.preference})"
            )
        if action in ("delete", "auto-configure") and not confirmed:
            return await _details(
                request,
                account,
                domain,
                "confirm_servers.html",
                action=action,
                server=data.get("server", ""),
            )
        if action == "delete":
            gone = await service.delete(actor, domain, data.get("server", ""))
            return redirect(request, here, f"{gone.address} deleted")
        if action == "auto-configure":
            await service.auto_configure_hosting(actor, domain)
            return await _details(request, account, domain, "hosting_done.html")
    except ServiceError as exc:
        if http_status(exc) == 404:
            raise
        return await _details(
            request, account, domain, "servers.html", status=http_status(exc), error=str(exc),
            form=action
        )
    return await _details(
        request,
        account,
        domain,
        "servers.html",
        status=404,
        error=f"unknown action {action!r}",
        form="",
    )


@get("/accounts/{account:str}/domains/{domain:str}/dns", include_in_schema=False)
async def dns(
    request: Request[Any, Any, Any], account: FromPath[str], domain: FromPath[str]
) -> Template:
    """The records to publish, and the check of what is published (asks DNS now)."""
    view, actor = await scoped(request, account)
    web = web_of(request)
    records = await domain_records(web.services.directory, web.settings, actor, domain)
    check = await domain_check(web.services.directory, web.settings, actor, domain)
    return page(
        request,
        "dns.html",
        account=view,
        account_base=account_url(view.name),
        domain=await web.services.domains.get(actor, domain),
        records=records,
        check=check,
    )


@post(
    "/accounts/{account:str}/domains/{domain:str}/catch-all",
    include_in_schema=False,
    request_max_body_size=MAX_FORM,
)
async def change_catch_all(
    request: Request[Any, Any, Any], account: FromPath[str], domain: FromPath[str],
    data: FormData,
) -> Template | Redirect:
    """Set the catch-all (``address``) or turn it off (``off=yes``)."""
    view, actor = await scoped(request, account)
    here = f"{account_url(view.name)}domains/{domain}"
    address = None if data.get("off") == "yes" else (data.get("address") or "").strip()
    try:
        if address == "":
            raise InvalidInput("give the address that receives the domain's unlisted names")
        done = await AliasService(web_of(request).services.db).set_catch_all(
            actor, domain, address)
    except ServiceError as exc:
        if http_status(exc) == 404:
            raise
        return await _details(request, account, domain, "domain.html", status=http_status(exc),
                              catch_all_error=str(exc))
    return redirect(request, here, f"catch-all of {done.domain}: {done.address}"
                    if done.address else f"catch-all of {done.domain} is off")


@post(
    "/accounts/{account:str}/domains/{domain:str}/aliases",
    include_in_schema=False,
    request_max_body_size=MAX_FORM,
)
async def change_aliases(
    request: Request[Any, Any, Any], account: FromPath[str], domain: FromPath[str],
    data: FormData,
) -> Template | Redirect:
    """``action``: ``add`` (``alias``), ``verify`` or ``delete`` (``alias`` of this domain)."""
    view, actor = await scoped(request, account)
    web = web_of(request)
    aliases = AliasService(web.services.db)
    here = f"{account_url(view.name)}domains/{domain}"
    action, alias = data.get("action", ""), data.get("alias", "")
    try:
        found = await web.services.domains.get(actor, domain)  # 404 unless theirs
        if action == "add":
            added = await aliases.add_alias(actor, found.name, alias)
            return redirect(request, here, f"alias {added.alias} added"
                            + ("" if added.verified else ": publish its TXT record, then check"))
        current = await aliases.get_alias(actor, alias)
        if current.domain != found.name:
            raise NotFound(f"no alias {current.alias} of {found.name}")
        if action == "delete":
            await aliases.remove_alias(actor, current.alias)
            return redirect(request, here, f"alias {current.alias} removed")
        if action != "verify":
            raise InvalidInput(f"unknown action {action!r}")
        settings = web.settings
        result = await aliases.verify_alias(actor, current.alias,
                                            lambda v: find_proof(settings, v))
    except ServiceError as exc:
        if http_status(exc) == 404 and action != "delete" and action != "verify":
            raise
        return await _details(request, account, domain, "domain.html", status=http_status(exc),
                              alias_error=str(exc))
    if result.verified:
        return redirect(request, here, f"{result.alias.alias} is verified ({result.detail})")
    return await _details(request, account, domain, "domain.html", status=422,
                          alias_error=result.detail)


HANDLERS = [hosting, details, verify, servers, change_servers, dns, change_catch_all,
            change_aliases]
