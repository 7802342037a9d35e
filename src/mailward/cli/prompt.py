"""Reading passwords: a hidden prompt typed twice, or one line of stdin for scripts.

Passwords are never echoed, printed or put on the command line (where ``ps`` and shell
history would see them).
"""

from __future__ import annotations

from typing import Annotated

import typer

from .output import fail

PasswordStdinOption = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from the first line of standard input instead of prompting.",
    ),
]


def new_password(from_stdin: bool, *, label: str = "Password") -> tuple[str, str]:
    """The password and its confirmation, exactly as typed.

    Interactive: two hidden prompts, returned as they are so the service decides whether
    they match. From stdin: the first line (without its line ending) serves as both.
    """
    if from_stdin:
        line = typer.get_text_stream("stdin").readline()
        password = line.removesuffix("\n").removesuffix("\r")
        if not password:
            fail("no password on standard input")
        return password, password
    password = typer.prompt(label, hide_input=True, err=True)
    repeat = typer.prompt(f"Repeat {label[:1].lower()}{label[1:]}", hide_input=True, err=True)
    return password, repeat
