"""mbsync (Debian's isync) keeps a local Maildir and our IMAP server in sync, both ways.

mbsync runs over implicit TLS (993 style) and trusts exactly the server's self-signed
certificate. Installed by scripts/ensure-mail-clients; the test fails without it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

from hosting_helpers import PASSWORD, Hosting
from mail_helpers import message

from mailward.store import DELETED, FLAGGED, SEEN, MailStore, open_store

USER = "bob@acme.example"


def _config(hosting: Hosting, local: Path) -> str:
    cert, _ = hosting.settings.tls_files
    return f"""\
IMAPAccount bob
Host 127.0.0.1
Port {hosting.imaps}
User {USER}
Pass "{PASSWORD}"
SSLType IMAPS
CertificateFile {cert}

IMAPStore remote
Account bob

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel bob
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
Sync All
"""


def _mbsync(config: Path) -> str:
    result = subprocess.run(["mbsync", "-c", str(config), "-a"], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "HOME": str(config.parent)})
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout + result.stderr


def _local(local: Path, folder: str) -> dict[str, str]:
    """Subject -> maildir flags of each message in a local folder."""
    found = {}
    for sub in ("cur", "new"):
        for path in (local / folder / sub).iterdir():
            subject = next(line for line in path.read_bytes().splitlines()
                           if line.startswith(b"Subject: "))[9:].decode()
            found[subject] = path.name.rsplit(":2,", 1)[1] if ":2," in path.name else ""
    return found


async def _remote(store: MailStore, folder: str) -> dict[str, frozenset[str]]:
    """Subject -> flags of each message in a folder of our store."""
    found = {}
    for info in await store.messages(USER, folder):
        raw = await store.fetch(USER, folder, info.uid)
        subject = next(line for line in raw.splitlines() if line.startswith(b"Subject: "))
        found[subject[9:].decode()] = info.flags
    return found


def _write_local(local: Path, folder: str, name: str, subject: str, flags: str = "") -> None:
    for sub in ("cur", "new", "tmp"):
        (local / folder / sub).mkdir(parents=True, exist_ok=True)
    sub = "cur" if flags else "new"
    suffix = f":2,{flags}" if flags else ""
    (local / folder / sub / f"{name}{suffix}").write_bytes(
        message("bob@acme.example", "x@else.example", subject))


async def test_mbsync_syncs_a_mailbox_both_ways(hosting: Hosting, tmp_path: Path) -> None:
    store = open_store(hosting.settings, hosting.directory.db)
    await store.deliver(USER, message("ann@acme.example", USER, "remote one"))
    await store.deliver(USER, message("ann@acme.example", USER, "remote two"),
                        flags=frozenset({FLAGGED}))
    local = tmp_path / "Mail"
    _write_local(local, "INBOX", "1700000000.1.laptop", "local draft")
    _write_local(local, "Projects", "1700000000.2.laptop", "project plan", "S")
    config = tmp_path / "mbsyncrc"
    config.write_text(_config(hosting, local))

    await asyncio.to_thread(_mbsync, config)

    # Down: both remote messages, flags kept; the special folders appear locally.
    assert _local(local, "INBOX") == {"remote one": "", "remote two": "F", "local draft": ""}
    assert {"Drafts", "Sent", "Trash", "Junk", "Projects"} <= {p.name for p in local.iterdir()}
    # Up: the local message and the local folder (created on the server).
    remote = await _remote(store, "INBOX")
    assert set(remote) == {"remote one", "remote two", "local draft"}
    assert remote["remote two"] == frozenset({FLAGGED})
    assert await _remote(store, "Projects") == {"project plan": frozenset({SEEN})}

    # Second round: a flag changed locally, a message expunged on the server, new mail.
    [one] = [p for p in (local / "INBOX").glob("[cn]e[uw]/*")
             if b"Subject: remote one" in p.read_bytes()]
    one.rename(local / "INBOX" / "cur" / (one.name.split(":2,")[0] + ":2,S"))
    [two] = [i for i in await store.messages(USER, "INBOX")
             if (await store.fetch(USER, "INBOX", i.uid)).find(b"remote two") > 0]
    await store.set_flags(USER, "INBOX", two.uid, two.flags | {DELETED})
    await store.expunge(USER, "INBOX", [two.uid])
    await store.deliver(USER, message("ann@acme.example", USER, "remote three"))

    await asyncio.to_thread(_mbsync, config)

    assert _local(local, "INBOX") == {"remote one": "S", "local draft": "", "remote three": ""}
    remote = await _remote(store, "INBOX")
    assert remote == {"remote one": frozenset({SEEN}), "local draft": frozenset(),
                      "remote three": frozenset()}

    # Nothing changed: a third run leaves both sides as they are.
    await asyncio.to_thread(_mbsync, config)
    assert set(_local(local, "INBOX")) == set(remote)
    assert await _remote(store, "INBOX") == remote
