"""The control panel over a real socket, as a browser without JavaScript uses it: login and
sessions, CSRF, tenant isolation, and the procedures of docs/procedures.md on both backends."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from api_server import ALICE_PASSWORD, BOB_PASSWORD, OPERATOR_PASSWORD, running_server
from panel_client import Panel, messages, rows

from mailward.app import Services
from mailward.config import Settings
from mailward.db.models import AddressList
from mailward.directory import Actor

pytestmark = pytest.mark.usefixtures("tenants_seeded")


@pytest.fixture
async def tenants_seeded(directory: Services) -> None:
    op = Actor.operator()
    await directory.accounts.create_user(op, "root", OPERATOR_PASSWORD)
    for account, domain, user, password in (
            ("Acme", "acme.example", "alice@acme.example", ALICE_PASSWORD),
            ("Globex", "globex.example", "bob@globex.example", BOB_PASSWORD)):
        await directory.accounts.create(op, account)
        await directory.domains.create(op, domain, account=account, hosting=True)
        await directory.accounts.create_user(op, user, password, account=account)


@pytest.fixture
async def url(settings: Settings) -> AsyncIterator[str]:
    async with running_server(settings) as url:
        yield url


@pytest.fixture
async def alice(url: str) -> AsyncIterator[Panel]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        panel = Panel(http)
        await panel.login("alice@acme.example", ALICE_PASSWORD)
        yield panel


async def test_login_sessions_and_csrf(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        to_login = await http.get("/panel/accounts/Acme/addresses")
        assert to_login.status_code == 303
        assert to_login.headers["location"] == "/login?next=%2Fpanel%2Faccounts%2FAcme%2Faddresses"
        panel = Panel(http)
        form = await panel.get("/login")
        assert 'name="_csrf_token"' in form
        wrong = await panel.post("/login", {"login": "alice@acme.example", "password": "nope"},
                                 status=401)
        assert messages(wrong) == ["wrong login or password"]
        # no CSRF token: refused before the password is even looked at
        forged = await http.post("/login", data={"login": "alice@acme.example",
                                                 "password": ALICE_PASSWORD})
        assert forged.status_code == 403
        landed = await http.post("/login", data={
            "_csrf_token": panel.token, "login": "alice@acme.example",
            "password": ALICE_PASSWORD, "next": "https://evil.example/"})
        assert landed.status_code == 303 and landed.headers["location"] == "/panel"
        cookie = next(v for k, v in landed.headers.multi_items()
                      if k == "set-cookie" and v.startswith("mailward_session="))
        assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and "Secure" not in cookie
        start = await http.get("/panel")
        assert start.headers["location"] == "/panel/accounts/Acme/"
        page = await panel.get("/panel/accounts/Acme/")
        assert "alice@acme.example" in page and "acme.example" in page
        await panel.post("/logout")
        assert (await http.get("/panel/accounts/Acme/")).status_code == 303


async def test_other_tenants_and_operator_pages_are_404(alice: Panel) -> None:
    for path in ("/panel/accounts/Globex/", "/panel/accounts/Globex/addresses",
                 "/panel/accounts/Acme/domains/globex.example",
                 "/panel/accounts/Acme/domains/globex.example/servers",
                 "/panel/accounts/Acme/addresses/bob@globex.example",
                 "/panel/accounts", "/panel/accounts/Nobody/"):
        page = await alice.get(path, status=404)
        assert "Not found" in page
    refused = await alice.post("/panel/accounts/Globex/addresses/add",
                               {"lines": "x@globex.example", "list": "filter"}, status=404)
    assert "Not found" in refused


async def test_bulk_add_setup_autocc_and_delete_checked(alice: Panel, directory: Services) -> None:
    base = "/panel/accounts/Acme/"
    lines = ("info@acme.example\nbob@acme.example|Secret-pass-9\n"
             "sales@acme.example|anna@example.net|relay\nnot an address\n"
             "x@globex.example\n")
    results = await alice.post(f"{base}addresses/add", {"lines": lines, "list": "filter"})
    assert "3 added, 0 moved to this list, 0 already on it, 2 not accepted" in results
    assert [r[:2] for r in rows(results, "Not accepted")[0:0]] == []
    assert "Continue" in results

    listing = await alice.get(f"{base}addresses")
    table = rows(listing, "addresses")
    assert [r[1] for r in table] == ["bob@acme.example", "info@acme.example",
                                     "sales@acme.example"]
    assert "pending setup" in table[1][3]
    assert 'class="pending" data-address="info@acme.example"' in listing

    done = await alice.post(f"{base}addresses/info@acme.example/setup",
                            {"mode": "mailbox", "password": "Long-pass-123",
                             "repeat": "Long-pass-123"})
    assert messages(done) == ["info@acme.example is set up as a mailbox"]
    mismatch = await alice.post(f"{base}addresses/bob@acme.example/password",
                                {"password": "Long-pass-123", "repeat": "other-pass-123"},
                                status=400)
    assert any("do not match" in m for m in messages(mismatch))

    cc = await alice.post(f"{base}addresses/bob@acme.example/autocc",
                          {"destinations": "boss@example.net"})
    assert messages(cc) == ["auto-cc of bob@acme.example set"]
    assert (await directory.addresses.get(Actor.operator(), "bob@acme.example")).destinations \
        == ["boss@example.net"]
    listing = await alice.get(f"{base}addresses")
    assert "auto-cc → 1" in listing
    removed = await alice.post(f"{base}addresses/bob@acme.example/remove-destination",
                               {"destination": "boss@example.net"})
    assert messages(removed) == ["boss@example.net removed from bob@acme.example"]
    assert (await directory.addresses.get(Actor.operator(), "bob@acme.example")).kind.value \
        == "mailbox"

    confirm = await alice.post(f"{base}addresses/delete",
                               {"email": ["info@acme.example", "sales@acme.example"]})
    assert "Delete 2 addresses?" in confirm
    assert (await directory.addresses.get(Actor.operator(), "info@acme.example")).email
    deleted = await alice.post(f"{base}addresses/delete",
                               {"email": ["info@acme.example", "sales@acme.example"],
                                "confirm": "yes"})
    assert messages(deleted) == ["deleted 2 addresses: info@acme.example, sales@acme.example"]
    assert [r[1] for r in rows(deleted, "addresses")] == ["bob@acme.example"]


async def test_mail_server_settings_and_auto_configure(alice: Panel,
                                                       settings: Settings) -> None:
    hosting = await alice.http.get("/panel/accounts/Acme/hosting")
    assert hosting.headers["location"] == "/panel/accounts/Acme/domains/acme.example"
    base = "/panel/accounts/Acme/domains/acme.example/servers"
    added = await alice.post(f"{base}/add", {"host": "mx.acme-office.example", "preference": "10"})
    assert messages(added) == ["mx.acme-office.example:25 added (preference 10)"]
    bad = await alice.post(f"{base}/add", {"host": "mx2.acme.example", "preference": "x"},
                           status=400)
    assert messages(bad) and "preference" in messages(bad)[0]
    edited = await alice.post(f"{base}/edit", {"server": "mx.acme-office.example:25",
                                               "host": "mx.acme-office.example",
                                               "preference": "5"})
    assert messages(edited) == ["mx.acme-office.example:25 saved (preference 5)"]
    await alice.post(f"{base}/add", {"host": "backup.acme-office.example:2525",
                                     "preference": "20"})
    sure = await alice.post(f"{base}/delete", {"server": "backup.acme-office.example:2525"})
    assert "Delete mail server backup.acme-office.example:2525?" in sure
    assert len(rows(await alice.get(base), "mail servers")) == 2  # not yet
    gone = await alice.post(f"{base}/delete", {"server": "backup.acme-office.example:2525",
                                               "confirm": "yes"})
    assert messages(gone) == ["backup.acme-office.example:2525 deleted"]
    assert [r[:2] for r in rows(gone, "mail servers")] == [["mx.acme-office.example:25", "5"]]
    ask = await alice.post(f"{base}/auto-configure")
    assert "Auto-Configure Mail Server Settings?" in ask
    assert rows(await alice.get(base), "mail servers")[0][0] == "mx.acme-office.example:25"
    done = await alice.post(f"{base}/auto-configure", {"confirm": "yes"})
    assert "Hosting setup done" in done
    assert rows(await alice.get(base), "mail servers")[0][:2] == [
        f"{settings.hosting_host}:25", "0"]


async def test_panel_logins_share_the_api_limit(url: str, settings: Settings) -> None:
    """Failures on the panel lock the login for the API too (one limiter), and the right
    password is refused while locked."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        panel = Panel(http)
        await panel.get("/login")
        for _ in range(settings.auth_failures_per_window):
            await panel.post("/login", {"login": "alice@acme.example", "password": "bad"},
                             status=401)
        locked = await panel.post("/login", {"login": "alice@acme.example",
                                             "password": ALICE_PASSWORD}, status=429)
        assert messages(locked)[0].startswith("too many failed logins; try again in ")
        api = await http.post("/api/v1/auth/token", json={"login": "alice@acme.example",
                                                          "password": ALICE_PASSWORD})
        assert api.status_code == 429 and int(api.headers["retry-after"]) > 0


