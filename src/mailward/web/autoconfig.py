"""Mail client set-up documents for hosted domains, so clients configure themselves.

- Thunderbird and others (the "autoconfig" clientConfig v1.1 format):
  ``GET /mail/config-v1.1.xml?emailaddress=...`` and
  ``GET /.well-known/autoconfig/mail/config-v1.1.xml``, fetched from
  ``autoconfig.<domain>`` (a CNAME to the hosting host, see ``dns records``);
- Outlook's POX autodiscover: ``POST /autodiscover/autodiscover.xml`` (also under
  ``/Autodiscover/``), found through ``autodiscover.<domain>`` or ``_autodiscover._tcp``.

Only domains with hosting on get an answer (404 otherwise); the answer depends on the
domain alone, so it never tells whether an address exists. The servers given are the
hosting host on the standard ports (993, 995, 465, 587), as the SRV records.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromQuery

from mailward.core.normalize import normalize_domain
from mailward.directory import Actor, ServiceError
from mailward.web.context import context_of

__all__ = ["autoconfig_handlers"]

XML = "application/xml; charset=utf-8"
MAX_REQUEST = 16 * 1024  # an autodiscover request is a few hundred bytes
_REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
_RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
_OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
# (type, port, socket) of each server clients are told about
_INCOMING = (("imap", 993, "SSL"), ("pop3", 995, "SSL"))
_OUTGOING = (("smtp", 465, "SSL"), ("smtp", 587, "STARTTLS"))


async def _hosted_domain(request: Request[Any, Any, Any], email: str | None) -> str:
    """The hosted domain of ``email`` (else of the ``autoconfig.``/``autodiscover.`` host
    the client asked); 404 unless hosting is on for it."""
    if email and "@" in email:
        candidate = email.rsplit("@", 1)[1]
    else:
        host = request.headers.get("host", "").rsplit(":", 1)[0].lower()
        candidate = host.removeprefix("autoconfig.").removeprefix("autodiscover.")
    services = context_of(request).services
    try:
        view = await services.domains.get(Actor.operator("autoconfig"),
                                           normalize_domain(candidate))
    except (ServiceError, ValueError):
        view = None
    if view is None or not view.hosting:
        raise NotFoundException("no mail hosting for this domain here")
    return view.name


def _text(parent: ET.Element, tag: str, text: str) -> ET.Element:
    child = ET.SubElement(parent, tag)
    child.text = text
    return child


def client_config(domain: str, host: str) -> bytes:
    """The clientConfig v1.1 document for ``domain``."""
    root = ET.Element("clientConfig", version="1.1")
    provider = ET.SubElement(root, "emailProvider", id=domain)
    _text(provider, "domain", domain)
    _text(provider, "displayName", f"{domain} mail")
    _text(provider, "displayShortName", domain)
    for tag, servers in (("incomingServer", _INCOMING), ("outgoingServer", _OUTGOING)):
        for kind, port, socket_type in servers:
            server = ET.SubElement(provider, tag, type=kind)
            _text(server, "hostname", host)
            _text(server, "port", str(port))
            _text(server, "socketType", socket_type)
            _text(server, "username", "%EMAILADDRESS%")
            _text(server, "authentication", "password-cleartext")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def autodiscover_response(email: str, host: str) -> bytes:
    """Outlook's POX answer: IMAP, POP3 and SMTP on ``host``, login = the address."""
    root = ET.Element("Autodiscover", xmlns=_RESPONSE_NS)
    response = ET.SubElement(root, "Response", xmlns=_OUTLOOK_NS)
    account = ET.SubElement(response, "Account")
    _text(account, "AccountType", "email")
    _text(account, "Action", "settings")
    for kind, port, socket_type in (*_INCOMING, _OUTGOING[0]):
        protocol = ET.SubElement(account, "Protocol")
        _text(protocol, "Type", kind.upper())
        _text(protocol, "Server", host)
        _text(protocol, "Port", str(port))
        _text(protocol, "LoginName", email)
        _text(protocol, "SPA", "off")
        _text(protocol, "SSL", "on" if socket_type == "SSL" else "off")
        _text(protocol, "AuthRequired", "on")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


@get(["/mail/config-v1.1.xml", "/.well-known/autoconfig/mail/config-v1.1.xml"],
     include_in_schema=False)
async def autoconfig(request: Request[Any, Any, Any],
                     emailaddress: FromQuery[str | None] = None) -> Response[bytes]:
    domain = await _hosted_domain(request, emailaddress)
    body = client_config(domain, context_of(request).settings.hosting_host)
    return Response(body, media_type=XML)


@post(["/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"],
      include_in_schema=False, status_code=200, request_max_body_size=MAX_REQUEST)
async def autodiscover(request: Request[Any, Any, Any]) -> Response[bytes]:
    try:
        tree = ET.fromstring(await request.body())
    except ET.ParseError as exc:
        return Response(f"malformed autodiscover request: {exc}\n".encode(),
                        media_type="text/plain; charset=utf-8", status_code=400)
    found = tree.find(f".//{{{_REQUEST_NS}}}EMailAddress")
    if found is None:
        found = tree.find(".//EMailAddress")
    email = (found.text or "").strip() if found is not None else ""
    if "@" not in email:
        return Response(b"the request names no EMailAddress\n",
                        media_type="text/plain; charset=utf-8", status_code=400)
    await _hosted_domain(request, email)
    body = autodiscover_response(email, context_of(request).settings.hosting_host)
    return Response(body, media_type=XML)


def autoconfig_handlers() -> list[Any]:
    return [autoconfig, autodiscover]
