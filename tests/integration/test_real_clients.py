"""Real mail clients from Debian against our listeners: swaks for SMTP submission (STARTTLS
+ AUTH) and fetchmail for POP3 (STLS). Installed by scripts/ensure-mail-clients."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

from hosting_helpers import PASSWORD, Hosting
from mail_helpers import eventually


def run(*command: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=cwd,
                            env={**os.environ, "HOME": str(cwd or Path.cwd())})
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result


async def test_swaks_submits_with_starttls_and_auth(hosting: Hosting) -> None:
    result = await asyncio.to_thread(
        run, "swaks", "--server", f"127.0.0.1:{hosting.submission}", "--tls",
        "--auth", "PLAIN", "--auth-user", "ann@acme.example", "--auth-password", PASSWORD,
        "--from", "ann@acme.example", "--to", "bob@acme.example",
        "--header", "From: ann@acme.example", "--header", "Subject: via swaks",
        "--ehlo", "laptop.example")
    assert "235 2.7.0" in result.stdout and "250 2.0.0 Ok: queued as" in result.stdout
    [info] = await eventually(lambda: hosting.inbox("bob@acme.example"))
    assert info.size > 0


async def test_swaks_is_refused_a_foreign_sender(hosting: Hosting) -> None:
    def attempt() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["swaks", "--server", f"127.0.0.1:{hosting.submission}", "--tls",
             "--auth", "LOGIN", "--auth-user", "ann@acme.example", "--auth-password",
             PASSWORD, "--from", "ceo@elsewhere.example", "--to", "bob@acme.example"],
            capture_output=True, text=True, timeout=60)

    result = await asyncio.to_thread(attempt)
    assert result.returncode != 0
    assert "553 5.7.1" in result.stdout


async def test_fetchmail_downloads_over_pop3_with_stls(hosting: Hosting, tmp_path: Path
                                                       ) -> None:
    await asyncio.to_thread(
        run, "swaks", "--server", f"127.0.0.1:{hosting.submission}", "--tls",
        "--auth", "PLAIN", "--auth-user", "bob@acme.example", "--auth-password", PASSWORD,
        "--from", "bob@acme.example", "--to", "ann@acme.example",
        "--header", "From: bob@acme.example", "--header", "Subject: for fetchmail",
        "--body", "line one\n.leading dot\nline three")
    await eventually(lambda: hosting.inbox("ann@acme.example"))
    out = tmp_path / "fetched"
    out.mkdir()
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        "set no bouncemail\n"
        f"poll 127.0.0.1 service {hosting.pop3} protocol pop3 auth password\n"
        f'  user "ann@acme.example" there with password "{PASSWORD}"\n'
        "  sslproto TLS1.2+ no sslcertck\n"
        f'  mda "/bin/sh -c \'cat > {out}/message-$$\'"\n'
        "  fetchall nokeep\n"
    )
    rc.chmod(0o600)
    result = await asyncio.to_thread(run, "fetchmail", "-f", str(rc), "-v", "--nodetach",
                                     cwd=tmp_path)
    assert "STLS" in result.stdout + result.stderr
    [fetched] = list(out.iterdir())
    data = fetched.read_bytes()
    assert b"Subject: for fetchmail" in data and b"\n.leading dot" in data
    # nokeep: fetchmail deleted it on the server (applied at QUIT).
    assert await hosting.inbox("ann@acme.example") == []