async def test_audit_log_page_shows_own_changes_only(alice: Panel, url: str) -> None:
    base = "/panel/accounts/Acme/"
    await alice.post(f"{base}addresses/add", {"lines": "info@acme.example", "list": "filter"})
    await alice.post(f"{base}addresses/info@acme.example/setup",
                     {"mode": "forwarder", "destinations": "x@example.net"})
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:  # Globex changes too
        bob = Panel(http)
        await bob.login("bob@globex.example", BOB_PASSWORD)
        await bob.post("/panel/accounts/Globex/addresses/add",
                       {"lines": "sales@globex.example", "list": "filter"})
    everything = rows(await alice.get(f"{base}audit"), "audit log")
    assert {r[3] for r in everything} >= {"domain.create", "user.create"}  # the seeding
    log = rows(await alice.get(f"{base}audit", who="alice"), "audit log")
    assert [(r[1], r[2], r[3], r[4]) for r in log] == [
        ("alice@acme.example", "web 127.0.0.1", "address.setup-forwarder", "info@acme.example"),
        ("alice@acme.example", "web 127.0.0.1", "address.bulk-add", log[1][4]),
    ]
    assert "globex" not in " ".join(" ".join(r) for r in everything)
    only = rows(await alice.get(f"{base}audit", action="address.setup"), "audit log")
    assert [r[3] for r in only] == ["address.setup-forwarder"]
    bad = await alice.get(f"{base}audit", status=400, since="yesterday")
    assert messages(bad) == ["'yesterday' is not a date (YYYY-MM-DD)"]


