"""A running hosting tier for client tests: submission, POP3, IMAP and delivery roles over a
domain with two mailboxes and two aliases; mail to other domains goes to a sink."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from mail_helpers import Sink, mail_roles, mail_settings, sink_server

from mailward.app import Services
from mailward.config import Settings
from mailward.db import AddressList
from mailward.directory import Actor
from mailward.store import StoreError, open_store

OP = Actor.operator()
PASSWORD = "Mailbox-pass-77"
ROLES = frozenset({"submission", "pop3", "imap", "delivery", "web"})


def client_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the server's certificate is self-signed
    return context


@dataclass
class Hosting:
    settings: Settings
    directory: Services
    submission: int
    submissions: int
    pop3: int
    pop3s: int
    web: str
    remote: Sink  # where mail to other domains goes (smarthost)
    submission_alt: int  # e.g. port 25 on a hosting host
    imap: int
    imaps: int

    def smtp(self) -> smtplib.SMTP:
        client = smtplib.SMTP("127.0.0.1", self.submission, timeout=30)
        client.ehlo("laptop.example")
        client.starttls(context=client_tls())
        client.ehlo("laptop.example")
        return client

    async def inbox(self, mailbox: str) -> list:
        store = open_store(self.settings, self.directory.db)
        try:
            return await store.messages(mailbox, "INBOX")
        except StoreError:
            return []


def ports(url: str) -> list[int]:
    return [int(part.rsplit(":", 1)[1]) for part in url.split(", ")]


@pytest.fixture
async def hosting(settings: Settings, directory: Services) -> AsyncIterator[Hosting]:
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "acme.example", account="Acme", hosting=True)
    await directory.servers.auto_configure_hosting(OP, "acme.example")
    await directory.bulk.add_lines(OP, [
        f"ann@acme.example|{PASSWORD}", f"bob@acme.example|{PASSWORD}",
        "sales@acme.example|ann@acme.example|relay",
        "other@acme.example|bob@acme.example|relay",
    ], AddressList.NO_FILTER)
    async with sink_server() as remote:
        configured = mail_settings(settings, relay_host=remote.address, port_submission_alt=0)
        async with mail_roles(configured, ROLES) as urls:
            submission, submissions, alt = ports(urls["submission"])
            pop3, pop3s = ports(urls["pop3"])
            imap, imaps = ports(urls["imap"])
            yield Hosting(configured, Services(directory.db, configured), submission,
                          submissions, pop3, pop3s, urls["web"], remote, alt, imap, imaps)
