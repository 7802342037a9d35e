"""Debian's Dovecot (``dovecot-imapd``) as the reference IMAP server of differential tests.

``dovecot_imap`` runs a private Dovecot: its own config (``/etc/dovecot`` is never read),
IMAP only, on 127.0.0.1 and a free port, no TLS, plaintext LOGIN allowed, one user.
``write_maildir`` stores a corpus so that UIDs follow the list order and INTERNALDATE is the
given date. ``imap_answers`` runs raw IMAP commands and returns the answers in a form meant
to be compared byte for byte between two servers (ours and Dovecot).

Installed by ``scripts/ensure-mail-clients``; without it the tests fail, never skip.

Privileges. Dovecot refuses to touch mail as uid 0 (``userdb returned 0 as uid``, ``Mail
access not allowed for root``), and its login processes refuse to run as root. As root the
mail processes run as ``nobody`` (that uid owns the served Maildir), the login processes as
``dovenull`` (chrooted) and the internal ones (auth...) as ``dovecot``: Debian's users. They
cannot traverse pytest's 0700 temp dirs, so everything Dovecot's children touch (Maildir,
passwd-file, base_dir) lives in a private ``tempfile.mkdtemp`` directory (mode 0711, short
path for the unix sockets), removed afterwards. (A mail chroot would avoid the copy but
breaks iconv: SEARCH then no longer decodes ISO-8859-1 parts.) As a normal user every
Dovecot process runs as that user, without chroots.

Either way Dovecot serves a private *copy* of ``maildir`` (file names and mtimes kept):
Dovecot's own files (``dovecot-uidlist``, ``dovecot.index*``) and whatever a test changes
over IMAP never reach ``maildir``, so the same Maildir can be handed to our server too.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

DOVECOT = "/usr/sbin/dovecot"
HOST = "127.0.0.1"
START_SECONDS = 30.0
STOP_SECONDS = 10.0
IO_SECONDS = 30.0


# -- the Maildir --------------------------------------------------------------------------


def write_maildir(maildir: Path, messages: list[tuple[str, bytes, datetime]]) -> list[Path]:
    """Store ``(name, raw, internal date)`` messages in ``maildir/cur``, in list order.

    Files are named ``<000001>.<name>.mailward:2,`` (no flags). Dovecot gives UIDs to new
    files in the order of the number before the first dot, so the n-th message gets UID n
    in a fresh Maildir. The internal date becomes the file's mtime (and atime), which is
    what Dovecot reports as INTERNALDATE for Maildir. Returns the written paths.
    """
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    paths = []
    for n, (name, raw, date) in enumerate(messages, start=1):
        if date.tzinfo is None:
            raise ValueError(f"{name}: internal date must be timezone-aware")
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", name)
        path = maildir / "cur" / f"{n:06d}.{safe}.mailward:2,"
        path.write_bytes(raw)
        stamp = date.timestamp()
        os.utime(path, (stamp, stamp))
        paths.append(path)
    return paths


# -- the server ---------------------------------------------------------------------------


class DovecotError(RuntimeError):
    """Dovecot did not start, or did not stop; the message carries its log."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _copy_maildir(source: Path, target: Path) -> None:
    """``cp -a`` of a Maildir minus Dovecot's state files: mtimes matter (INTERNALDATE)."""
    shutil.copytree(source, target, copy_function=shutil.copy2,
                    ignore=shutil.ignore_patterns("dovecot*"))
    for sub in ("cur", "new", "tmp"):
        (target / sub).mkdir(exist_ok=True)


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for parent, dirs, files in os.walk(root):
        for name in dirs + files:
            os.chown(os.path.join(parent, name), uid, gid)