async def test_mailbox_user_sees_only_their_own_page(url: str, directory: Services) -> None:
    op = Actor.operator()
    await directory.bulk.add_lines(op, ["carol@acme.example|Blue-sky-7788"],
                                   AddressList.FILTER)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        carol = Panel(http)
        landed = await carol.login("carol@acme.example", "Blue-sky-7788")
        assert '<h1 class="mono">carol@acme.example</h1>' in landed
        assert "0 % of 2048 MB used" in landed
        for path in ("/panel/accounts/Acme/", "/panel/accounts/Acme/addresses",
                     "/panel/accounts", "/panel/security"):
            await carol.get(path, status=404)
        wrong = await carol.post("/panel/me/password", {
            "current": "guess", "password": "Green-sea-4455", "repeat": "Green-sea-4455"},
            status=400)
        assert messages(wrong) == ["the current password is not right"]
        done = await carol.post("/panel/me/password", {
            "current": "Blue-sky-7788", "password": "Green-sea-4455",
            "repeat": "Green-sea-4455"})
        assert messages(done) == ["password changed: use the new one in your mail programs too"]
        await carol.get("/panel/me")  # her own change keeps her session...
        await directory.addresses.set_password(op, "carol@acme.example", "Red-moon-6622",
                                               "Red-moon-6622")
        assert (await http.get("/panel/me")).status_code == 303  # ...an admin's reset ends it
    login = await directory.mail_login.authenticate("carol@acme.example", "Red-moon-6622",
                                                    "127.0.0.1", "imap")
    assert login.mailbox == "carol@acme.example"
    [entry] = (await directory.audit.search(op, who="carol")).items
    assert (entry.action, entry.source) == ("address.set-password",
                                            "web 127.0.0.1 (mailbox user)")


async def test_pages_forbid_framing_and_foreign_content(alice: Panel) -> None:
    response = await alice.http.get("/panel/accounts/Acme/addresses")
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "style-src 'self'" in csp and "unsafe-inline" not in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert " style=" not in response.text and "<script>" not in response.text


async def test_quota_is_for_operators_and_csrf_guards_every_form(
        alice: Panel, url: str, directory: Services) -> None:
    base = "/panel/accounts/Acme/addresses/bob@acme.example"
    await directory.bulk.add_lines(Actor.operator(), ["bob@acme.example|Secret-pass-9"],
                                   AddressList.FILTER)
    assert 'aria-label="quota"' not in await alice.get(base)
    refused = await alice.post(f"{base}/quota", {"megabytes": "1"}, status=403)
    assert messages(refused) == ["only an operator may change quotas"]
    forged = await alice.http.post(f"{base}/password", data={
        "password": "Evil-pass-1234", "repeat": "Evil-pass-1234"})
    assert forged.status_code == 403  # no CSRF token: refused, nothing changed
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        root = Panel(http)
        await root.login("root", OPERATOR_PASSWORD)
        assert 'aria-label="quota"' in await root.get(base)
        done = await root.post(f"{base}/quota", {"megabytes": "500"})
        assert messages(done) == ["quota of bob@acme.example: 500 MB"]
        bad = await root.post(f"{base}/quota", {"megabytes": "lots"}, status=400)
        assert messages(bad) == ["the quota is a whole number of MB (empty: no limit)"]
    bob = await directory.addresses.get(Actor.operator(), "bob@acme.example")
    assert bob.quota_bytes == 500 * 1024 * 1024
    login = await directory.mail_login.authenticate("bob@acme.example", "Secret-pass-9",
                                                    "127.0.0.1", "imap")
    assert login.ok  # the forged password change did not happen


