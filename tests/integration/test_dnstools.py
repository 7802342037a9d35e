"""The public DNS lookup pages (MX lookup, A lookup) over a real socket, answered by a
loopback DNS server: the doc's columns, every non-answer told apart, bad input, escaping,
the rate limit, and the stylesheet they use."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from dns_server import dns_server, silent_udp_server

from mailward.config import Settings
from mailward.web.dnstools import RATE_LIMIT

ZONE = """
acme.example.      300 IN MX 20 mailfilter2.example.net.
acme.example.      300 IN MX 10 mailfilter1.example.net.
www.acme.example.  600 IN A 192.0.2.10
"""


@pytest.fixture
def settings(settings: Settings) -> Iterator[Settings]:
    with dns_server(ZONE) as nameserver:
        yield settings.model_copy(update={"dns_nameservers": [nameserver],
                                          "dns_timeout_seconds": 1})


def cells(html: str) -> list[list[str]]:
    """The body rows of the page's table, as cell texts."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [[re.sub(r"<[^>]+>", "", cell).strip()
             for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def message(html: str) -> str:
    return re.search(r'<p class="message (\w+)" role="\w+">(.*?)</p>', html, re.S).group(1, 2)  # type: ignore[union-attr]


async def test_mx_and_a_lookup_pages(client: httpx.AsyncClient) -> None:
    page = await client.get("/tools/dns", params={"type": "MX", "name": "acme.example"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    columns = "".join(f"<th>{c}</th>" for c in ("Name", "TTL", "Class", "Type", "Priority",
                                                  "Answer"))
    assert columns in page.text
    assert cells(page.text) == [
        ["acme.example.", "300", "IN", "MX", "10", "mailfilter1.example.net."],
        ["acme.example.", "300", "IN", "MX", "20", "mailfilter2.example.net."],
    ]
    a = await client.get("/tools/dns", params={"type": "a", "name": "www.acme.example"})
    assert cells(a.text) == [["www.acme.example.", "600", "IN", "A", "", "192.0.2.10"]]
    assert '<option selected>A</option>' in a.text

    form = await client.get("/tools/dns")  # no name yet: the form alone
    assert form.status_code == 200 and "<table" not in form.text
    assert '<option selected>MX</option>' in form.text
    css = await client.get("/static/mailward.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert '<link rel="stylesheet" href="/static/mailward.css">' in form.text


async def test_every_non_answer_is_told_apart(client: httpx.AsyncClient,
                                              settings: Settings) -> None:
    missing = await client.get("/tools/dns", params={"type": "MX", "name": "nope.example"})
    assert missing.status_code == 200 and "<table" not in missing.text
    assert message(missing.text) == (
        "info", "no such domain: nope.example. does not exist (NXDOMAIN)")
    empty = await client.get("/tools/dns", params={"type": "A", "name": "acme.example"})
    assert message(empty.text) == ("info", "no answer: acme.example. exists but has no A records")

    bad_type = await client.get("/tools/dns", params={"type": "HINFO", "name": "acme.example"})
    assert bad_type.status_code == 400
    assert message(bad_type.text)[1] == (
        "unsupported record type &#39;HINFO&#39;: use one of MX, A, AAAA, CNAME, TXT, NS, SOA")
    hostile = await client.get("/tools/dns", params={"name": "<script>x</script>"})
    assert hostile.status_code == 400 and "<script>x" not in hostile.text
    assert "&lt;script&gt;x&lt;/script&gt;" in hostile.text  # echoed in the form, escaped


async def test_a_silent_resolver_is_a_timeout(settings: Settings) -> None:
    from api_server import running_server  # a server of its own: other resolvers

    with silent_udp_server() as nowhere:
        quiet = settings.model_copy(update={"dns_nameservers": [nowhere],
                                            "dns_timeout_seconds": 0.3})
        async with running_server(quiet) as url, httpx.AsyncClient(base_url=url) as http:
            page = await http.get("/tools/dns", params={"type": "MX", "name": "acme.example"})
    kind, text = message(page.text)
    assert kind == "error" and text.startswith("timeout: ")
    assert "acme.example. MX" in text


async def test_lookups_are_rate_limited_per_client(client: httpx.AsyncClient) -> None:
    limit = RATE_LIMIT[1]
    answers = [(await client.get("/tools/dns")).status_code for _ in range(limit + 1)]
    assert answers == [200] * limit + [429]
    assert (await client.get("/")).status_code == 200  # the rest of the site is not limited


async def test_the_limit_holds_across_web_nodes(settings: Settings) -> None:
    """Two web nodes on one database count a client's lookups together."""
    from api_server import running_server

    limit = RATE_LIMIT[1]
    async with running_server(settings) as one, running_server(settings) as two, \
            httpx.AsyncClient(base_url=one) as first, httpx.AsyncClient(base_url=two) as second:
        answers = [(await (first if i % 2 else second).get("/tools/dns")).status_code
                   for i in range(limit)]
        assert answers == [200] * limit
        assert (await first.get("/tools/dns")).status_code == 429
        assert (await second.get("/tools/dns")).status_code == 429