def _conf(*, port: int, run_dir: Path, log: Path, passwd: Path, maildir: Path, uid: int,
          gid: int, as_root: bool) -> str:
    """A complete dovecot.conf: nothing is inherited from /etc/dovecot."""
    me, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    # Unprivileged: every process runs as the invoking user, chroots are impossible.
    users = "" if as_root else (
        f"default_internal_user = {me}\n"
        f"default_internal_group = {group}\n"
        f"default_login_user = {me}\n"
        "service imap-urlauth-login {\n  chroot =\n}\n"
    )
    no_chroot = "" if as_root else "  chroot =\n"
    return f"""\
# Written by tests/integration/dovecot_server.py; Dovecot reads nothing else.
base_dir = {run_dir}/base
state_dir = {run_dir}/state
log_path = {log}
instance_name = mailward-test-{port}
listen = {HOST}
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_gid = {gid}
# Maildir++ (LAYOUT default): subfolders are .Name directories inside the Maildir.
mail_location = maildir:{maildir}
# INTERNALDATE is shown in the server's zone: the process runs with TZ=UTC.
import_environment = TZ
{users}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {passwd}
}}
# No auth penalty (delays of 2..15 s for an IP after a failed login): no listener for it.
service anvil {{
{no_chroot}  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
{no_chroot}  inet_listener imap {{
    address = {HOST}
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


def _tail(path: Path, limit: int = 8000) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return text[-limit:]


def _greets(port: int) -> bool:
    """True once a connection to the port is accepted and greeted with ``* OK``."""
    try:
        with socket.create_connection((HOST, port), timeout=2) as conn:
            conn.settimeout(5)
            return conn.makefile("rb").readline().startswith(b"* OK")
    except OSError:
        return False


@contextlib.contextmanager
def dovecot_imap(workdir: Path, *, user: str, password: str, maildir: Path
                 ) -> Iterator[tuple[str, int]]:
    """Run Dovecot serving a copy of ``maildir`` as INBOX of ``user``; yield (host, port).

    ``workdir`` receives ``dovecot.conf``, ``dovecot.log`` (Dovecot's whole log) and
    ``dovecot.stderr``. Startup waits (polling, with a deadline) until the port greets
    ``* OK``; a failed startup, or an exception inside the ``with`` block, carries the log.
    On exit Dovecot gets SIGTERM, then SIGKILL (its whole process group) after
    ``STOP_SECONDS``.
    """
    if not os.access(DOVECOT, os.X_OK):
        raise DovecotError(f"{DOVECOT} is missing: run scripts/ensure-mail-clients")
    for bad in (":", "\n", "\r"):
        if bad in user or bad in password:
            raise ValueError(f"user and password must not contain {bad!r}")
    workdir.mkdir(parents=True, exist_ok=True)
    as_root = os.geteuid() == 0
    if as_root:
        nobody = pwd.getpwnam("nobody")
        uid, gid = nobody.pw_uid, nobody.pw_gid
    else:
        uid, gid = os.getuid(), os.getgid()
    # Short paths (unix sockets live in base_dir), reachable by Dovecot's unprivileged users.
    run_dir = Path(tempfile.mkdtemp(prefix="mailward-dovecot-"))
    run_dir.chmod(0o711)
    try:
        served = run_dir / "Maildir"
        home = run_dir / "home"
        _copy_maildir(maildir, served)
        home.mkdir()
        passwd = run_dir / "passwd"
        passwd.write_text(f"{user}:{{PLAIN}}{password}:{uid}:{gid}::{home}::\n")
        passwd.chmod(0o644)
        if as_root:
            _chown_tree(served, uid, gid)
            os.chown(home, uid, gid)
        with _running(workdir, run_dir, served, passwd, uid, gid, as_root) as port:
            yield HOST, port
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


@contextlib.contextmanager
def _running(workdir: Path, run_dir: Path, served: Path, passwd: Path, uid: int, gid: int,
             as_root: bool) -> Iterator[int]:
    conf = workdir / "dovecot.conf"
    log = workdir / "dovecot.log"
    stderr = workdir / "dovecot.stderr"
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "TZ": "UTC"}
    for attempt in range(3):  # another process may grab the free port before Dovecot binds
        port = _free_port()
        conf.write_text(_conf(port=port, run_dir=run_dir, log=log, passwd=passwd,
                              maildir=served, uid=uid, gid=gid, as_root=as_root))
        log.write_bytes(b"")
        with stderr.open("wb") as err:
            proc = subprocess.Popen([DOVECOT, "-F", "-c", str(conf)], stdin=subprocess.DEVNULL,
                                    stdout=err, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)
        try:
            deadline = time.monotonic() + START_SECONDS
            while proc.poll() is None and time.monotonic() < deadline:
                if _greets(port):
                    break
                time.sleep(0.05)  # polling interval, not synchronisation
            else:
                in_use = "Address already in use" in _tail(log) + _tail(stderr)
                if proc.poll() is not None and in_use and attempt < 2:
                    continue
                raise DovecotError(
                    f"Dovecot did not greet on {HOST}:{port} within {START_SECONDS}s "
                    f"(exit code {proc.poll()})\n--- dovecot.log\n{_tail(log)}\n"
                    f"--- stderr\n{_tail(stderr)}")
            try:
                yield port
            except BaseException as exc:
                exc.add_note(f"--- Dovecot log ({log})\n{_tail(log)}")
                raise
            if proc.poll() is not None:
                raise DovecotError(f"Dovecot exited early (exit code {proc.returncode})\n"
                                   f"{_tail(log)}")
            return
        finally:
            _stop(proc, log)


def _stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    """SIGTERM the master, SIGKILL its process group if it lingers, reap it."""
    ignored = False
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            ignored = True
    # Dovecot's children share the master's process group (its own session): none may linger.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(STOP_SECONDS)
    if ignored:
        raise DovecotError(f"Dovecot ignored SIGTERM for {STOP_SECONDS}s\n{_tail(log)}")


# -- a raw IMAP client for comparisons -----------------------------------------------------


class ImapError(RuntimeError):
    """The connection, login or EXAMINE failed (not: a compared command said NO/BAD)."""


_LITERAL = re.compile(rb"~?\{(\d+)\}\r\n\Z")
_TAGGED = re.compile(rb"(OK|NO|BAD)(?: (\[(?:[^\]\"]|\"(?:[^\"\\]|\\.)*\")*\]))?", re.I)


class _Conn:
    """Line + literal reader/writer over one socket."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
        sock = socket.create_connection((host, port), timeout=IO_SECONDS)
        self.sock = tls.wrap_socket(sock) if tls is not None else sock
        self.file = self.sock.makefile("rb")
        self.tags = 0

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def response(self) -> bytes:
        """One response: a line plus every literal it announces, verbatim (CRLFs kept)."""
        out = b""
        while True:
            line = self.file.readline(1 << 24)
            if not line.endswith(b"\r\n"):
                raise ImapError(f"connection closed or line not CRLF-terminated: {line!r}")
            out += line
            literal = _LITERAL.search(line)
            if literal is None:
                return out
            size = int(literal.group(1))
            data = self.file.read(size)
            if len(data) != size:
                raise ImapError(f"connection closed inside a {size}-byte literal")
            out += data

    def command(self, parts: list[bytes]) -> tuple[list[bytes], bytes]:
        """Send ``parts`` (literal payloads after each ``{n}`` part), return (untagged, tagged).

        ``parts[0]`` is the command text up to the first literal; after each part that ends
        with ``{n}`` the next part is its n-byte payload, sent once the server says ``+``.
        """
        self.tags += 1
        tag = b"M%03d" % self.tags
        untagged: list[bytes] = []
        chunks = [tag + b" " + parts[0], *parts[1:]]
        for i, chunk in enumerate(chunks):
            self.sock.sendall(chunk if i % 2 else chunk + b"\r\n")
            if i % 2 == 0 and i + 1 < len(chunks):  # wait for the continuation request
                while True:
                    answer = self.response()
                    if answer.startswith(b"+"):
                        break
                    if answer.startswith(tag + b" "):
                        return untagged, answer
                    untagged.append(answer)
            elif i % 2 and i + 1 == len(chunks):
                self.sock.sendall(b"\r\n")
        while True:
            answer = self.response()
            if answer.startswith(tag + b" "):
                return untagged, answer
            if not answer.startswith(b"+"):
                untagged.append(answer)


def responses(answer: bytes) -> list[bytes]:
    """Split an ``imap_answers`` answer into its responses (literals stay inside theirs);
    the last item is the normalised status line."""
    out: list[bytes] = []
    pos = 0
    while pos < len(answer):
        start = pos
        while True:
            end = answer.index(b"\r\n", pos) + 2
            literal = _LITERAL.search(answer, pos, end)
            if literal is None:
                pos = end
                break
            pos = end + int(literal.group(1))
        out.append(answer[start:pos])
    return out


def _astring(value: str) -> list[bytes]:
    raw = value.encode()
    if raw and all(0x20 <= b < 0x7F and b not in b'"\\' for b in raw):
        return [b'"' + raw + b'"']
    return [b"{%d}" % len(raw), raw]


def _split_command(command: str) -> list[bytes]:
    """The wire form of ``command``: every word holding non-ASCII becomes a literal.

    A word is a whitespace-separated piece; its leading ``(`` and trailing ``)`` stay
    outside the literal, and surrounding double quotes are dropped (``BODY "Grüße"`` and
    ``BODY Grüße`` both send ``BODY {7}`` + the 7 UTF-8 bytes). ASCII commands go as-is.
    """
    parts: list[bytes] = []
    current = b""
    for i, word in enumerate(command.split(" ")):
        raw = word.encode()
        if i:
            current += b" "
        if raw.isascii():
            current += raw
            continue
        head = raw[: len(raw) - len(raw.lstrip(b"("))]
        tail = raw[len(raw.rstrip(b")")):]
        body = raw[len(head): len(raw) - len(tail)]
        if len(body) >= 2 and body[:1] == body[-1:] == b'"':
            body = body[1:-1]
        parts += [current + head + b"{%d}" % len(body), body]
        current = tail
    return [*parts, current] if current or not parts else parts


def _tagged_status(tagged: bytes) -> bytes:
    """``M001 OK [CODE] text\\r\\n`` -> ``OK [CODE]\\r\\n``: the human text is dropped."""
    rest = tagged.split(b" ", 1)[1] if b" " in tagged else b""
    match = _TAGGED.match(rest)
    if match is None:
        return rest
    status = match.group(1).upper()
    return (status + b" " + match.group(2) if match.group(2) else status) + b"\r\n"


def imap_answers(host: str, port: int, user: str, password: str, commands: list[str], *,
                 tls: ssl.SSLContext | None = None) -> list[bytes]:
    """Log in, ``EXAMINE INBOX`` (read-only: no \\Seen or \\Recent side effects), run each
    raw command, and return one normalised answer per command.

    A command is IMAP text without tag and CRLF, e.g. ``"UID FETCH 1:* (ENVELOPE)"``,
    ``"UID FETCH 3 (BODY.PEEK[1.2.MIME])"`` or ``"UID SEARCH CHARSET UTF-8 BODY Grüße"``;
    words holding non-ASCII characters are sent as synchronising literals (see
    ``_split_command``).

    Normalisation (the whole of it): the answer is the concatenation of every untagged
    response the server sent for the command, byte for byte as received (each line with
    its CRLF, each literal's ``{n}`` header and payload included, in server order),
    followed by one last line: the tagged status word upper-cased plus its response code
    if any (``OK\\r\\n``, ``NO [BADCHARSET (UTF-8)]\\r\\n``); the tag and the human-readable
    text of the tagged line are dropped. Continuation requests (``+ ...``) are dropped.
    Nothing else is touched: no reordering of FETCH items, no case folding.
    With ``tls`` the connection is TLS from the start (port 993 style).
    """
    conn = _Conn(host, port, tls)
    try:
        greeting = conn.response()
        if not greeting.startswith(b"* OK"):
            raise ImapError(f"greeting: {greeting!r}")
        _, tagged = conn.command(_join([b"LOGIN "], _astring(user), [b" "], _astring(password)))
        if not _is_ok(tagged):
            raise ImapError(f"LOGIN failed: {tagged!r}")
        untagged, tagged = conn.command([b"EXAMINE INBOX"])
        if not _is_ok(tagged):
            raise ImapError(f"EXAMINE INBOX failed: {tagged!r} {untagged!r}")
        answers = []
        for command in commands:
            untagged, tagged = conn.command(_split_command(command))
            answers.append(b"".join(untagged) + _tagged_status(tagged))
        with contextlib.suppress(OSError, ImapError):
            conn.command([b"LOGOUT"])
        return answers
    finally:
        conn.close()


def _is_ok(tagged: bytes) -> bool:
    return _tagged_status(tagged).startswith(b"OK")


def _join(*pieces: list[bytes]) -> list[bytes]:
    """Concatenate part lists in ``_Conn.command`` form (text, payload, text, ...)."""
    parts: list[bytes] = [b""]
    for piece in pieces:
        parts[-1] += piece[0]
        parts += piece[1:]
        if len(parts) % 2 == 0:  # ended on a payload: start the next text part
            parts.append(b"")
    return parts
