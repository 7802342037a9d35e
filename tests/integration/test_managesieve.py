"""ManageSieve (RFC 5804) over real sockets, on the directory's mailbox logins and the real
script storage: sievelib's own client over STARTTLS, and raw lines for the grammar's edges."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mail_helpers import mail_roles, mail_settings, port_of
from sievelib.managesieve import Client

from mailward.app import Services
from mailward.config import Settings
from mailward.db import AddressList
from mailward.directory import Actor
from mailward.directory.mail_login import MailLogin
from mailward.managesieve import LoginDeferred, start_managesieve
from mailward.net.limits import ConnectionLimiter
from mailward.sieve.interpreter import Limits
from mailward.sieve.scripts import MAX_SCRIPT_BYTES, MAX_SCRIPTS, ScriptInfo, SieveScripts
from mailward.smtp.tls import ensure_certificate, server_context

OP = Actor.operator()
ANN, BOB = "ann@acme.example", "bob@acme.example"
PASSWORD = "Mailbox-pass-77"
RULES = 'require ["fileinto"];\nif header :contains "subject" "invoice" {\n' \
        '  fileinto "Invoices";\n}\n'


class DirectoryLogin:
    """The directory's mailbox login as the managesieve role asks for it."""

    def __init__(self, login: MailLogin) -> None:
        self.login = login

    async def authenticate(self, login: str, password: str, peer: str) -> str | None:
        result = await self.login.authenticate(login, password, peer, "managesieve")
        if result.retry_after:
            raise LoginDeferred(f"Too many failed logins; try again in "
                                f"{result.retry_after} seconds")
        return result.mailbox


async def mailboxes(services: Services) -> None:
    await services.accounts.create(OP, "Acme")
    await services.domains.create(OP, "acme.example", account="Acme", hosting=True)
    await services.bulk.add_lines(OP, [f"{ANN}|{PASSWORD}", f"{BOB}|{PASSWORD}"],
                                  AddressList.NO_FILTER)


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem"
    ensure_certificate(cert, key, "127.0.0.1")
    return cert, key


@contextlib.asynccontextmanager
async def managesieve(services: Services, tls_files: tuple[Path, Path] | None = None,
                      scripts: SieveScripts | None = None, **options: Any
                      ) -> AsyncIterator[int]:
    """A ManageSieve listener on 127.0.0.1 port 0; yields its port."""
    sock = socket.create_server(("127.0.0.1", 0))
    server = await start_managesieve(
        authenticator=DirectoryLogin(services.mail_login),
        scripts=scripts or SieveScripts(services.db), sock=sock, hostname="sieve.example",
        tls_context=server_context(*tls_files) if tls_files else None, **options)
    try:
        yield sock.getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def tls_client(cert: Path, port: int) -> Client:
    """sievelib's client, trusting our self-signed certificate for its STARTTLS."""
    context = ssl.create_default_context(cafile=str(cert))

    class TrustingClient(Client):
        def _Client__enable_ssl(self, **_: Any) -> None:
            self.sock = context.wrap_socket(self.sock, server_hostname="127.0.0.1")

    return TrustingClient("127.0.0.1", port)


def plain(login: str, password: str) -> str:
    return base64.b64encode(f"\0{login}\0{password}".encode()).decode()


class Wire:
    """A raw client: send bytes, read lines and whole responses."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, port: int) -> AsyncIterator[Wire]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        wire = cls(reader, writer)
        try:
            yield wire
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def response(self) -> tuple[list[bytes], bytes]:
        """The lines before the final ``OK``/``NO``/``BYE`` line, and that line; a
        literal's octets are one item of the lines."""
        lines: list[bytes] = []
        while True:
            async with asyncio.timeout(10):
                line = await self.reader.readline()
            assert line, "the server closed the connection"
            literal = re.fullmatch(rb"(.*)\{(\d+)\}\r\n", line)
            if literal is not None:
                async with asyncio.timeout(10):
                    data = await self.reader.readexactly(int(literal.group(2)))
                    rest = await self.reader.readline()
                line = literal.group(1) + data + rest
                if not literal.group(1):
                    lines.append(data)
                    continue
            if re.match(rb"(OK|NO|BYE)\b", line):
                return lines, line.rstrip(b"\r\n")
            lines.append(line.rstrip(b"\r\n"))

    async def command(self, data: bytes) -> bytes:
        self.writer.write(data)
        return (await self.response())[1]

    async def eof(self) -> bool:
        async with asyncio.timeout(10):
            return await self.reader.read() == b""

    async def login(self) -> None:
        await self.response()  # the greeting
        assert await self.command(f'AUTHENTICATE "PLAIN" "{plain(ANN, PASSWORD)}"\r\n'
                                  .encode()) == b'OK "Logged in"'


