"""``mailward migrate``: copy mailboxes from the customer's old IMAP server — add a job (one
address, or a domain's addresses from a CSV file), list, show progress, cancel.

The delivery role runs the jobs in the background; the old password is read from standard
input (never from the command line) and stored sealed until the job ends.
"""

from __future__ import annotations

import csv
import enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mailward.app import Services
from mailward.migrate import CredentialBox, JobView, MigrationService, Source, master_login
from mailward.migrate.jobs import MASTER_SYNTAX

from .context import AccountOption, JsonOption, run
from .output import esc, fail, human_bytes, out, print_json, report, usage_error

migrate_app = typer.Typer(help="Copy mailboxes from an old IMAP server: add, list, show, cancel.",
                          no_args_is_help=True)


class Tls(enum.StrEnum):
    SSL = "ssl"
    STARTTLS = "starttls"
    NONE = "none"


HostOption = Annotated[str, typer.Option("--host", help="The old IMAP server's host name.")]
PortOption = Annotated[int | None, typer.Option(
    "--port", show_default=False, help="Its port (default: 993 with ssl, else 143).")]
TlsOption = Annotated[Tls, typer.Option("--tls", help="Implicit TLS, STARTTLS or none.")]
IdArg = Annotated[int, typer.Argument(metavar="ID", help="The job id (see `migrate list`).")]


def _service(services: Services) -> MigrationService:
    return MigrationService(services.db, CredentialBox.of(services.settings), services.addresses)


def _stdin_line(what: str) -> str:
    line = typer.get_text_stream("stdin").readline().removesuffix("\n").removesuffix("\r")
    if not line:
        fail(f"no {what} on standard input")
    return line


def _port(port: int | None, tls: Tls) -> int:
    return port if port is not None else (993 if tls is Tls.SSL else 143)


def _progress(job: JobView) -> str:
    total = max(job.messages_total, job.messages_copied + job.messages_skipped)
    return f"{job.messages_copied + job.messages_skipped}/{total}"


@migrate_app.command("add")
def migrate_add(
    address: Annotated[str, typer.Argument(help="The hosted mailbox to fill.")],
    host: HostOption,
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the old server's password from standard input "
        "(required: passwords never go on the command line).")] = False,
    port: PortOption = None,
    tls: TlsOption = Tls.SSL,
    login: Annotated[str | None, typer.Option(
        "--login", show_default=False, help="The login on the old server (default: ADDRESS).")
    ] = None,
    account: AccountOption = None,
    json_: JsonOption = False,
) -> None:
    """Queue a job copying every folder of one mailbox from the old server."""
    if not password_stdin:
        usage_error("give --password-stdin and the old password on standard input")
    source = Source(host, _port(port, tls), tls.value, login or address,
                    _stdin_line("password"))
    job = run(lambda s, a: _service(s).add(a, address, source), account=account)
    report(job, f"migration job [bold]{job.id}[/] queued for {esc(job.mailbox)} from "
                f"{esc(job.login)} at {esc(job.host)}:{job.port}", json_)


@migrate_app.command("add-batch")
def migrate_add_batch(
    csv_file: Annotated[Path, typer.Option(
        "--csv", exists=True, dir_okay=False,
        help="Lines `address,old login,old password` (with --master: `address,old login`; "
             "the old login defaults to the address).")],
    host: HostOption,
    port: PortOption = None,
    tls: TlsOption = Tls.SSL,
    master: Annotated[str | None, typer.Option(
        "--master", show_default=False,
        help="Log in as this master user of the old server (its password on standard "
             "input) instead of each user's own password.")] = None,
    master_syntax: Annotated[str, typer.Option(
        "--master-syntax", help="How the old server spells a master login.")] = MASTER_SYNTAX,
    account: AccountOption = None,
    json_: JsonOption = False,
) -> None:
    """Queue one job per address of a domain (all or none)."""
    master_password = _stdin_line("master password") if master else None
    rows: list[tuple[str, Source]] = []
    with csv_file.open(newline="") as handle:
        for number, fields in enumerate(csv.reader(handle), start=1):
            fields = [f.strip() for f in fields]
            if not fields or not fields[0] or fields[0].startswith("#"):
                continue
            address = fields[0]
            old_login = fields[1] if len(fields) > 1 and fields[1] else address
            if master is not None and master_password is not None:
                rows.append((address, Source(host, _port(port, tls), tls.value, master_login(
                    old_login, master, master_syntax), master_password)))
            elif len(fields) < 3 or not fields[2]:
                fail(f"{csv_file}:{number}: no password (or use --master)")
            else:
                rows.append((address, Source(host, _port(port, tls), tls.value, old_login,
                                             fields[2])))
    jobs = run(lambda s, a: _service(s).add_batch(a, rows), account=account)
    report(jobs, f"{len(jobs)} migration jobs queued", json_)


@migrate_app.command("list")
def migrate_list(
    address: Annotated[str | None, typer.Option("--address", show_default=False,
                                                help="Only this mailbox's jobs.")] = None,
    domain: Annotated[str | None, typer.Option("--domain", "-d", show_default=False,
                                               help="Only this domain's jobs.")] = None,
    account: AccountOption = None,
    json_: JsonOption = False,
) -> None:
    """Migration jobs, newest first, with their progress."""
    jobs = run(lambda s, a: _service(s).list(a, mailbox=address, domain=domain),
               account=account)
    if json_:
        print_json(jobs)
        return
    if not jobs:
        out().print("no migration jobs")
        return
    table = Table("ID", "Mailbox", "From", "Status", "Messages", "Copied", "Folders")
    for job in jobs:
        table.add_row(str(job.id), esc(job.mailbox), esc(f"{job.login}@{job.host}:{job.port}"),
                      job.status, _progress(job), human_bytes(job.bytes_copied),
                      f"{job.folders_done}/{job.folders_total}")
    out().print(table)


@migrate_app.command("show")
def migrate_show(job_id: IdArg, account: AccountOption = None, json_: JsonOption = False) -> None:
    """One job: its state, counts and every folder's progress."""
    job = run(lambda s, a: _service(s).get(a, job_id), account=account)
    if json_:
        print_json(job)
        return
    console = out()
    console.print(f"[bold]job {job.id}[/]: {esc(job.mailbox)} from {esc(job.login)} at "
                  f"{esc(job.host)}:{job.port} ({job.tls}) — {job.status}")
    console.print(f"messages: {job.messages_copied} copied, {job.messages_skipped} skipped "
                  f"of {job.messages_total} ({human_bytes(job.bytes_copied)})")
    if job.last_error:
        console.print(f"last error: {esc(job.last_error)}")
    if job.folders:
        table = Table("Old folder", "Folder here", "Messages", "Copied", "Skipped", "Done")
        for folder in job.folders:
            table.add_row(esc(folder.source), esc(folder.target), str(folder.messages),
                          str(folder.copied), str(folder.skipped), "yes" if folder.done else "")
        console.print(table)


@migrate_app.command("cancel")
def migrate_cancel(job_id: IdArg, account: AccountOption = None,
                   json_: JsonOption = False) -> None:
    """Stop a job (after the message being copied) and forget its password."""
    job = run(lambda s, a: _service(s).cancel(a, job_id), account=account)
    report(job, f"migration job [bold]{job.id}[/] cancelled", json_)
