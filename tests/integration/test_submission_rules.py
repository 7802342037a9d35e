"""Submission hardening over real sockets (issue 16): header rules for submitted mail,
send-as for the login and its forwarders only (not auto-cc), no mailbox login while the
domain's hosting is off, connection caps and the pre-login idle timeout."""

from __future__ import annotations

import asyncio
import imaplib
import poplib
import smtplib
import socket

from hosting_helpers import OP, PASSWORD, Hosting, client_tls, ports
from mail_helpers import mail_roles, mail_settings

from mailward.app import Services
from mailward.config import Settings
from mailward.db import AddressList

ANN = "ann@acme.example"


def submitted(*header_lines: str, body: str = "Hello.\r\n") -> bytes:
    return ("\r\n".join(header_lines) + "\r\n\r\n" + body).encode()


def send_all(hosting: Hosting, messages: dict[str, tuple[str, bytes]]
             ) -> dict[str, tuple[int, bytes]]:
    """Log in as Ann and send each (envelope sender, message) in one session; name →
    the reply at MAIL if refused there, else the reply to DATA."""
    answers = {}
    with hosting.smtp() as client:
        client.login(ANN, PASSWORD)
        for name, (sender, data) in messages.items():
            code, text = client.mail(sender)
            if code == 250:
                client.rcpt("friend@far.example")
                code, text = client.data(data)
            else:
                client.rset()
            answers[name] = (code, text)
    return answers


async def test_submitted_headers_must_be_unambiguous(hosting: Hosting) -> None:
    """Exactly one From:, at most one Sender:, no whitespace (or anything else) between a
    field name and its colon; each refusal is 550 5.6.0 with the reason and the session
    goes on (the last, well-formed message is sent)."""
    to, subject = "To: friend@far.example", "Subject: hi"
    answers = await asyncio.to_thread(send_all, hosting, {
        "two From": (ANN, submitted(f"From: {ANN}", "From: boss@acme.example", to)),
        "no From": (ANN, submitted(to, subject)),
        "two Sender": (ANN, submitted(f"From: {ANN}", f"Sender: {ANN}", f"Sender: {ANN}",
                                      to)),
        "space before colon": (ANN, submitted(f"From: {ANN}", "From : boss@acme.example",
                                              to)),
        "tab before colon": (ANN, submitted(f"From: {ANN}", to, "Subject\t: hi")),
        "no colon": (ANN, submitted(f"From: {ANN}", "Garbage line", "From: x@y.example")),
        "folded From": (ANN, submitted(f"From: Ann\r\n <{ANN}>", f"Sender: {ANN}", to,
                                       subject)),
    })
    for name in ("two From", "no From", "two Sender", "space before colon",
                 "tab before colon", "no colon"):
        code, text = answers[name]
        assert code == 550 and text.startswith(b"5.6.0 "), (name, answers[name])
    assert b"exactly one From:" in answers["two From"][1]
    assert b"exactly one From:" in answers["no From"][1]
    assert b"at most one Sender:" in answers["two Sender"][1]
    assert b"Whitespace before the colon in header field 'From '" in answers[
        "space before colon"][1]
    assert b"Whitespace before the colon" in answers["tab before colon"][1]
    assert answers["folded From"][0] == 250
    [out] = await hosting.remote.wait_for(1)
    assert out.sender == ANN


async def test_send_as_forwarders_only_not_auto_cc(hosting: Hosting) -> None:
    """Ann may send as sales@ (a forwarder to her), not as carol@ (a mailbox that copies
    its mail to her: auto-cc grants no send-as), neither in MAIL FROM nor in From: or
    Sender:."""
    directory = hosting.directory
    await directory.bulk.add_lines(OP, [f"carol@acme.example|{PASSWORD}"],
                                   AddressList.NO_FILTER)
    await directory.bulk.add_lines(OP, [f"carol@acme.example|{ANN}|relay"],
                                   AddressList.NO_FILTER)  # now auto-cc to Ann
    to = "To: friend@far.example"
    answers = await asyncio.to_thread(send_all, hosting, {
        "auto-cc envelope": ("carol@acme.example",
                             submitted("From: carol@acme.example", to)),
        "auto-cc From": (ANN, submitted("From: carol@acme.example", to)),
        "auto-cc Sender": (ANN, submitted(f"From: {ANN}", "Sender: carol@acme.example", to)),
        "forwarder": ("sales@acme.example",
                      submitted("From: sales@acme.example", f"Sender: {ANN}", to)),
    })
    assert answers["auto-cc envelope"][0] == 553
    assert answers["auto-cc From"] == (553, b"5.7.1 From: header address not owned by the "
                                            b"authenticated user")
    assert answers["auto-cc Sender"][0] == 553
    assert answers["forwarder"][0] == 250
    [out] = await hosting.remote.wait_for(1)
    assert out.sender == "sales@acme.example"


