"""A form-posting panel client over a real socket: logs in like a browser, keeps the
cookies, and sends each form's CSRF token as the page rendered it."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

import httpx

CSRF_FIELD = "_csrf_token"
_TOKEN = re.compile(r'name="_csrf_token" value="([^"]+)"')


@dataclass
class Panel:
    http: httpx.AsyncClient
    token: str = ""

    async def get(self, path: str, status: int = 200, **params: str) -> str:
        response = await self.http.get(path, params=params)
        assert response.status_code == status, (path, response.status_code, response.text[:500])
        self._remember(response.text)
        return response.text

    async def post(self, path: str, data: dict[str, str | list[str]] | None = None,
                   status: int = 200) -> str:
        """POST a form (following the redirect, as a browser does); the page's text."""
        fields = {CSRF_FIELD: self.token, **(data or {})}
        response = await self.http.post(path, data=fields, follow_redirects=True)
        assert response.status_code == status, (path, response.status_code, response.text[:800])
        self._remember(response.text)
        return response.text

    async def login(self, login: str, password: str) -> str:
        await self.get("/login")
        return await self.post("/login", {"login": login, "password": password})

    def _remember(self, text: str) -> None:
        found = _TOKEN.search(text)
        if found:
            self.token = html.unescape(found.group(1))


def messages(text: str) -> list[str]:
    """The status/alert messages of a page, as text."""
    return [re.sub(r"<[^>]+>", "", html.unescape(m)).strip() for m in
            re.findall(r'<p class="message [a-z]+" role="(?:status|alert)">(.*?)</p>', text, re.S)]


def rows(text: str, label: str) -> list[list[str]]:
    """The body rows (cell texts) of the table ``aria-label=label``."""
    table = text.split(f'aria-label="{label}"', 1)[1].split("</table>", 1)[0]
    body = table.split("<tbody>", 1)[1]
    return [[re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html.unescape(c))).strip()
             for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)]
