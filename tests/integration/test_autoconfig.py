"""Mail client self-configuration over a real socket: Thunderbird's autoconfig document and
Outlook's autodiscover answer for hosted domains only, from the address or the Host."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx
from api_server import Tenants

from mailward.app import Services
from mailward.config import Settings
from mailward.directory import Actor

RESPONSE = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"
REQUEST = """<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>{email}</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>"""


def servers(document: str) -> list[tuple[str, str, str, str, str, str]]:
    root = ET.fromstring(document)
    return [(s.tag, s.get("type", ""), s.findtext("hostname", ""), s.findtext("port", ""),
             s.findtext("socketType", ""), s.findtext("username", ""))
            for s in root.iter() if s.tag in ("incomingServer", "outgoingServer")]


async def test_autoconfig_for_a_hosted_domain(client: httpx.AsyncClient, customers: Tenants,
                                              settings: Settings, directory: Services) -> None:
    host = settings.hosting_host
    expected = [
        ("incomingServer", "imap", host, "993", "SSL", "%EMAILADDRESS%"),
        ("incomingServer", "pop3", host, "995", "SSL", "%EMAILADDRESS%"),
        ("outgoingServer", "smtp", host, "465", "SSL", "%EMAILADDRESS%"),
        ("outgoingServer", "smtp", host, "587", "STARTTLS", "%EMAILADDRESS%"),
    ]
    by_address = await client.get("/mail/config-v1.1.xml",
                                  params={"emailaddress": "anyone@acme.example"})
    assert by_address.status_code == 200
    assert by_address.headers["content-type"].startswith("application/xml")
    assert servers(by_address.text) == expected
    root = ET.fromstring(by_address.text)
    assert root.find("emailProvider").get("id") == "acme.example"  # type: ignore[union-attr]
    # the same for a well-known URL, asked of autoconfig.<domain> (the CNAME we publish)
    by_host = await client.get("/.well-known/autoconfig/mail/config-v1.1.xml",
                               headers={"Host": "autoconfig.acme.example"})
    assert servers(by_host.text) == expected

    await directory.domains.set_hosting(Actor.operator(), "globex.example", False)
    for params in ({"emailaddress": "bob@globex.example"},  # hosting off
                   {"emailaddress": "who@unknown.example"},  # not ours
                   {"emailaddress": "x@not a domain"}, {}):
        found = await client.get("/mail/config-v1.1.xml", params=params)
        assert found.status_code == 404, params


async def test_outlook_autodiscover(client: httpx.AsyncClient, customers: Tenants,
                                    settings: Settings) -> None:
    answer = await client.post("/autodiscover/autodiscover.xml",
                               content=REQUEST.format(email="alice@acme.example"))
    assert answer.status_code == 200
    account = ET.fromstring(answer.text).find(f".//{RESPONSE}Account")
    assert account is not None
    protocols = [(p.findtext(f"{RESPONSE}Type"), p.findtext(f"{RESPONSE}Server"),
                  p.findtext(f"{RESPONSE}Port"), p.findtext(f"{RESPONSE}SSL"),
                  p.findtext(f"{RESPONSE}LoginName"))
                 for p in account.findall(f"{RESPONSE}Protocol")]
    host = settings.hosting_host
    assert protocols == [("IMAP", host, "993", "on", "alice@acme.example"),
                         ("POP3", host, "995", "on", "alice@acme.example"),
                         ("SMTP", host, "465", "on", "alice@acme.example")]
    same = await client.post("/Autodiscover/Autodiscover.xml",
                             content=REQUEST.format(email="alice@acme.example"))
    assert same.text == answer.text

    unknown = await client.post("/autodiscover/autodiscover.xml",
                                content=REQUEST.format(email="x@unknown.example"))
    assert unknown.status_code == 404
    broken = await client.post("/autodiscover/autodiscover.xml", content=b"<Autodiscover><Req")
    assert broken.status_code == 400 and "malformed autodiscover request" in broken.text
    nameless = await client.post("/autodiscover/autodiscover.xml", content=b"<Autodiscover/>")
    assert nameless.status_code == 400 and "EMailAddress" in nameless.text
    huge = await client.post("/autodiscover/autodiscover.xml", content=b"<a>" + b"x" * 20000)
    assert huge.status_code == 413
