"""Hosting access end to end: SMTP submission (STARTTLS/465 + AUTH) → queue → mailboxes
and remote servers, then POP3 to read it back. Real listeners, stdlib clients."""

from __future__ import annotations

import asyncio
import base64
import poplib
import smtplib

import httpx
from api_server import API, error, login, ok
from dns_server import dns_server
from hosting_helpers import OP, PASSWORD, Hosting, client_tls
from mail_helpers import eventually, message

from mailward.dkim import DkimService, verify

ADMIN_PASSWORD = "Sturdy-pass-9876"


async def test_authenticated_mail_reaches_local_and_remote_recipients(hosting: Hosting
                                                                      ) -> None:
    def send() -> None:
        with hosting.smtp() as client:
            assert "auth" in client.esmtp_features
            client.login("Ann@acme.example", PASSWORD)
            client.sendmail("ann@acme.example", ["bob@acme.example", "friend@far.example"],
                            message("ann@acme.example", "bob@acme.example", "Hello Bob"))

    await asyncio.to_thread(send)
    [out] = await hosting.remote.wait_for(1)
    assert out.sender == "ann@acme.example" and out.recipients == ["friend@far.example"]
    assert await eventually(lambda: hosting.inbox("bob@acme.example"))


async def test_an_alias_of_the_user_may_be_the_sender(hosting: Hosting) -> None:
    def send() -> None:
        with hosting.smtp() as client:
            client.login("ann@acme.example", PASSWORD)
            client.sendmail("sales@acme.example", ["friend@far.example"],
                            message("sales@acme.example", "friend@far.example", "Offer"))

    await asyncio.to_thread(send)
    [out] = await hosting.remote.wait_for(1)
    assert out.sender == "sales@acme.example"


async def test_submission_refuses_what_it_must(hosting: Hosting) -> None:
    def session() -> dict[str, tuple[int, bytes]]:
        answers = {}
        with smtplib.SMTP("127.0.0.1", hosting.submission, timeout=30) as plain:
            plain.ehlo("laptop.example")
            answers["auth offered before TLS"] = (int("auth" in plain.esmtp_features), b"")
            answers["mail before auth"] = plain.mail("ann@acme.example")
            answers["auth before tls"] = plain.docmd("AUTH", "PLAIN AGFubkBhY21lLmV4YW1wbGUAeA==")
        with hosting.smtp() as client:
            try:
                client.login("ann@acme.example", "wrong password")
            except smtplib.SMTPAuthenticationError as exc:
                answers["wrong password"] = (exc.smtp_code, exc.smtp_error)
            try:
                client.login("sales@acme.example", PASSWORD)  # a forwarder has no login
            except smtplib.SMTPAuthenticationError as exc:
                answers["forwarder"] = (exc.smtp_code, exc.smtp_error)
            client.login("ann@acme.example", PASSWORD)
            answers["spoofed sender"] = client.mail("bob@acme.example")
            answers["alias of someone else"] = client.mail("other@acme.example")
            client.rset()
            client.mail("ann@acme.example")
            client.rcpt("friend@far.example")
            answers["spoofed From"] = client.data(
                message("bob@acme.example", "friend@far.example", "Spoof"))
        return answers

    answers = await asyncio.to_thread(session)
    assert answers["auth offered before TLS"][0] == 0
    assert answers["mail before auth"][0] == 530
    assert answers["auth before tls"][0] == 538
    assert answers["wrong password"] == (535, b"5.7.8 Authentication credentials invalid")
    assert answers["forwarder"][0] == 535
    assert answers["spoofed sender"][0] == 553 and b"5.7.1" in answers["spoofed sender"][1]
    assert answers["alias of someone else"][0] == 553
    assert answers["spoofed From"][0] == 553
    assert hosting.remote.received == []


async def test_repeated_wrong_passwords_lock_the_login(hosting: Hosting) -> None:
    def guess() -> list[int]:
        # One AUTH PLAIN per attempt (smtplib's login() would retry with LOGIN too).
        token = base64.b64encode(b"\0bob@acme.example\0not-it").decode()
        right = base64.b64encode(f"\0bob@acme.example\0{PASSWORD}".encode()).decode()
        with hosting.smtp() as client:
            codes = [client.docmd("AUTH", f"PLAIN {token}")[0]
                     for _ in range(hosting.settings.auth_failures_per_window)]
            return [*codes, client.docmd("AUTH", f"PLAIN {right}")[0]]

    codes = await asyncio.to_thread(guess)
    assert codes[:-1] == [535] * hosting.settings.auth_failures_per_window
    assert codes[-1] == 454  # temporarily locked, even for the right password now

    def right_password() -> int:
        """From another client address: the guessing one (127.0.0.1) stays locked."""
        right = base64.b64encode(f"\0bob@acme.example\0{PASSWORD}".encode()).decode()
        with smtplib.SMTP("127.0.0.1", hosting.submission, timeout=30,
                          source_address=("127.0.0.2", 0)) as client:
            client.starttls(context=client_tls())
            client.ehlo("laptop.example")
            return client.docmd("AUTH", f"PLAIN {right}")[0]

    # The account admin sees the lock in the API and can lift it; others cannot.
    await hosting.directory.accounts.create_user(OP, "admin@acme.example", ADMIN_PASSWORD,
                                                 account="Acme")
    await hosting.directory.accounts.create(OP, "Other")
    await hosting.directory.accounts.create_user(OP, "admin@other.example", ADMIN_PASSWORD,
                                                 account="Other")
    lock = f"{API}/addresses/bob@acme.example/login-lock"
    async with httpx.AsyncClient(base_url=hosting.web, timeout=30) as http:
        admin = await login(http, "admin@acme.example", ADMIN_PASSWORD)
        stranger = await login(http, "admin@other.example", ADMIN_PASSWORD)
        state = await ok(http.get(lock, headers=admin))
        assert state["email"] == "bob@acme.example" and state["locked_seconds"] > 0
        assert await asyncio.to_thread(right_password) == 454  # locked from anywhere
        await error(http.get(lock, headers=stranger), 404)
        await error(http.delete(lock, headers=stranger), 404)
        assert (await ok(http.delete(lock, headers=admin)))["locked_seconds"] == 0

    assert await asyncio.to_thread(right_password) == 235


