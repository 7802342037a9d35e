"""``mailward address add``: the bulk "Add Addresses" form (docs/procedures.md).

Lines come from a file or stdin and are streamed to ``directory.bulk.add_lines``; a
progress bar (stderr) appears for inputs of more than ``PROGRESS_THRESHOLD`` lines.
Results are grouped as the doc's result screen: invalid, added, updated (moved from the
other list), unchanged (already on this list), plus warnings and counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from itertools import chain, islice
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from mailward.core.paging import to_json
from mailward.db.models import AddressKind, AddressList
from mailward.directory import BulkResult, LineResult, LineStatus

from .context import AccountOption, JsonOption, run
from .output import EXIT_FAILURE, err, esc, out, print_json

PROGRESS_THRESHOLD = 1000

KIND_WORDS = {
    AddressKind.PENDING: "pending, needs setup",
    AddressKind.MAILBOX: "mailbox",
    AddressKind.FORWARDER: "forwarder",
    AddressKind.AUTOCC: "mailbox with auto-cc",
}


def address_add(
    list_: Annotated[
        AddressList,
        typer.Option("--list", "-l", case_sensitive=False,
                     help="The list every line goes to: filter, or no-filter (Do Not Filter)."),
    ],
    file: Annotated[
        str | None,
        typer.Argument(metavar="FILE|-", show_default=False,
                       help="File with one address line each; '-' or nothing reads stdin."),
    ] = None,
    account: AccountOption = None,
    summary: Annotated[
        bool, typer.Option("--summary", help="Print only invalid lines, warnings and counts.")
    ] = False,
    json_: JsonOption = False,
) -> None:
    """Add addresses in bulk: address, address|password, or address|dest1,dest2|relay.

    Blank lines are ignored but counted in line numbers.

    Exit status 1 when some lines were invalid; the valid lines are applied all the same.
    """
    lines, total, big, close = _open_input(file)
    try:
        with _progress(total, big) as progress:
            result = run(
                lambda d, a: d.bulk.add_lines(a, lines, list_, progress=progress),
                account=account,
            )
    finally:
        close()
    if json_:
        print_json(bulk_json(result))
    else:
        print_result(result, summary=summary)
    if result.counts[LineStatus.INVALID.value]:
        raise typer.Exit(EXIT_FAILURE)


def bulk_json(result: BulkResult) -> dict:
    """The stable ``--json`` shape: ``{"list", "counts", "results"}``."""
    return {
        "list": result.list.value,
        "counts": result.counts,
        "results": [to_json(line) for line in result.results],
    }


# -- input -----------------------------------------------------------------------------


def _open_input(file: str | None) -> tuple[Iterable[str], int | None, bool, Callable[[], None]]:
    """Lines, their total (when known), whether to show progress, and a closer."""
    if file is None or file == "-":
        stream = typer.get_text_stream("stdin", encoding="utf-8", errors="replace")
        if stream.isatty():
            typer.echo("Reading address lines from standard input; end with Ctrl-D.", err=True)
        head = list(islice(stream, PROGRESS_THRESHOLD + 1))
        big = len(head) > PROGRESS_THRESHOLD
        return _without_bom(chain(head, stream)), None, big, lambda: None

    path = Path(file)
    try:
        total = _count_lines(path)
        handle: TextIO = path.open(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {file}: {exc.strerror or exc}",
                                 param_hint="FILE") from None
    return handle, total, total > PROGRESS_THRESHOLD, handle.close


def _count_lines(path: Path) -> int:
    count, last = 0, b"\n"
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def _without_bom(lines: Iterable[str]) -> Iterator[str]:
    iterator = iter(lines)
    first = next(iterator, None)
    if first is None:
        return
    yield first.removeprefix("\ufeff")
    yield from iterator


@contextmanager
def _progress(total: int | None, show: bool) -> Iterator[Callable[[int], None] | None]:
    """A Rich progress bar on stderr fed with the last line number done, or ``None``."""
    if not show:
        yield None
        return
    counter: ProgressColumn = (
        MofNCompleteColumn() if total is not None else TextColumn("{task.completed} lines")
    )
    with Progress(
        TextColumn("adding addresses"), BarColumn(), counter, TimeElapsedColumn(),
        console=err(), transient=True,
    ) as bar:
        task = bar.add_task("add", total=total)

        def update(line_number: int) -> None:
            bar.update(task, completed=line_number)

        yield update


# -- output ----------------------------------------------------------------------------


def print_result(result: BulkResult, *, summary: bool = False) -> None:
    """The result screen: one section per category, then warnings and counts."""
    console = out()
    chosen = result.list.value
    other = next(item for item in AddressList if item is not result.list).value
    sections = [
        (LineStatus.INVALID,
         "Invalid: not a valid line or not one of your domains; not applied"),
        (LineStatus.ADDED, f"Added to {chosen}"),
        (LineStatus.UPDATED, f"Updated: moved from {other} to {chosen}"),
        (LineStatus.UNCHANGED, f"Unchanged: already on {chosen}"),
    ]
    for status, title in sections:
        rows = result.of(status)
        if not rows or (summary and status is not LineStatus.INVALID):
            continue
        console.print(f"[bold]{title}[/] ({len(rows)}):")
        for row in rows:
            console.print(f"  line {row.line}: {_line_text(row)}")
    warned = [row for row in result.results if row.warning]
    if warned:
        console.print(f"[bold]Warnings[/] ({len(warned)}):")
        for row in warned:
            console.print(f"  line {row.line}: {esc(row.address or row.input)}: "
                          f"{esc(row.warning)}")

    counts = result.counts
    if not result.results:
        console.print("no address lines in the input (blank lines are ignored)")
        return
    console.print(
        f"{counts['added']} added, {counts['updated']} updated, "
        f"{counts['unchanged']} unchanged, {counts['invalid']} invalid, "
        f"{counts['warnings']} warning(s)"
    )
    if counts["invalid"]:
        applied = len(result.results) - counts["invalid"]
        console.print(
            f"[bold]{counts['invalid']} invalid line(s) were not applied; "
            f"the other {applied} line(s) were applied.[/]"
        )


def _line_text(row: LineResult) -> str:
    if row.status is LineStatus.INVALID:
        return f"{esc(row.input or '(empty address)')}: {esc(row.reason)}"
    assert row.kind is not None
    return f"{esc(row.address)} ({KIND_WORDS[row.kind]})"