async def test_sievelib_edits_scripts_over_starttls(
    directory: Services, tls_files: tuple[Path, Path]
) -> None:
    await mailboxes(directory)
    storage = SieveScripts(directory.db)
    async with managesieve(directory, tls_files) as port:
        def ann_session() -> dict[str, Any]:
            client = tls_client(tls_files[0], port)
            seen: dict[str, Any] = {"login": client.connect(ANN, PASSWORD, starttls=True)}
            seen["implementation"] = client.get_implementation()
            seen["sieve"] = client.get_sieve_capabilities()
            seen["room"] = client.havespace("rules", len(RULES))
            seen["too big"] = (client.havespace("rules", MAX_SCRIPT_BYTES + 1),
                               client.errcode)
            seen["put"] = client.putscript("rules", RULES)
            seen["bad put"] = (client.putscript("broken", 'require ["fileinto"];\n\n'
                                                'fileinto "x"\nstop;\n'), client.errmsg)
            seen["unsupported"] = (client.checkscript('require ["enotify"];\n'),
                                   client.errmsg)
            seen["check"] = client.checkscript(RULES)
            seen["active"] = client.setactive("rules")
            seen["list"] = client.listscripts()
            seen["get"] = client.getscript("rules")
            seen["delete active"] = (client.deletescript("rules"), client.errcode)
            client.putscript("other", "keep;\n")
            seen["rename taken"] = (client.renamescript("other", "rules"), client.errcode)
            seen["rename"] = client.renamescript("rules", "filters")
            seen["get missing"] = (client.getscript("rules"), client.errcode)
            seen["after"] = client.listscripts()
            client.logout()
            return seen

        seen = await asyncio.to_thread(ann_session)
        assert seen["login"] is True
        assert seen["implementation"] == "mailward"
        assert {"fileinto", "vacation", "envelope", "imap4flags"} <= set(seen["sieve"])
        assert seen["room"] is True
        assert seen["too big"] == (False, b"QUOTA/MAXSIZE")
        assert seen["put"] is True
        assert seen["bad put"][0] is False and b"line " in seen["bad put"][1]
        assert seen["unsupported"][0] is False and b"enotify" in seen["unsupported"][1]
        assert seen["check"] is True and seen["active"] is True
        assert seen["list"] == ("rules", [])
        assert seen["get"].replace("\n", "") == RULES.replace("\n", "")
        assert seen["delete active"] == (False, b"ACTIVE")
        assert seen["rename taken"] == (False, b"ALREADYEXISTS")
        assert seen["rename"] is True
        assert seen["get missing"] == (None, b"NONEXISTENT")
        assert seen["after"] == ("filters", ["other"])
        # the storage delivery reads: the active script, as stored (CRLF from the wire)
        active = await storage.active(ANN)
        assert active is not None and "fileinto \"Invoices\"" in active

        def bob_session() -> tuple[Any, ...]:  # another mailbox sees none of ann's
            client = tls_client(tls_files[0], port)
            assert client.connect(BOB, PASSWORD, starttls=True)
            listing = client.listscripts()
            missing = (client.getscript("filters"), client.errcode)
            client.logout()
            return listing, missing

        assert await asyncio.to_thread(bob_session) == ((None, []), (None, b"NONEXISTENT"))
        assert [s.name for s in await storage.list(BOB)] == []


