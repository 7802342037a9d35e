"""The webmail image proxy against real HTTP servers and a real DNS server on loopback:
it fetches only URLs it signed, only from public addresses (or networks the operator
allows: 127.0.0.2 here), connects to the address it checked, sends no cookie, follows
redirects itself and passes on only raster images within the size cap."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import trustme
from dns_server import dns_server
from pydantic import SecretStr

from mailward.config import Settings, load_settings
from mailward.webmail.images import ImageProxy, ImageRefused

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201a5d5f0d40000000049454e44ae426082")
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'
ZONE = """
img.test.   60 IN A 127.0.0.2
loop.test.  60 IN A 127.0.0.1
ten.test.   60 IN A 10.0.0.1
meta.test.  60 IN A 169.254.169.254
home.test.  60 IN A 192.168.1.1
mixed.test. 60 IN A 127.0.0.2
mixed.test. 60 IN A 10.0.0.1
six.test.   60 IN AAAA ::1
"""


class Server:
    """An HTTP(S) server in a thread recording each request's path and headers."""

    def __init__(self, address: str, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                owner.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                status, headers, body = owner.answer(self.path)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer((address, 0), Handler)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.other = ""  # base URL of the other server (redirect targets)

    def answer(self, path: str) -> tuple[int, dict[str, str], bytes]:
        png = {"Content-Type": "image/png"}
        routes: dict[str, tuple[int, dict[str, str], bytes]] = {
            "/ok.png": (200, png, PNG),
            "/cookie.png": (302, {"Location": "/ok.png", "Set-Cookie": "track=1; Path=/"}, b""),
            "/svg": (200, {"Content-Type": "image/svg+xml"}, SVG),
            "/fake.png": (200, png, b"<html><script>alert(1)</script></html>"),
            "/html": (200, {"Content-Type": "text/html"}, PNG),
            "/big.png": (200, png, PNG + b"\0" * 4096),
            "/to-private": (302, {"Location": f"{self.other}/ok.png"}, b""),
            "/loop": (302, {"Location": "/loop"}, b""),
        }
        return routes.get(path, (404, {}, b""))

    @contextlib.contextmanager
    def running(self) -> Iterator[Server]:
        thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.httpd.shutdown()
            self.httpd.server_close()
            thread.join()


@pytest.fixture
def servers() -> Iterator[tuple[Server, Server]]:
    """(allowed server on 127.0.0.2, forbidden one on 127.0.0.1)."""
    allowed, forbidden = Server("127.0.0.2"), Server("127.0.0.1")
    allowed.other = f"http://127.0.0.1:{forbidden.port}"
    forbidden.other = f"http://127.0.0.2:{allowed.port}"
    with allowed.running(), forbidden.running():
        yield allowed, forbidden


@pytest.fixture
def proxy_settings(tmp_path: Path) -> Iterator[Settings]:
    with dns_server(ZONE) as resolver:
        yield load_settings(data_dir=tmp_path / "data", dns_nameservers=[resolver],
                            webmail_image_proxy_allow=["127.0.0.2/32"],
                            webmail_image_proxy_max_bytes=1024,
                            webmail_image_proxy_timeout_seconds=5)


def _signed(proxy: ImageProxy, url: str) -> tuple[str, str]:
    query = parse_qs(urlsplit(proxy.url_for(url)).query)
    assert proxy.url_for(url).startswith("/mail/img?")
    return query["u"][0], query["s"][0]


async def _refused(proxy: ImageProxy, url: str) -> str:
    with pytest.raises(ImageRefused) as caught:
        await proxy.fetch(*_signed(proxy, url))
    return caught.value.reason


async def test_fetches_an_allowed_image_by_name_without_cookies(
        proxy_settings: Settings, servers: tuple[Server, Server]) -> None:
    allowed, forbidden = servers
    proxy = ImageProxy(proxy_settings)
    assert await proxy.fetch(*_signed(proxy, f"http://img.test:{allowed.port}/ok.png")) == \
        ("image/png", PNG)
    # a redirect setting a cookie: followed, the cookie never sent back
    assert await proxy.fetch(*_signed(proxy, f"http://img.test:{allowed.port}/cookie.png")) \
        == ("image/png", PNG)
    assert [path for path, _ in allowed.requests] == ["/ok.png", "/cookie.png", "/ok.png"]
    for _path, headers in allowed.requests:
        assert "cookie" not in headers and "referer" not in headers
        assert headers["host"] == f"img.test:{allowed.port}"  # connected to the checked IP
    assert forbidden.requests == []


async def test_refuses_private_addresses(proxy_settings: Settings,
                                         servers: tuple[Server, Server]) -> None:
    allowed, forbidden = servers
    proxy = ImageProxy(proxy_settings)
    port = forbidden.port
    for host in ("127.0.0.1", "[::1]", "10.0.0.1", "169.254.169.254", "192.168.1.1",
                 "100.64.0.1", "[::ffff:127.0.0.1]", "[2002:7f00:1::]", "[64:ff9b::7f00:1]",
                 "0.0.0.0", "loop.test", "ten.test", "meta.test", "home.test", "mixed.test",
                 "six.test"):
        reason = await _refused(proxy, f"http://{host}:{port}/ok.png")
        assert "address" in reason, (host, reason)
    # the operator's allow list is what lets 127.0.0.2 through: without it, refused too
    strict = ImageProxy(proxy_settings.model_copy(update={"webmail_image_proxy_allow": []}))
    assert "loopback" in await _refused(strict, f"http://img.test:{allowed.port}/ok.png")
    assert forbidden.requests == [] and allowed.requests == []


async def test_refuses_bad_urls_and_signatures(proxy_settings: Settings,
                                               servers: tuple[Server, Server]) -> None:
    allowed, _forbidden = servers
    proxy = ImageProxy(proxy_settings)
    url = f"http://img.test:{allowed.port}/ok.png"
    u, s = _signed(proxy, url)
    for bad in ("", "0" * 64, s[:-1] + ("0" if s[-1] != "0" else "1")):
        with pytest.raises(ImageRefused, match="signature"):
            await proxy.fetch(u, bad)
    with pytest.raises(ImageRefused, match="signature"):
        await proxy.fetch(url + "?x", s)
    other = ImageProxy(proxy_settings.model_copy(update={"web_secret": SecretStr("another")}))
    with pytest.raises(ImageRefused, match="signature"):
        await other.fetch(u, s)
    for url in ("file:///etc/passwd", "ftp://img.test/x.png", "gopher://img.test/",
                f"http://user:pw@img.test:{allowed.port}/ok.png", "http:///ok.png",
                "http://nxdomain.test/x.png"):
        await _refused(proxy, url)
    assert allowed.requests == []


async def test_refuses_what_is_no_raster_image(proxy_settings: Settings,
                                               servers: tuple[Server, Server]) -> None:
    allowed, forbidden = servers
    proxy = ImageProxy(proxy_settings)
    base = f"http://img.test:{allowed.port}"
    assert "image/svg+xml" in await _refused(proxy, f"{base}/svg")
    assert "text/html" in await _refused(proxy, f"{base}/html")
    assert "not a raster image" in await _refused(proxy, f"{base}/fake.png")
    assert "larger than 1024" in await _refused(proxy, f"{base}/big.png")
    assert "404" in await _refused(proxy, f"{base}/missing.png")
    assert "loopback" in await _refused(proxy, f"{base}/to-private")
    assert "redirects" in await _refused(proxy, f"{base}/loop")
    assert forbidden.requests == []
    assert [p for p, _ in allowed.requests].count("/loop") == 4  # 1 + 3 redirects


async def test_https_checks_the_certificate_against_the_name(
        proxy_settings: Settings) -> None:
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("img.test").configure_cert(server_tls)
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)
    server = Server("127.0.0.2", tls=server_tls)
    with server.running():
        proxy = ImageProxy(proxy_settings, tls=client_tls)
        url = f"https://img.test:{server.port}/ok.png"
        assert await proxy.fetch(*_signed(proxy, url)) == ("image/png", PNG)
        # the same server by its address: the certificate does not name it
        await _refused(proxy, f"https://127.0.0.2:{server.port}/ok.png")
        # and a proxy trusting only the system's authorities refuses the test CA
        await _refused(ImageProxy(proxy_settings), url)
    assert [p for p, _ in server.requests] == ["/ok.png"]


async def test_gives_up_on_a_server_that_never_answers(proxy_settings: Settings) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.2", 0))
        silent.listen()  # connections are accepted by the kernel, never answered
        port = silent.getsockname()[1]
        quick = ImageProxy(proxy_settings.model_copy(
            update={"webmail_image_proxy_timeout_seconds": 0.5}))
        reason = await _refused(quick, f"http://img.test:{port}/slow.png")
        assert "0.5 s" in reason or "Timeout" in reason, reason
