"""The servers bench/compare.py runs: private Postfix and Dovecot instances (own config,
queue, state and mail directories in a temp dir, loopback ports; nothing of the system's
installation is read or started), Postfix's smtp-sink as the counting customer server, and
``python -m mailward serve`` as a child. Installed by scripts/ensure-peers.

Runs as root (Postfix's master and Dovecot's need it to switch to their users ``postfix``,
``dovecot``, ``dovenull``; mail is owned by ``nobody``) or, for Dovecot alone, as a user.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import pwd
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from support import BenchFailed, free_port, greeted

POSTFIX, DOVECOT, SMTP_SINK = "/usr/sbin/postfix", "/usr/sbin/dovecot", "/usr/sbin/smtp-sink"
STOP_SECONDS = 30.0
# mailward's log levels and exceptions; Postfix's and Dovecot's severities
PROBLEM = re.compile(r" (WARNING|ERROR|CRITICAL) |^Traceback|^[\w.]+(Error|Exception): "
                     r"|\b([Ff]atal|[Pp]anic|[Ee]rror|[Ww]arning): ")


def require_peers() -> None:
    """Fail unless the peers are installed and we may run them."""
    missing = [p for p in (POSTFIX, DOVECOT, SMTP_SINK, "/usr/sbin/smtp-source",
                           "/usr/lib/dovecot/imap", "/usr/lib/dovecot/pop3")
               if not os.access(p, os.X_OK)]
    if missing:
        raise BenchFailed(f"missing {', '.join(missing)}: run scripts/ensure-peers")
    if os.geteuid() != 0:
        raise BenchFailed("the peers need root (Postfix's master switches users)")


def adopt_orphans() -> None:
    """Become a child subreaper: daemons that detach (Postfix's master) stay our
    descendants and are reaped here instead of lingering as zombies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def tail(path: Path, limit: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except FileNotFoundError:
        return f"({path} does not exist)"


def problems(path: Path) -> list[str]:
    """Warning and error lines of a log."""
    with contextlib.suppress(FileNotFoundError):
        return [line for line in path.read_text(errors="replace").splitlines()
                if PROBLEM.search(line)]
    return []


def _gone(pid: int) -> bool:
    """Reap ``pid`` if it is our child and ended; True once it no longer runs."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    return not os.path.exists(f"/proc/{pid}")


@contextlib.contextmanager
def with_log(name: str, log: Path) -> Iterator[None]:
    """A BenchFailed raised inside gets the last problems of ``name``'s log appended."""
    try:
        yield
    except BenchFailed as exc:
        found = problems(log)
        raise BenchFailed(f"{exc}\n--- {name} log: {len(found)} problems, the last ones:\n"
                          + "\n".join(found[-8:])) from None


async def wait_gone(pid: int, seconds: float = STOP_SECONDS) -> None:
    """Poll until ``pid`` no longer runs (reaped if it is our child)."""
    loop_deadline = asyncio.get_running_loop().time() + seconds
    while True:
        if _gone(pid):
            return
        if asyncio.get_running_loop().time() > loop_deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            raise BenchFailed(f"process {pid} still running {seconds} s after stop")
        await asyncio.sleep(0.1)  # polling interval


# -- the counting sink --------------------------------------------------------------------


class Sink:
    """Postfix's smtp-sink on a loopback port, counting messages (``-c``): the customer's
    server of both MX peers. ``count`` follows its running counter."""

    def __init__(self) -> None:
        self.port, self.count = free_port(), 0

    async def _follow(self, stream: asyncio.StreamReader) -> None:
        """Read the counter lines (``sess=N quit=N mesg=N`` ended by CR), whole ones only."""
        pending = b""
        while chunk := await stream.read(65536):
            *lines, pending = (pending + chunk).split(b"\r")
            if found := re.findall(rb"\bmesg=(\d+)", b"\r".join(lines)):
                self.count = int(found[-1])


@contextlib.asynccontextmanager
async def smtp_sink(tmp: Path) -> AsyncIterator[Sink]:
    sink = Sink()
    proc = await asyncio.create_subprocess_exec(
        SMTP_SINK, "-u", "nobody", "-c", "-h", "sink.bench.example",
        f"127.0.0.1:{sink.port}", "1024", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, cwd=tmp)
    assert proc.stdout is not None
    follower = asyncio.create_task(sink._follow(proc.stdout))
    try:
        await greeted(sink.port, b"220", 20)
        yield sink
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        await proc.wait()
        await follower


# -- Postfix: a relay-only MX -------------------------------------------------------------

POSTFIX_MASTER_CF = """\
# Written by bench/compare_peers.py: no chroot, no local delivery, nothing but relaying.
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60    1 pickup
cleanup   unix  n - n -     0 cleanup
qmgr      unix  n - n 300   1 qmgr
rewrite   unix  - - n -     - trivial-rewrite
bounce    unix  - - n -     0 bounce
defer     unix  - - n -     0 bounce
trace     unix  - - n -     0 bounce
verify    unix  - - n -     1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -     - proxymap
smtp      unix  - - n -     - smtp
relay     unix  - - n -     - smtp
showq     unix  n - n -     - showq
error     unix  - - n -     - error
retry     unix  - - n -     - error
discard   unix  - - n -     - discard
anvil     unix  - - n -     1 anvil
scache    unix  - - n -     1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def postfix_main_cf(root: Path, domain: str, recipients: list[str], sink_port: int) -> str:
    """A relay-only MX for ``domain`` (its ``recipients`` only) whose mail goes to the sink;
    defaults otherwise. The loopback client is not in mynetworks: it relays nothing else."""
    valid = ", ".join(f"{r}=ok" for r in recipients)
    return f"""\
# Written by bench/compare_peers.py; Postfix reads nothing else (postfix -c {root}/conf).
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
maillog_file_prefixes = {root}
maillog_file = {root}/maillog
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = peer.bench.example
myorigin = $myhostname
mydestination =
mynetworks = 192.0.2.1/32
local_recipient_maps =
local_transport = error:no local delivery
alias_maps =
alias_database =
relay_domains = {domain}
relay_recipient_maps = inline:{{ {valid} }}
transport_maps = inline:{{ {domain}=smtp:[127.0.0.1]:{sink_port} }}
relayhost = [127.0.0.1]:{sink_port}
smtpd_relay_restrictions = reject_unauth_destination
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
biff = no
"""


class Postfix:
    """A running private Postfix: ``port`` (smtpd), ``pid`` (master), ``root`` (its dir)."""

    def __init__(self, root: Path, port: int, pid: int) -> None:
        self.root, self.port, self.pid = root, port, pid

    def queued(self) -> int:
        """Queue files not yet delivered (incoming, active, deferred, hold, maildrop)."""
        return sum(len(files) for name in ("incoming", "active", "deferred", "hold", "maildrop")
                   for _, _, files in os.walk(self.root / "queue" / name))

    def problems(self) -> list[str]:
        return problems(self.root / "maillog")


def postfix_files(root: Path, domain: str, recipients: list[str], sink_port: int,
                  port: int) -> None:
    """Config, queue and data directories; the queue's subdirectories come at start."""
    postfix_user = pwd.getpwnam("postfix")
    for sub in ("conf", "queue", "data"):
        (root / sub).mkdir(parents=True)
    root.chmod(0o711)
    os.chown(root / "data", postfix_user.pw_uid, postfix_user.pw_gid)
    (root / "conf" / "main.cf").write_text(postfix_main_cf(root, domain, recipients, sink_port))
    (root / "conf" / "master.cf").write_text(POSTFIX_MASTER_CF.format(port=port))


def _postfix(root: Path, *command: str) -> None:
    done = subprocess.run([POSTFIX, "-c", str(root / "conf"), *command],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    if done.returncode:
        raise BenchFailed(f"postfix {' '.join(command)}: exit code {done.returncode} "
                          f"{done.stderr.decode(errors='replace')}\n{tail(root / 'maillog')}")


@contextlib.asynccontextmanager
async def postfix_mx(root: Path, domain: str, recipients: list[str], sink_port: int
                     ) -> AsyncIterator[Postfix]:
    """Start Postfix as the relay-only MX of ``domain``; stop it (and check it stopped)."""
    port = free_port()
    await asyncio.to_thread(postfix_files, root, domain, recipients, sink_port, port)
    await asyncio.to_thread(_postfix, root, "start")
    pid_file = root / "queue" / "pid" / "master.pid"
    try:
        pid = int(pid_file.read_text().strip())
        await greeted(port, b"220")
        with with_log("Postfix", root / "maillog"):
            yield Postfix(root, port, pid)
    finally:
        if pid_file.exists():
            pid = int(pid_file.read_text().strip() or 0)
            await asyncio.to_thread(_postfix, root, "stop")
            if pid:
                await wait_gone(pid)


# -- Dovecot: IMAP and POP3 in its performance configuration -------------------------------

DOVECOT_NOTES = ("Dovecot: passwd-file, auth_cache_size 10M (it still verifies the hash on "
                 "every login), auth_cache_verify_password_with_worker (hashes on every CPU); "
                 "login services in high-performance mode (service_count 0, "
                 "process_min_avail = CPUs); imap/pop3 processes reused (service_count 100);"
                 " Maildir, maildir_very_dirty_syncs")


def dovecot_hash(scheme: str, password: str) -> str:
    """``{SCHEME}hash`` for the passwd-file: ARGON2ID at mailward's default parameters (the
    same cost as mailward's own hashes), else what ``doveadm pw -s SCHEME`` makes."""
    if scheme == "ARGON2ID":
        from mailward.config import Settings
        from mailward.directory.passwords import Passwords

        return "{ARGON2ID}" + Passwords(Settings()).hash(password)
    return subprocess.run(["/usr/bin/doveadm", "pw", "-s", scheme, "-p", password],
                          capture_output=True, text=True, check=True).stdout.strip()


def dovecot_conf(root: Path, imap: int, pop3: int, passwd: Path, uid: int, gid: int) -> str:
    cpus = os.cpu_count() or 1
    login = f"""  service_count = 0
  process_min_avail = {cpus}
  vsz_limit = 1G"""
    return f"""\
# Written by bench/compare_peers.py; Dovecot reads nothing else (dovecot -c this file).
base_dir = {root}/base
state_dir = {root}/state
log_path = {root}/dovecot.log
instance_name = mailward-bench-{imap}
listen = 127.0.0.1
protocols = imap pop3
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_cache_size = 10M
auth_cache_ttl = 1 hour
auth_cache_verify_password_with_worker = yes
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_gid = {gid}
mail_location = maildir:{root}/mail/%u
maildir_very_dirty_syncs = yes
passdb {{
  driver = passwd-file
  args = username_format=%u {passwd}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {passwd}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
{login}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = 0
  }}
{login}
}}
service auth {{
  client_limit = 4096
}}
service imap {{
  service_count = 100
}}
service pop3 {{
  service_count = 100
}}
"""


class Dovecot:
    """A running private Dovecot: its ports, the master's ``pid``, its dir."""

    def __init__(self, root: Path, imap: int, pop3: int, pid: int) -> None:
        self.root, self.imap, self.pop3, self.pid = root, imap, pop3, pid

    def problems(self) -> list[str]:
        return problems(self.root / "dovecot.log")


def write_maildir(maildir: Path, messages: list[bytes], uid: int, gid: int) -> None:
    """``messages`` in ``maildir/cur`` as dovecot-lda would name them (S= and W= sizes);
    UIDs follow the list order (the number before the first dot)."""
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    for n, raw in enumerate(messages, 1):
        (maildir / "cur" / f"{n:06d}.bench,S={len(raw)},W={len(raw)}:2,").write_bytes(raw)
    for parent, _, files in os.walk(maildir):
        os.chown(parent, uid, gid)
        for name in files:
            os.chown(os.path.join(parent, name), uid, gid)


def dovecot_files(root: Path, users: list[tuple[str, str]], scheme: str,
                  messages: list[bytes], imap: int, pop3: int) -> Path:
    """The passwd-file, every user's Maildir holding ``messages``, and dovecot.conf."""
    nobody = pwd.getpwnam("nobody")
    uid, gid = (nobody.pw_uid, nobody.pw_gid) if os.geteuid() == 0 else (os.getuid(),
                                                                          os.getgid())
    (root / "mail").mkdir(parents=True)
    root.chmod(0o711)
    os.chown(root / "mail", uid, gid)
    passwd = root / "passwd"
    passwd.write_text("".join(f"{address}:{dovecot_hash(scheme, password)}:{uid}:{gid}::"
                              f"{root}/mail/{address}::\n" for address, password in users))
    passwd.chmod(0o644)
    for address, _ in users:
        write_maildir(root / "mail" / address, messages, uid, gid)
    (conf := root / "dovecot.conf").write_text(dovecot_conf(root, imap, pop3, passwd, uid,
                                                            gid))
    return conf


@contextlib.asynccontextmanager
async def dovecot(root: Path, users: list[tuple[str, str]], scheme: str,
                  messages: list[bytes]) -> AsyncIterator[Dovecot]:
    """Start Dovecot serving ``users`` ((address, password), hashed with ``scheme``), each
    with ``messages`` in INBOX; stop it (SIGTERM, then SIGKILL to its process group)."""
    imap, pop3 = free_port(), free_port()
    conf = await asyncio.to_thread(dovecot_files, root, users, scheme, messages, imap, pop3)
    with (root / "dovecot.stderr").open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            DOVECOT, "-F", "-c", str(conf), stdin=subprocess.DEVNULL, stdout=err, stderr=err,
            start_new_session=True, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    try:
        try:
            await greeted(imap, b"* OK", 30)
            await greeted(pop3, b"+OK", 30)
        except BenchFailed as exc:
            raise BenchFailed(f"{exc}\n{tail(root / 'dovecot.log')}"
                              f"{tail(root / 'dovecot.stderr')}") from None
        with with_log("Dovecot", root / "dovecot.log"):
            yield Dovecot(root, imap, pop3, proc.pid)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), STOP_SECONDS)
            except TimeoutError:
                raise BenchFailed(f"Dovecot ignored SIGTERM\n{tail(root / 'dovecot.log')}"
                                  ) from None
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()


# -- mailward -----------------------------------------------------------------------------


def toml(settings: dict[str, Any]) -> str:
    """Flat TOML for str, int, float, bool and list-of-str values."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "".join(f"{k} = {value(v)}\n" for k, v in settings.items())


class Mailward:
    """A running ``mailward serve``: its ``pid`` and its log."""

    def __init__(self, pid: int, log: Path) -> None:
        self.pid, self.log = pid, log

    def problems(self) -> list[str]:
        return problems(self.log)


@contextlib.asynccontextmanager
async def mailward(tmp: Path, settings: dict[str, Any], roles: str, workers: int | None,
                   ready: list[tuple[int, bytes]]) -> AsyncIterator[Mailward]:
    """``python -m mailward serve --roles ROLES [--workers N]`` with ``settings`` as its
    config file; ready once each (port, greeting prefix) of ``ready`` greets. SIGTERM at
    the end; a non-zero exit fails the run."""
    (config := tmp / "mailward.toml").write_text(toml(settings))
    log = tmp / "mailward.log"
    command = [sys.executable, "-m", "mailward", "serve", "--roles", roles]
    if workers is not None:
        command += ["--workers", str(workers)]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MAILWARD_")},
           "MAILWARD_CONFIG": str(config)}
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *command, cwd=tmp, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        for port, prefix in ready:
            try:
                await greeted(port, prefix)
            except BenchFailed as exc:
                raise BenchFailed(f"mailward: {exc}\n{tail(log)}") from None
        with with_log("mailward", log):
            yield Mailward(proc.pid, log)
        proc.send_signal(signal.SIGTERM)
        if await asyncio.wait_for(proc.wait(), 60) != 0:
            raise BenchFailed(f"mailward exited with {proc.returncode}:\n{tail(log)}")
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