async def test_authentication_needs_starttls_first(
    directory: Services, tls_files: tuple[Path, Path]
) -> None:
    await mailboxes(directory)
    async with managesieve(directory, tls_files) as port, Wire.open(port) as wire:
        capabilities, ok = await wire.response()
        assert ok.startswith(b"OK")
        assert b'"SASL" ""' in capabilities and b'"STARTTLS"' in capabilities
        assert b'"VERSION" "1.0"' in capabilities
        assert f'"MAXREDIRECTS" "{Limits().max_redirects}"'.encode() in capabilities
        answer = await wire.command(
            f'AUTHENTICATE "PLAIN" "{plain(ANN, PASSWORD)}"\r\n'.encode())
        assert answer.startswith(b"NO (ENCRYPT-NEEDED)")
        assert await wire.command(b"LISTSCRIPTS\r\n") == b'NO "Command not allowed in ' \
                                                         b'this state"'


async def test_wire_grammar_literals_continuation_and_errors(directory: Services) -> None:
    await mailboxes(directory)
    async with managesieve(directory, allow_plaintext_auth=True) as port:
        async with Wire.open(port) as wire:
            capabilities, _ = await wire.response()
            assert b'"SASL" "PLAIN"' in capabilities and b"STARTTLS" not in b"".join(
                capabilities)  # no TLS context: none offered
            assert await wire.command(b"FROBNICATE\r\n") == b'NO "Unknown command FROBNICATE"'
            assert (await wire.command(b'NOOP "t1"\r\n')) == b'OK (TAG "t1") "Done"'
            # AUTHENTICATE without an initial response: an empty challenge, the answer as
            # a literal
            wire.writer.write(b'AUTHENTICATE "PLAIN"\r\n')
            assert await wire.reader.readline() == b'""\r\n'
            answer = plain(ANN, PASSWORD).encode()
            assert await wire.command(b"{%d+}\r\n%s\r\n" % (len(answer), answer)) \
                == b'OK "Logged in"'
            # a synchronising literal {n} is read the same way
            script = b"keep;\r\n"
            assert await wire.command(b'PUTSCRIPT "s1" {%d}\r\n%s\r\n'
                                      % (len(script), script)) == b'OK "Script stored"'
            # a malformed literal marker: NO, and the session goes on
            assert (await wire.command(b'PUTSCRIPT "s2" {abc}\r\n')).startswith(b"NO")
            # a parse error of the script names its line; nothing is stored
            bad = b'require ["fileinto"];\r\nif true {\r\n  fileinto "x"\r\n}\r\n'
            answer_no = await wire.command(b'PUTSCRIPT "s3" {%d+}\r\n%s\r\n'
                                           % (len(bad), bad))
            assert re.match(rb'NO "line \d+: ', answer_no), answer_no
            # a literal over the script limit is dropped; the session stays in step
            big = b"#" * (MAX_SCRIPT_BYTES + 1)
            assert await wire.command(b'PUTSCRIPT "big" {%d+}\r\n%s\r\n'
                                      % (len(big), big)) \
                == b'NO (QUOTA/MAXSIZE) "Script larger than 65536 octets"'
            wire.writer.write(b"LISTSCRIPTS\r\n")
            listing, ok = await wire.response()
            assert listing == [b'"s1"'] and ok.startswith(b"OK")
            assert (await wire.command(b'GETSCRIPT "s1"\r\n')) == b'OK "Getscript completed"'
            assert await wire.command(b'SETACTIVE "nope"\r\n') \
                == b"NO (NONEXISTENT) \"no script 'nope'\""
            assert await wire.command(b"UNAUTHENTICATE\r\n") \
                == b'OK "Logged out; authenticate again"'
            assert (await wire.command(b"LISTSCRIPTS\r\n")).startswith(b"NO")
            assert await wire.command(b"LOGOUT\r\n") == b'OK "Logout completed"'
            assert await wire.eof()

        async with Wire.open(port) as wire:  # an overlong line ends the session
            await wire.response()
            assert (await wire.command(b"NOOP " + b"x" * 10000 + b"\r\n")) \
                == b'BYE "Line too long"'
            assert await wire.eof()

        async with Wire.open(port) as wire:  # so does a large literal before login
            await wire.response()
            assert await wire.command(b"CHECKSCRIPT {100000+}\r\n") \
                == b'BYE "Literal too large"'
            assert await wire.eof()


