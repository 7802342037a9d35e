"""A private ClamAV ``clamd`` (Debian's ``clamav-daemon``) for the virus scanning tests.

``clamd_server`` writes a signature database into a temporary directory (nothing is
downloaded, freshclam never runs) and starts ``/usr/sbin/clamd`` in the foreground with its
own config. Its listening sockets are made here and handed over the way systemd does
(``LISTEN_FDS``/``LISTEN_PID``, fds 3 and 4): a TCP socket bound to 127.0.0.1 port 0 and a
unix socket in a short temporary directory, so no port is guessed. It is ready when it
answers ``PING`` (clamd reads the connection queued meanwhile once its database is loaded).

The database: ``sample.hdb``, the MD5 signature ``Mailward.Test.Sample`` of a random file
made per server (``Clamd.sample``: attach it to be infected), and ``eicar.ndb``, a body
signature ``Mailward.Test.EICAR`` of the EICAR test string. clamd names signatures of
unofficial databases with ``.UNOFFICIAL`` appended. ``official`` serves Debian's database
(``/var/lib/clamav``) instead, when present.

Installed by ``scripts/ensure-mail-clients``; without it the tests fail, never skip.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

CLAMD = "/usr/sbin/clamd"
OFFICIAL_DIR = Path("/var/lib/clamav")
START_SECONDS = 60.0
STOP_SECONDS = 10.0
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
SAMPLE_SIGNATURE = "Mailward.Test.Sample.UNOFFICIAL"
EICAR_SIGNATURE = "Mailward.Test.EICAR.UNOFFICIAL"
OFFICIAL_EICAR = "Win.Test.EICAR_HDB-1"  # the official database's name for EICAR


def official_database() -> bool:
    """Whether Debian's ClamAV database (main or daily) is installed."""
    return any((OFFICIAL_DIR / f"{name}.{ext}").exists()
               for name in ("main", "daily") for ext in ("cvd", "cld"))


@dataclass(frozen=True)
class Clamd:
    tcp: str  # host:port
    unix: str  # the socket's path
    sample: bytes = field(repr=False)  # a file the database knows as SAMPLE_SIGNATURE
    log: Path


def _answer(address: str | tuple[str, int], command: bytes, seconds: float) -> bytes:
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as client:
        client.settimeout(seconds)
        client.connect(address)
        client.sendall(b"z" + command + b"\0")
        answer = b""
        while not answer.endswith(b"\0"):
            more = client.recv(4096)
            if not more:
                break
            answer += more
        return answer.rstrip(b"\0")


@contextlib.contextmanager
def clamd_server(*, official: bool = False, stream_max: str = "30M") -> Iterator[Clamd]:
    """A running clamd with the test database (or the official one) taking streams of at
    most ``stream_max`` (its ``StreamMaxLength``); stopped afterwards."""
    if not os.path.exists(CLAMD):
        raise RuntimeError(f"{CLAMD} is missing: run scripts/ensure-mail-clients")
    home = Path(tempfile.mkdtemp(prefix="clamd-"))  # short: unix socket paths are capped
    tcp = socket.create_server(("127.0.0.1", 0), backlog=64)
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    process: subprocess.Popen[bytes] | None = None
    try:
        sample = os.urandom(4096) + b"mailward test sample"
        database = OFFICIAL_DIR if official else home / "db"
        if not official:
            database.mkdir()
            (database / "sample.hdb").write_text(
                f"{hashlib.md5(sample).hexdigest()}:{len(sample)}:Mailward.Test.Sample\n")
            (database / "eicar.ndb").write_text(f"Mailward.Test.EICAR:0:*:{EICAR.hex()}\n")
        path = str(home / "clamd.sock")
        unix.bind(path)
        unix.listen(64)
        log = home / "clamd.log"
        config = home / "clamd.conf"
        config.write_text("\n".join([
            "Foreground yes", f"DatabaseDirectory {database}", f"LogFile {log}",
            f"TemporaryDirectory {home}", f"StreamMaxLength {stream_max}", "MaxThreads 4",
            f"LocalSocket {path}", "LogTime no", ""]))
        # high fds first, so that moving them to 3 and 4 overwrites nothing of theirs
        fds = [os.dup(sock.fileno()) for sock in (tcp, unix)]
        high = [fcntl_dup_high(fd) for fd in fds]
        for fd in fds:
            os.close(fd)
        try:
            process = subprocess.Popen(
                ["bash", "-c", f"exec 3<&{high[0]} 4<&{high[1]} {high[0]}<&- {high[1]}<&-; "
                             f"LISTEN_PID=$$ LISTEN_FDS=2 exec {CLAMD} -c {config}"],
                pass_fds=high, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
        finally:
            for fd in high:
                os.close(fd)
        address = f"127.0.0.1:{tcp.getsockname()[1]}"
        tcp.close()  # clamd holds them now
        unix.close()
        try:
            answer = _answer(path, b"PING", START_SECONDS)  # queued until it is ready
        except OSError as exc:
            answer = f"{exc}".encode()
        if answer != b"PONG":
            raise RuntimeError(f"clamd did not start ({answer!r}):\n"
                               f"{log.read_text() if log.exists() else ''}")
        yield Clamd(address, path, sample, log)
    finally:
        tcp.close()
        unix.close()
        if process is not None:
            process.terminate()
            try:
                process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(home, ignore_errors=True)


def fcntl_dup_high(fd: int, lowest: int = 10) -> int:
    """A duplicate of ``fd`` numbered ``lowest`` or more, inheritable."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, lowest)
    os.set_inheritable(high, True)
    return high
