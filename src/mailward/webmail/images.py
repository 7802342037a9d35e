"""The image proxy: remote images of a mail body fetched by us, not by the reader's browser.

The reader's address and cookies never reach the sender; what comes back is checked to be
a raster image. ``url_for`` signs each remote URL (HMAC over the web secret, separated
from its other uses), so the proxy fetches only URLs that a sanitised mail body pointed
at: it is no open proxy. ``fetch`` refuses every address that is not a public Internet one
(loopback, private, link-local, CGNAT, multicast, reserved, and IPv6 forms embedding an
IPv4 address) unless ``webmail_image_proxy_allow`` names its network; it connects to the
address it checked (no second lookup, so DNS rebinding cannot swap it), sends the host
name as Host and TLS SNI (the certificate is checked against the name), sends no cookie,
follows at most ``MAX_REDIRECTS`` redirects itself (each target checked alike) and stops
at ``webmail_image_proxy_max_bytes`` and ``webmail_image_proxy_timeout_seconds``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import ssl
from http.cookiejar import CookieJar, DefaultCookiePolicy
from urllib.parse import urlencode, urljoin, urlsplit

import dns.asyncresolver
import dns.exception
import dns.resolver
import httpx

from mailward.config import ConfigError, Settings
from mailward.config.secret import web_secret
from mailward.net.resolver import make_resolver, private_address

__all__ = ["IMAGE_TYPES", "ImageProxy", "ImageRefused", "sniff_image"]

PROXY_PATH = "/mail/img"
MAX_REDIRECTS = 3
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif",
                         "image/bmp", "image/x-icon", "image/vnd.microsoft.icon"})
_KEY_LABEL = b"mailward webmail image proxy v1\0"
_USER_AGENT = "mailward-image-proxy"
# IPv6 ranges that carry an IPv4 address inside (6to4, Teredo, NAT64, IPv4-compatible):
# refused outright, as the IPv4 inside could be a private one.
_TUNNELS = tuple(ipaddress.ip_network(n) for n in
                 ("2002::/16", "2001::/32", "64:ff9b::/96", "64:ff9b:1::/48", "::/96"))


class ImageRefused(Exception):
    """The proxy will not pass this image on; ``reason`` says why (for logs and tests)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def sniff_image(data: bytes) -> str | None:
    """The raster image type ``data`` starts like, or None (SVG, HTML, anything else)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:12] in (b"ftypavif", b"ftypavis"):
        return "image/avif"
    if data.startswith(b"BM") and len(data) >= 26:
        return "image/bmp"
    if data.startswith(b"\x00\x00\x01\x00"):
        return "image/x-icon"
    return None


class ImageProxy:
    """Signs remote image URLs and fetches them safely (see the module docstring).

    ``tls`` replaces the system's certificate authorities (tests with their own CA).
    """

    def __init__(self, settings: Settings, *, tls: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self._key = hashlib.sha256(_KEY_LABEL + web_secret(settings).encode()).digest()
        try:
            self.allowed = [ipaddress.ip_network(n, strict=False)
                            for n in settings.webmail_image_proxy_allow]
        except ValueError as exc:
            raise ConfigError(f"webmail_image_proxy_allow: {exc}") from None
        self.timeout = settings.webmail_image_proxy_timeout_seconds
        self.max_bytes = settings.webmail_image_proxy_max_bytes
        self.tls = tls or ssl.create_default_context()
        self._resolver: dns.asyncresolver.Resolver | None = None

    # ------------------------------------------------------------ signing

    def _sign(self, remote_url: str) -> str:
        return hmac.new(self._key, remote_url.encode("utf-8", "surrogatepass"),
                        hashlib.sha256).hexdigest()

    def url_for(self, remote_url: str) -> str:
        """Our URL serving ``remote_url``: ``/mail/img?u=...&s=<hmac>``."""
        return f"{PROXY_PATH}?{urlencode({'u': remote_url, 's': self._sign(remote_url)})}"

    def verify(self, u: str, s: str) -> bool:
        """Whether ``s`` is our signature of ``u``."""
        return hmac.compare_digest(self._sign(u), s)

    # ------------------------------------------------------------ fetching

    async def fetch(self, u: str, s: str) -> tuple[str, bytes]:
        """The image at ``u`` (signed ``s``): its content type and bytes.

        Raises :class:`ImageRefused` for a bad signature, a URL or address we do not
        fetch, a failure, a timeout, an oversize answer or anything not a raster image.
        """
        if not self.verify(u, s):
            raise ImageRefused("bad signature")
        try:
            async with asyncio.timeout(self.timeout):
                return await self._follow(u)
        except TimeoutError:
            raise ImageRefused(f"no image within {self.timeout:g} s") from None

    async def _follow(self, url: str) -> tuple[str, bytes]:
        no_cookies = CookieJar(DefaultCookiePolicy(allowed_domains=[]))
        async with httpx.AsyncClient(verify=self.tls, follow_redirects=False, trust_env=False,
                                     timeout=self.timeout, cookies=no_cookies) as client:
            for _hop in range(MAX_REDIRECTS + 1):
                target = await self._target(url)
                answer = await self._get(client, url, *target)
                if isinstance(answer, tuple):
                    return answer
                url = urljoin(url, answer)
        raise ImageRefused(f"more than {MAX_REDIRECTS} redirects")

    async def _target(self, url: str) -> tuple[str, str, int, list[str]]:
        """(scheme, host, port, checked addresses) of ``url``; ImageRefused if not fetchable."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ImageRefused(f"bad URL: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise ImageRefused(f"only http and https images are fetched, not {scheme!r}")
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise ImageRefused("the URL names no host")
        if parts.username is not None or parts.password is not None:
            raise ImageRefused("URLs with credentials are not fetched")
        port = port or (443 if scheme == "https" else 80)
        addresses = await self._addresses(host)
        for address in addresses:
            why = self._refusal(address)
            if why is not None:
                raise ImageRefused(f"{host}: {why}")
        return scheme, host, port, addresses

    async def _addresses(self, host: str) -> list[str]:
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            pass
        if self._resolver is None:
            self._resolver = make_resolver(self.settings.dns_nameservers, lifetime=self.timeout)
        found: list[str] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = await self._resolver.resolve(host, rdtype, search=False)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except (dns.exception.DNSException, ValueError) as exc:
                raise ImageRefused(f"{host}: DNS lookup failed: {exc}") from None
            found += [rr.address for rr in answer]
        if not found:
            raise ImageRefused(f"{host} has no address")
        return found

    def _refusal(self, address: str) -> str | None:
        ip = ipaddress.ip_address(address)
        if any(ip in network for network in self.allowed
               if network.version == ip.version):
            return None
        why = private_address(address)
        if why is None and any(ip in network for network in _TUNNELS):
            why = f"{ip} is an address carrying an IPv4 address inside, not fetched"
        return why

    async def _get(self, client: httpx.AsyncClient, url: str, scheme: str, host: str,
                   port: int, addresses: list[str]) -> tuple[str, bytes] | str:
        """One request to the checked address: the image, or a redirect's Location."""
        parts = urlsplit(url)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        default = 443 if scheme == "https" else 80
        host_header = host if ":" not in host else f"[{host}]"
        if port != default:
            host_header += f":{port}"
        last: Exception | None = None
        for address in addresses:
            netloc = f"[{address}]" if ":" in address else address
            try:
                request = client.build_request(
                    "GET", f"{scheme}://{netloc}:{port}{path}",
                    headers={"Host": host_header, "User-Agent": _USER_AGENT,
                             "Accept": "image/avif,image/webp,image/png,image/*;q=0.8",
                             "Accept-Encoding": "identity"},
                    extensions={"sni_hostname": host} if scheme == "https" else {})
            except (httpx.HTTPError, ValueError) as exc:
                raise ImageRefused(f"bad URL: {exc}") from None
            request.headers.pop("cookie", None)
            try:
                response = await client.send(request, stream=True)
            except httpx.ConnectError as exc:
                last = exc
                continue
            except httpx.HTTPError as exc:
                raise ImageRefused(f"{host}: {type(exc).__name__}: {exc}") from None
            try:
                return await self._answer(response, host)
            except httpx.HTTPError as exc:
                raise ImageRefused(f"{host}: {type(exc).__name__}: {exc}") from None
            finally:
                await response.aclose()
        raise ImageRefused(f"{host}: could not connect: {last}")

    async def _answer(self, response: httpx.Response, host: str) -> tuple[str, bytes] | str:
        if response.status_code in (301, 302, 303, 307, 308):
            location = response.headers.get("location")
            if not location:
                raise ImageRefused(f"{host}: redirect without a Location")
            return location
        if response.status_code != 200:
            raise ImageRefused(f"{host}: HTTP status {response.status_code}")
        declared = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if declared not in IMAGE_TYPES:
            raise ImageRefused(f"{host}: content type {declared or 'none'!r} is not an image "
                               "we pass on")
        if response.headers.get("content-encoding", "identity").lower() not in ("identity", ""):
            raise ImageRefused(f"{host}: encoded answers are not passed on")
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            raise ImageRefused(f"{host}: image larger than {self.max_bytes} bytes")
        data = bytearray()
        async for chunk in response.aiter_raw():
            data += chunk
            if len(data) > self.max_bytes:
                raise ImageRefused(f"{host}: image larger than {self.max_bytes} bytes")
        sniffed = sniff_image(bytes(data))
        if sniffed is None:
            raise ImageRefused(f"{host}: the answer is not a raster image")
        return sniffed, bytes(data)