async def test_a_mailbox_holds_a_bounded_number_of_scripts(directory: Services) -> None:
    await mailboxes(directory)
    async with managesieve(directory, allow_plaintext_auth=True) as port, \
            Wire.open(port) as wire:
        await wire.login()
        for number in range(MAX_SCRIPTS):
            assert await wire.command(b'PUTSCRIPT "s%d" "keep;"\r\n' % number) \
                == b'OK "Script stored"'
        assert await wire.command(b'HAVESPACE "s0" 100\r\n') \
            == b'OK "Putscript would succeed"'  # replacing one needs no room
        full = b'NO (QUOTA/MAXSCRIPTS) "At most %d scripts per mailbox"' % MAX_SCRIPTS
        assert await wire.command(b'HAVESPACE "new" 100\r\n') == full
        assert await wire.command(b'PUTSCRIPT "new" "keep;"\r\n') == full
        assert await wire.command(b'HAVESPACE "s0" "100"\r\n') == \
            b'NO "HAVESPACE: Expected a number"'
    assert len(await SieveScripts(directory.db).list(ANN)) == MAX_SCRIPTS


async def test_a_storage_failure_ends_the_session_with_bye(directory: Services) -> None:
    await mailboxes(directory)

    class Unreachable(SieveScripts):
        async def list(self, mailbox: str) -> list[ScriptInfo]:
            raise OSError("database unreachable")

    async with managesieve(directory, scripts=Unreachable(directory.db),
                           allow_plaintext_auth=True) as port, Wire.open(port) as wire:
        await wire.login()
        assert await wire.command(b"LISTSCRIPTS\r\n") \
            == b'BYE (TRYLATER) "Internal error, try again later"'
        assert await wire.eof()


async def test_a_locked_mailbox_is_told_to_try_later(
    settings: Settings, directory: Services
) -> None:
    await mailboxes(directory)
    strict = Services(directory.db, settings.model_copy(
        update={"auth_failures_per_window": 2}))
    async with managesieve(strict, allow_plaintext_auth=True) as port, \
            Wire.open(port) as wire:
        await wire.response()
        for _ in range(2):
            answer = await wire.command(
                f'AUTHENTICATE "PLAIN" "{plain(ANN, "wrong-pass")}"\r\n'.encode())
            assert answer == b'NO "Authentication failed"'
        answer = await wire.command(
            f'AUTHENTICATE "PLAIN" "{plain(ANN, PASSWORD)}"\r\n'.encode())
        assert answer.startswith(b'NO (TRYLATER) "Too many failed logins')


async def test_connection_caps_and_the_preauth_timeout(directory: Services) -> None:
    limiter = ConnectionLimiter(total=5, per_ip=1)
    async with managesieve(directory, limiter=limiter, preauth_timeout=0.5,
                           allow_plaintext_auth=True) as port:
        async with Wire.open(port) as first:
            _, ok = await first.response()
            assert ok.startswith(b"OK")
            async with Wire.open(port) as second:
                _, refused = await second.response()
                assert refused == b'BYE (TRYLATER) "Too many connections from your address"'
                assert await second.eof()
            # the first says nothing: it is sent away once the preauth timeout runs out
            _, bye = await first.response()
            assert bye == b'BYE "Idle timeout, closing connection"'
            assert await first.eof()
        await limiter.wait_drained()


async def test_the_role_serves_sievelib_over_starttls(
    settings: Settings, directory: Services
) -> None:
    """The ``managesieve`` role as ``mailward serve`` runs it: the node's certificate,
    the directory's mailbox login, the scripts delivery reads."""
    await mailboxes(directory)
    settings = mail_settings(settings, port_managesieve=0)
    async with mail_roles(settings, frozenset({"managesieve"})) as urls:
        assert urls["managesieve"].startswith("sieve://127.0.0.1:")
        port = port_of(urls["managesieve"])
        context = ssl.create_default_context(cafile=str(settings.tls_files[0]))

        class TrustingClient(Client):
            def _Client__enable_ssl(self, **_: Any) -> None:
                self.sock = context.wrap_socket(self.sock, server_hostname=settings.node_name)

        def edit() -> tuple[bool, bool, bool]:
            client = TrustingClient("127.0.0.1", port)
            done = (client.connect(ANN, PASSWORD, starttls=True),
                    client.putscript("rules", RULES), client.setactive("rules"))
            client.logout()
            return done

        assert await asyncio.to_thread(edit) == (True, True, True)
    assert "Invoices" in (await directory.sieve.active(ANN) or "")