async def test_cookies_are_secure_behind_tls(settings: Settings) -> None:
    behind_tls = settings.model_copy(update={"public_url": "https://panel.example.net"})
    async with running_server(behind_tls) as url, httpx.AsyncClient(base_url=url) as http:
        form = await http.get("/login")
        csrf = next(v for k, v in form.headers.multi_items()
                    if k == "set-cookie" and v.startswith("mailward_csrf="))
        assert "Secure" in csrf and "HttpOnly" in csrf
        token = re.search(r'name="_csrf_token" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
        # a client on plain http does not send Secure cookies back: send it by hand
        response = await http.post(
            "/login", data={"_csrf_token": html.unescape(token), "login": "alice@acme.example",
                            "password": ALICE_PASSWORD},
            headers={"Cookie": csrf.split(";", 1)[0]})
    assert response.status_code == 303
    session = next(v for k, v in response.headers.multi_items()
                   if k == "set-cookie" and v.startswith("mailward_session="))
    assert "Secure" in session and "HttpOnly" in session


async def test_address_list_pages(alice: Panel) -> None:
    base = "/panel/accounts/Acme/"
    lines = "".join(f"user{n:02d}@acme.example\n" for n in range(55))  # PER_PAGE is 50
    assert "55 added" in await alice.post(f"{base}addresses/add",
                                          {"lines": lines, "list": "filter"})
    first = await alice.get(f"{base}addresses")
    assert len(rows(first, "addresses")) == 50 and "page 1 of 2" in first
    assert re.search(r'<a href="\?[^"]*&page=2">next</a>', first) and ">previous<" not in first
    second = await alice.get(f"{base}addresses", page=2)
    assert [r[1] for r in rows(second, "addresses")] == [
        f"user{n:02d}@acme.example" for n in range(50, 55)]
    assert re.search(r'<a href="\?[^"]*&page=1">previous</a>', second) and ">next<" not in second


async def test_a_locked_mailbox_shows_and_is_unlocked(alice: Panel, directory: Services,
                                                      settings: Settings) -> None:
    """Wrong passwords over the mail protocols lock a mailbox; its admin sees the lock on
    the address page and lifts it there (for every node: the count is in the database)."""
    base = "/panel/accounts/Acme/addresses/box@acme.example"
    await alice.post("/panel/accounts/Acme/addresses/add",
                     {"lines": "box@acme.example|Secret-pass1", "list": "filter"})
    assert "Logins are locked" not in await alice.get(base)
    for _ in range(settings.auth_failures_per_window):
        await directory.mail_login.authenticate("box@acme.example", "guess", "192.0.2.7")
    locked = await alice.get(base)
    assert any(m.startswith("Logins are locked for about 15 more minutes")
               for m in messages(locked))
    async with httpx.AsyncClient(base_url=alice.http.base_url, timeout=30) as http:
        user = Panel(http)  # the mailbox user tries the panel: locked there too
        await user.get("/login")
        for _ in range(settings.auth_failures_per_window):
            await user.post("/login", {"login": "box@acme.example", "password": "Secret-pass1"},
                            status=429)
        unlocked = await alice.post(f"{base}/unlock")
        assert "logins of box@acme.example unlocked" in messages(unlocked)
        assert "Logins are locked" not in unlocked
        assert (await directory.mail_login.authenticate("box@acme.example", "Secret-pass1",
                                                        "192.0.2.7")).ok
        assert "box@acme.example" in await user.login("box@acme.example", "Secret-pass1")


async def test_a_user_changes_their_own_password(alice: Panel, url: str) -> None:
    """With the current password; this session goes on, the user's other sessions end."""
    new = {"password": "Looking-glass-77", "repeat": "Looking-glass-77"}
    assert "change your password" in await alice.get("/panel/security")
    wrong = await alice.post("/panel/security/password", {**new, "current": "guess"},
                             status=400)
    assert "the current password is wrong" in messages(wrong)
    async with httpx.AsyncClient(base_url=url, timeout=30) as laptop:
        elsewhere = Panel(laptop)
        await elsewhere.login("alice@acme.example", ALICE_PASSWORD)
        await elsewhere.get("/panel/security")
        done = await alice.post("/panel/security/password", {**new, "current": ALICE_PASSWORD})
        assert messages(done) == ["password changed: your other sessions are logged out"]
        assert (await laptop.get("/panel/security")).status_code == 303  # to the login
    assert "change your password" in await alice.get("/panel/security")
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        fresh = Panel(http)
        await fresh.get("/login")
        await fresh.post("/login", {"login": "alice@acme.example", "password": ALICE_PASSWORD},
                         status=401)
        assert "Log out" in await fresh.login("alice@acme.example", "Looking-glass-77")


async def test_account_users_page(alice: Panel, url: str, settings: Settings) -> None:
    """Add an admin, reset their forgotten password, lift their lock, delete them (after a
    confirmation page); another customer cannot reach any of it."""
    base = "/panel/accounts/Acme/users"
    listed = await alice.get(base)
    assert [r[0] for r in rows(listed, "users")] == ["alice@acme.example"]
    assert "change yours on the Security page" in listed
    mismatch = await alice.post(f"{base}/add", {"login": "carol@acme.example",
                                                "password": "Stoat-pass-2468",
                                                "repeat": "Stoat-pass-2469"}, status=400)
    assert "passwords do not match" in messages(mismatch)
    added = await alice.post(f"{base}/add", {"login": "carol@acme.example",
                                             "password": "Stoat-pass-2468",
                                             "repeat": "Stoat-pass-2468"})
    assert "added carol@acme.example" in messages(added)[0]
    async with httpx.AsyncClient(base_url=url, timeout=30) as carols:
        carol = Panel(carols)
        await carol.login("carol@acme.example", "Stoat-pass-2468")
        await carol.get("/panel/accounts/Acme/")
        reset = await alice.post(f"{base}/carol@acme.example/password",
                                 {"password": "Otter-pass-1357", "repeat": "Otter-pass-1357"})
        assert messages(reset)[0].startswith("password of carol@acme.example changed")
        assert (await carols.get("/panel/accounts/Acme/")).status_code == 303  # logged out
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        for _ in range(settings.auth_failures_per_window):
            await http.post("/api/v1/auth/token", json={"login": "carol@acme.example",
                                                        "password": "Stoat-pass-2468"})
        locked = await alice.get(base)
        assert [r[2] for r in rows(locked, "users")] == ["ok", "locked for 15 min Unlock"]
        await alice.post(f"{base}/carol@acme.example/unlock")
        token = await http.post("/api/v1/auth/token", json={"login": "carol@acme.example",
                                                            "password": "Otter-pass-1357"})
        assert token.status_code == 201
        async with httpx.AsyncClient(base_url=url, timeout=30) as other:
            bob = Panel(other)
            await bob.login("bob@globex.example", BOB_PASSWORD)
            await bob.get(base, status=404)
            await bob.post("/panel/accounts/Globex/users/carol@acme.example/delete",
                           {"confirm": "yes"}, status=404)
    confirm = await alice.post(f"{base}/carol@acme.example/delete")
    assert "Delete carol@acme.example?" in confirm
    gone = await alice.post(f"{base}/carol@acme.example/delete", {"confirm": "yes"})
    assert "deleted carol@acme.example" in messages(gone)
    assert [r[0] for r in rows(gone, "users")] == ["alice@acme.example"]


async def test_guessing_the_current_mailbox_password_locks(url: str, directory: Services,
                                                           settings: Settings) -> None:
    """A stolen mailbox session cannot guess the current password at leisure."""
    await directory.bulk.add_lines(Actor.operator(), ["dave@acme.example|Blue-sky-7788"],
                                   AddressList.FILTER)
    change = {"password": "Green-sea-4455", "repeat": "Green-sea-4455"}
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        dave = Panel(http)
        await dave.login("dave@acme.example", "Blue-sky-7788")
        for _ in range(settings.auth_failures_per_window):
            await dave.post("/panel/me/password", {**change, "current": "guess"}, status=400)
        locked = await dave.post("/panel/me/password", {**change, "current": "Blue-sky-7788"},
                                 status=429)
        assert messages(locked)[0].startswith("too many wrong passwords; try again in ")
    assert await directory.mail_login.locked("dave@acme.example") > 0  # IMAP/POP too