async def test_implicit_tls_port_and_pop3_read_back(hosting: Hosting) -> None:
    def send() -> None:
        with smtplib.SMTP_SSL("127.0.0.1", hosting.submissions, timeout=30,
                              context=client_tls()) as client:
            client.login("bob@acme.example", PASSWORD)
            client.sendmail("bob@acme.example", ["ann@acme.example"],
                            message("bob@acme.example", "ann@acme.example", "Over 465",
                                    "First line.\r\n.hidden dot line\r\n"))

    await asyncio.to_thread(send)
    await eventually(lambda: hosting.inbox("ann@acme.example"))

    def read(port: int, implicit: bool) -> tuple[bytes, list[bytes]]:
        if implicit:
            pop = poplib.POP3_SSL("127.0.0.1", port, timeout=30, context=client_tls())
        else:
            pop = poplib.POP3("127.0.0.1", port, timeout=30)
            pop.stls(context=client_tls())
        try:
            pop.user("ann@acme.example")
            pop.pass_(PASSWORD)
            count, _ = pop.stat()
            assert count == 1
            _, lines, _ = pop.retr(1)
            uidl = pop.uidl(1)
        finally:
            pop.quit()
        return uidl, lines

    uidl_plain, lines = await asyncio.to_thread(read, hosting.pop3, False)
    uidl_tls, _ = await asyncio.to_thread(read, hosting.pop3s, True)
    assert b"Subject: Over 465" in lines and b".hidden dot line" in lines
    assert uidl_plain == uidl_tls  # stable across sessions and ports


async def test_submitted_mail_is_dkim_signed_and_verifies_against_dns(hosting: Hosting
                                                                      ) -> None:
    def send() -> None:
        with hosting.smtp() as client:
            client.login("ann@acme.example", PASSWORD)
            client.sendmail("ann@acme.example", ["friend@far.example"],
                            message("ann@acme.example", "friend@far.example", "Signed"))

    await asyncio.to_thread(send)
    [out] = await hosting.remote.wait_for(1)
    assert out.data.startswith(b"DKIM-Signature:") or b"\nDKIM-Signature:" in out.data
    record = await DkimService(hosting.directory.db).record(OP, "acme.example")
    strings = " ".join(f'"{part}"' for part in record.strings)
    with dns_server(f"{record.name}. 300 IN TXT {strings}\n") as nameserver:
        assert await verify(out.data, nameservers=[nameserver])
        tampered = out.data.replace(b"Subject: Signed", b"Subject: Changed")
        assert not await verify(tampered, nameservers=[nameserver])


async def test_the_extra_submission_port_also_demands_auth(hosting: Hosting) -> None:
    """Like port 25 on a hosting host: outgoing mail needs AUTH there too."""

    def session() -> tuple[tuple[int, bytes], bool]:
        with smtplib.SMTP("127.0.0.1", hosting.submission_alt, timeout=30) as client:
            client.ehlo("laptop.example")
            refused = client.mail("ann@acme.example")
            client.rset()
            client.starttls(context=client_tls())
            client.ehlo("laptop.example")
            client.login("ann@acme.example", PASSWORD)
            client.sendmail("ann@acme.example", ["friend@far.example"],
                            message("ann@acme.example", "friend@far.example", "Port 25"))
            return refused, True

    refused, sent = await asyncio.to_thread(session)
    assert refused[0] == 530 and sent
    [out] = await hosting.remote.wait_for(1)
    assert out.recipients == ["friend@far.example"]


async def test_pop3_says_a_locked_login_is_temporary(hosting: Hosting) -> None:
    def attempts() -> list[str]:
        answers = []
        pop = poplib.POP3("127.0.0.1", hosting.pop3, timeout=30)
        pop.stls(context=client_tls())
        for password in ["wrong"] * hosting.settings.auth_failures_per_window + [PASSWORD]:
            pop.user("bob@acme.example")
            try:
                pop.pass_(password)
                answers.append("+OK")
            except poplib.error_proto as exc:
                answers.append(exc.args[0].decode())
        pop.quit()
        return answers

    answers = await asyncio.to_thread(attempts)
    assert all(a.startswith("-ERR [AUTH]") for a in answers[:-1])
    assert answers[-1].startswith("-ERR [SYS/TEMP] Too many failed logins")


async def test_a_local_sub_address_is_delivered_to_its_mailbox(hosting: Hosting) -> None:
    def send() -> None:
        with hosting.smtp() as client:
            client.login("ann@acme.example", PASSWORD)
            client.sendmail("ann@acme.example", ["bob+project@acme.example"],
                            message("ann@acme.example", "bob+project@acme.example", "Tagged"))

    await asyncio.to_thread(send)
    [_tagged] = await eventually(lambda: hosting.inbox("bob@acme.example"))
    assert hosting.remote.received == []  # no bounce went out