async def test_no_mailbox_login_while_hosting_is_off(hosting: Hosting) -> None:
    """Once a domain's hosting is switched off, its mailboxes cannot log in to POP3, IMAP
    or submission, and the refusal reads exactly like a wrong password's."""
    directory = hosting.directory
    await directory.domains.create(OP, "beta.example", account="Acme", hosting=True)
    await directory.bulk.add_lines(OP, [f"dan@beta.example|{PASSWORD}"],
                                   AddressList.NO_FILTER)

    def pop3(password: str) -> str:
        pop = poplib.POP3("127.0.0.1", hosting.pop3, timeout=30)
        pop.stls(context=client_tls())
        try:
            pop.user("dan@beta.example")
            return pop.pass_(password).decode()
        except poplib.error_proto as exc:
            return exc.args[0].decode()
        finally:
            pop.quit()

    def imap(password: str) -> str:
        client = imaplib.IMAP4("127.0.0.1", hosting.imap, timeout=30)
        client.starttls(ssl_context=client_tls())
        try:
            return client.login("dan@beta.example", password)[0]
        except imaplib.IMAP4.error as exc:
            return str(exc)
        finally:
            client.logout()

    def submission(password: str) -> int:
        with hosting.smtp() as client:
            try:
                return client.login("dan@beta.example", password)[0]
            except smtplib.SMTPAuthenticationError as exc:
                return exc.smtp_code

    assert (await asyncio.to_thread(pop3, PASSWORD)).startswith("+OK")
    assert await asyncio.to_thread(imap, PASSWORD) == "OK"
    await directory.domains.set_hosting(OP, "beta.example", False)
    wrong_pop3 = await asyncio.to_thread(pop3, "wrong")
    assert wrong_pop3.startswith("-ERR")
    assert await asyncio.to_thread(pop3, PASSWORD) == wrong_pop3
    assert await asyncio.to_thread(imap, PASSWORD) == await asyncio.to_thread(imap, "wrong")
    assert await asyncio.to_thread(submission, PASSWORD) == 535


def greeting(port: int, source: str = "127.0.0.1") -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30,
                                    source_address=(source, 0))
    return sock, sock.recv(1024)


def until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while chunk := sock.recv(1024):
        received += chunk
    sock.close()
    return received


async def test_submission_caps_and_pre_login_timeout(settings: Settings,
                                                     directory: Services) -> None:
    """Submission refuses connections over its caps with 421; a session that has not
    logged in is closed after ``preauth_timeout_seconds`` of silence while a logged-in
    one (same age) lives on under ``smtp_timeout_seconds``, and its slot is freed."""
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "acme.example", account="Acme", hosting=True)
    await directory.bulk.add_lines(OP, [f"{ANN}|{PASSWORD}"], AddressList.NO_FILTER)
    configured = mail_settings(settings, preauth_timeout_seconds=5, smtp_timeout_seconds=120,
                               max_connections_per_ip_submission=3, port_submission_alt=0)
    async with mail_roles(configured, frozenset({"submission"})) as urls:
        port = ports(urls["submission"])[0]
        idle, banner = await asyncio.to_thread(greeting, port)
        assert banner.startswith(b"220 ")

        def logged_in() -> smtplib.SMTP:
            client = smtplib.SMTP("127.0.0.1", port, timeout=30)
            client.starttls(context=client_tls())
            client.login(ANN, PASSWORD)
            return client

        user = await asyncio.to_thread(logged_in)
        third, _ = await asyncio.to_thread(greeting, port)  # 3 of 3 from 127.0.0.1
        over, refusal = await asyncio.to_thread(greeting, port)
        assert refusal == b"421 4.7.0 mx.mailward.test too many connections from your " \
                          b"address\r\n"
        assert await asyncio.to_thread(until_closed, over) == b""
        assert await asyncio.to_thread(until_closed, idle) == b""  # pre-login timeout
        assert (await asyncio.to_thread(user.noop))[0] == 250  # logged in: still here
        again, banner = await asyncio.to_thread(greeting, port)  # idle's slot is free
        assert banner.startswith(b"220 ")
        for sock in (third, again):
            sock.close()
        await asyncio.to_thread(user.quit)
