"""Optional two-factor login (TOTP) over a real socket and on both backends: enrolling on
the security page, the code step of the panel login, the API token login, used codes."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pyotp
import pytest
from api_server import ALICE_PASSWORD, running_server
from panel_client import Panel, messages

from mailward.app import Services
from mailward.config import Settings
from mailward.directory import Actor, InvalidInput

LOGIN = "alice@acme.example"


@pytest.fixture
async def alice(directory: Services) -> Actor:
    op = Actor.operator()
    await directory.accounts.create(op, "Acme")
    view = await directory.accounts.create_user(op, LOGIN, ALICE_PASSWORD, account="Acme")
    return Actor.for_account(1, LOGIN, view.id)


@pytest.fixture
async def url(settings: Settings) -> AsyncIterator[str]:
    async with running_server(settings) as url:
        yield url


def code(secret: str, ahead: int = 0) -> str:
    """The code of ``secret`` ``ahead`` steps from now."""
    return pyotp.TOTP(secret).at(time.time() + 30 * ahead)


async def test_panel_enrol_then_login_with_a_code(url: str, alice: Actor) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        panel = Panel(http)
        await panel.login(LOGIN, ALICE_PASSWORD)
        page = await panel.get("/panel/security")
        assert 'alt="QR code of the two-factor key"' in page
        assert "data:image/svg+xml" in page
        secret = re.search(r'id="two-factor-key">([A-Z2-7]+)<', page).group(1)  # type: ignore[union-attr]
        wrong = await panel.post("/panel/security/two-factor",
                                 {"action": "on", "code": "123456"}, status=400)
        assert messages(wrong)[0].startswith("that code does not match")
        assert secret in wrong  # the same key: the phone need not scan again
        on = await panel.post("/panel/security/two-factor",
                              {"action": "on", "code": code(secret)})
        assert messages(on) == ["two-factor login is on: every login now asks for a code"]
        await panel.post("/logout")

        step = await panel.post("/login", {"login": LOGIN, "password": ALICE_PASSWORD})
        assert "Two-factor code" in step
        assert (await http.get("/panel/security")).status_code == 303  # not logged in yet
        bad = await panel.post("/login/code", {"code": "000000"}, status=401)
        assert messages(bad) == ["wrong or used two-factor code"]
        fresh = code(secret, ahead=1)
        landed = await panel.post("/login/code", {"code": fresh})
        assert "<h1>Acme</h1>" in landed
        await panel.post("/logout")

        await panel.post("/login", {"login": LOGIN, "password": ALICE_PASSWORD})
        replay = await panel.post("/login/code", {"code": fresh}, status=401)
        assert messages(replay) == ["wrong or used two-factor code"]


async def test_api_token_needs_the_code(url: str, alice: Actor, directory: Services) -> None:
    enrol = directory.two_factor.new_secret(LOGIN)
    await directory.two_factor.enable(alice, enrol.secret, code(enrol.secret))
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        body = {"login": LOGIN, "password": ALICE_PASSWORD}
        missing = await http.post("/api/v1/auth/token", json=body)
        assert missing.status_code == 401
        assert missing.json() == {"error": "wrong or used two-factor code"}
        ok = await http.post("/api/v1/auth/token",
                             json={**body, "code": code(enrol.secret, ahead=1)})
        assert ok.status_code == 201 and ok.json()["token"].startswith("mw_")


async def test_codes_window_replay_and_turning_off(alice: Actor, directory: Services) -> None:
    service = directory.two_factor
    secret = service.new_secret(LOGIN).secret
    t0 = datetime(2026, 12, 5, 12, 0, 10, tzinfo=UTC)
    totp = pyotp.TOTP(secret)
    with pytest.raises(InvalidInput):
        await service.enable(alice, secret, totp.at(t0 - timedelta(minutes=5)), now=t0)
    await service.enable(alice, secret, totp.at(t0), now=t0)
    assert alice.user_id is not None and await service.enabled(alice.user_id)
    later = t0 + timedelta(minutes=2)
    assert not await service.verify(alice.user_id, totp.at(t0), now=later)  # too old
    assert await service.verify(alice.user_id, totp.at(later - timedelta(seconds=30)),
                                now=later)  # one step back: clock drift is fine
    assert not await service.verify(alice.user_id, totp.at(later - timedelta(seconds=30)),
                                    now=later)  # but only once
    with pytest.raises(InvalidInput):
        await service.disable(alice, "12345x", now=later)
    await service.disable(alice, totp.at(later), now=later)
    assert not await service.enabled(alice.user_id)
    entries = await directory.audit.search(Actor.operator(), action="user.two-factor")
    assert [(e.target, e.detail) for e in entries.items] == [(LOGIN, "off"), (LOGIN, "on")]
